import { existsSync, rmSync } from 'node:fs';
import { logVerbosity, setLogVerbosity } from '@grpc/grpc-js';
import { DaemonMetrics, MetricsListenError, type MetricsServer } from '@fnn/server-common';
import { startC1 } from '@fnn/server-c1';
import { startC2 } from '@fnn/server-c2';
import { join } from 'node:path';
import { INSECURE, isInsecure, type Logger, type PublicKey, type RunningDaemon, type Transport } from '@fnn/shared';
import { CliError } from '../output';
import { loadC1PublicKey, loadC1SecretKey, loadPublicKey, loadSecretKey } from '../key-files';
import { checkAddress } from '../connect';
import { createCrypto } from '../crypto-workers';
import { jsonLine } from '../output';
import type { RevocationWatch } from '../revocation';
import { CRL_FILE } from '../tls-files';

// `fnn c1` and `fnn c2`: load keys and config, start, stop cleanly on SIGTERM/SIGINT.
// The bound address goes to stdout as one JSON line (port 0 picks a free port).
// SIGHUP re-reads the revocation list.

/** Where a daemon's revocation list comes from: --tls-crl, else crl.pem in its --tls-dir. */
export interface RevocationFlags {
  tlsDir?: string;
  tlsCrl?: string;
}

/** A daemon's audit trail: --audit, else beside its database. */
export const auditPathOf = (options: { db: string; audit?: string }) => options.audit || `${options.db}.audit.jsonl`;

/** The flags `fnn c2` takes (main.ts declares them; the transport comes from its TLS flags). */
export interface C2Flags extends RevocationFlags {
  listen: string;
  keys: string;
  db: string;
  audit?: string;
  metrics?: string;
  /** --max-collections: the collections the daemon holds at most (a positive integer). */
  maxCollections?: string;
}

/** The flags `fnn c1` takes: C2's, and where C2 is and how long a query may run. */
export interface C1Flags extends C2Flags {
  c2: string;
  queryTimeout: string;
}

export async function runC2(log: Logger, options: C2Flags & { transport: Transport }): Promise<void> {
  const listen = checkAddress(options.listen, '--listen', 'FNN_C2_LISTEN');
  const maxCollections = maxCollectionsOf(options);
  const sk2 = loadSecretKey(options.keys, 'c2');
  const pk1 = loadC1PublicKey(options.keys, 'c2');
  sameSize(sk2.publicKey, pk1);
  // Before the crypto workers start: a bad list ends the daemon with nothing to stop.
  const revocation = await revocationFor(options, log);
  // Bound before the database is opened: a port in use leaves no file behind.
  const metrics = await serveMetrics('c2', options.metrics);
  const crypto = createCrypto(sk2.publicKey, sk2);
  const fast = { sk2, pk1, multiExp: crypto.pool.multiExp.bind(crypto.pool) };
  const daemon = await starting('c2', listen, [options.db, auditPathOf(options)], stopAll(metrics, revocation, crypto.close), () =>
    startC2({
      listen,
      dbPath: options.db,
      maxCollections,
      auditPath: auditPathOf(options),
      crypto: crypto.keyHolder!,
      fast,
      log,
      transport: options.transport,
      isRevoked: revocation?.isRevoked,
      observers: metrics ? [metrics.observe] : [],
    }),
  );
  metrics?.watch({ sessions: daemon.openSessions, databases: () => daemon.databases() });
  await serveUntilSignal(daemon, 'c2', log, crypto.close, options.transport, revocation, metrics?.server);
}

export async function runC1(log: Logger, options: C1Flags & { transport: Transport }): Promise<void> {
  const listen = checkAddress(options.listen, '--listen', 'FNN_C1_LISTEN');
  const c2Address = checkAddress(options.c2, '--c2', 'FNN_C2');
  const queryTimeoutMs = Number(options.queryTimeout) * 1000;
  if (!(queryTimeoutMs > 0) || !Number.isFinite(queryTimeoutMs))
    throw new CliError('usage', '--query-timeout must be a positive number of seconds');
  const maxCollections = maxCollectionsOf(options);
  const pk2 = loadPublicKey(options.keys, 'c1');
  const sk1 = loadC1SecretKey(options.keys, 'c1');
  sameSize(pk2, sk1.publicKey);
  const revocation = await revocationFor(options, log);
  const metrics = await serveMetrics('c1', options.metrics);
  const crypto = createCrypto(pk2);
  const fast = { pk2, sk1, multiExp: crypto.pool.multiExp.bind(crypto.pool) };
  const daemon = await starting('c1', listen, [options.db, auditPathOf(options)], stopAll(metrics, revocation, crypto.close), () =>
    startC1({
      listen,
      dbPath: options.db,
      maxCollections,
      auditPath: auditPathOf(options),
      c2Address,
      queryTimeoutMs,
      crypto: crypto.evaluator,
      fast,
      log,
      transport: options.transport,
      isRevoked: revocation?.isRevoked,
      observers: metrics ? [metrics.observe] : [],
    }),
  );
  metrics?.watch({ sessions: daemon.c2Sessions, queries: () => daemon.admission.state(), databases: () => daemon.databases() });
  await serveUntilSignal(daemon, 'c1', log, crypto.close, options.transport, revocation, metrics?.server);
}

/**
 * The daemon's revocation list, checked against the CA it trusts. Without
 * --tls-crl, DIR/crl.pem is awaited if it is not there yet, so a deployment
 * started before its first revocation picks the list up without a restart.
 */
async function revocationFor(options: { transport: Transport } & RevocationFlags, log: Logger): Promise<RevocationWatch | undefined> {
  if (isInsecure(options.transport)) {
    if (options.tlsCrl !== undefined) throw new CliError('usage', '--tls-crl needs TLS; it cannot go with --insecure');
    return undefined;
  }
  const path = options.tlsCrl ?? (options.tlsDir !== undefined ? join(options.tlsDir, CRL_FILE) : undefined);
  if (path === undefined) {
    log.warn({}, 'no revocation list: pass --tls-crl FILE (or --tls-dir holding crl.pem) to refuse revoked certificates');
    return undefined;
  }
  // Loaded here, not with the CLI: the X.509 decoder is for the daemons and `fnn certs` only.
  const { watchRevocations } = await import('../revocation.js');
  return watchRevocations({ path, ca: options.transport.ca, log, required: options.tlsCrl !== undefined });
}

/**
 * Start a daemon; if it cannot, leave no database file it created (the store
 * is opened before the port is bound) and say why in one line. grpc-js's own
 * log is off: it would print the bind failure a second time, raw.
 */
async function starting<T>(role: 'c1' | 'c2', listen: string, files: string[], cleanup: () => Promise<void>, start: () => Promise<T>) {
  if (!process.env.GRPC_VERBOSITY && !process.env.GRPC_TRACE) setLogVerbosity(logVerbosity.NONE);
  // The database and the audit trail: what did not exist before is removed again when the daemon cannot start.
  const fresh = files.filter((f) => !existsSync(f));
  try {
    return await start();
  } catch (error) {
    for (const f of fresh) for (const file of [f, `${f}-wal`, `${f}-shm`, `${f}-journal`]) rmSync(file, { force: true });
    await cleanup();
    throw bindFailure(error, listen, role) ?? error;
  }
}

/** A failed bind in words; undefined for any other failure to start. */
export function bindFailure(error: unknown, listen: string, role: 'c1' | 'c2'): CliError | undefined {
  const text = error instanceof Error ? error.message : String(error);
  if (/EADDRINUSE/.test(text))
    return new CliError('usage', `${listen} is in use (is another fnn ${role} running?). Stop it, or pass another --listen`);
  if (/EADDRNOTAVAIL/.test(text))
    return new CliError('usage', `${listen} is not an address of this host. Pass one of its addresses to --listen (0.0.0.0:PORT for all)`);
  if (/EACCES/.test(text)) return new CliError('usage', `${listen}: this user may not bind that port. Use a port above 1023`);
  if (/No address added/.test(text)) return new CliError('usage', `${listen} cannot be bound (${text.replace(/^.*\[|\]$/g, '')})`);
  return undefined;
}

/**
 * The daemon's metrics, bound before the daemon opens its database: an
 * address that cannot be bound stops the start with nothing written.
 */
async function serveMetrics(daemon: 'c1' | 'c2', listen: string | undefined) {
  if (listen === undefined) return undefined;
  const address = checkAddress(listen, '--metrics', 'FNN_METRICS');
  const metrics = new DaemonMetrics(daemon);
  try {
    return Object.assign(metrics, { server: await metrics.serve(address) });
  } catch (error) {
    if (error instanceof MetricsListenError)
      throw new CliError(
        'usage',
        error.code === 'EADDRINUSE'
          ? `cannot serve metrics at ${address}: the port is in use. Pick another --metrics (FNN_METRICS) or stop what holds it`
          : `cannot serve metrics at ${address} (${error.code}). --metrics takes an address of this host, e.g. 127.0.0.1:9464`,
      );
    throw error;
  }
}

/** A daemon that failed to start takes its metrics server, revocation watch and crypto workers down with it. */
const stopAll =
  (metrics: { server: MetricsServer } | undefined, revocation: RevocationWatch | undefined, cleanup: () => Promise<void>) =>
  async (): Promise<void> => {
    revocation?.close();
    await metrics?.server.close();
    await cleanup();
  };

/** --max-collections as a number: 1 (the default collection alone) to 10,000. */
function maxCollectionsOf(options: { maxCollections?: string }): number | undefined {
  if (options.maxCollections === undefined) return undefined;
  const n = Number(options.maxCollections);
  if (!Number.isInteger(n) || n < 1 || n > 10_000) throw new CliError('usage', '--max-collections must be an integer from 1 to 10000');
  return n;
}

/** The packing is sized by one key and checked against the other: both key pairs must be the same size. */
function sameSize(pk2: PublicKey, pk1: PublicKey): void {
  if (pk2.bits !== pk1.bits)
    throw new CliError('usage', `C2's key has ${pk2.bits} bits and C1's ${pk1.bits}: make both with one \`fnn keygen\``);
}

async function serveUntilSignal(
  daemon: RunningDaemon,
  role: string,
  log: Logger,
  cleanup: () => Promise<void>,
  transport: Transport,
  revocation?: RevocationWatch,
  metrics?: MetricsServer,
) {
  const tls = transport !== INSECURE;
  if (!tls) log.warn({}, 'plaintext (--insecure): no TLS, no certificates, no role checks');
  const reload = () => {
    log.info({ signal: 'SIGHUP' }, 'reloading the revocation list');
    void revocation?.reload();
  };
  if (revocation) process.on('SIGHUP', reload);
  if (metrics) log.info({ metrics: `http://${metrics.address}/metrics` }, 'serving metrics');
  process.stdout.write(
    jsonLine({ event: 'listening', role, address: daemon.address, tls, pid: process.pid, ...(metrics && { metrics: metrics.address }) }) +
      '\n',
  );
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log.info({ signal }, 'stopping');
      process.off('SIGHUP', reload);
      revocation?.close();
      void daemon
        .stop()
        .then(() => metrics?.close())
        .then(cleanup)
        .then(resolve);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}

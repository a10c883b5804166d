import { DaemonMetrics, MetricsListenError, type MetricsServer } from '@fnn/server-common';
import { startC1 } from '@fnn/server-c1';
import { startC2 } from '@fnn/server-c2';
import { INSECURE, type Logger, type PublicKey, type RunningDaemon, type Transport } from '@fnn/shared';
import { CliError } from '../output';
import { loadC1PublicKey, loadC1SecretKey, loadPublicKey, loadSecretKey } from '../key-files';
import { checkAddress } from '../connect';
import { createCrypto } from '../crypto-workers';
import { jsonLine } from '../output';

// `fnn c1` and `fnn c2`: load keys and config, start, stop cleanly on SIGTERM/SIGINT.
// The bound address goes to stdout as one JSON line (port 0 picks a free port).

export async function runC2(
  log: Logger,
  options: { listen: string; keys: string; db: string; metrics?: string; transport: Transport },
): Promise<void> {
  const listen = checkAddress(options.listen, '--listen', 'FNN_C2_LISTEN');
  const sk2 = loadSecretKey(options.keys);
  const pk1 = loadC1PublicKey(options.keys);
  sameSize(sk2.publicKey, pk1);
  const metrics = await serveMetrics('c2', options.metrics);
  const crypto = createCrypto(sk2.publicKey, sk2);
  const fast = { sk2, pk1, multiExp: crypto.pool.multiExp.bind(crypto.pool) };
  const daemon = await startC2({
    listen,
    dbPath: options.db,
    crypto: crypto.keyHolder!,
    fast,
    log,
    transport: options.transport,
    observers: metrics ? [metrics.observe] : [],
  }).catch(stopping(metrics, crypto.close));
  metrics?.watch({ sessions: daemon.openSessions, databases: [options.db] });
  await serveUntilSignal(daemon, 'c2', log, crypto.close, options.transport, metrics?.server);
}

export async function runC1(
  log: Logger,
  options: { listen: string; keys: string; db: string; c2: string; queryTimeout: string; metrics?: string; transport: Transport },
): Promise<void> {
  const listen = checkAddress(options.listen, '--listen', 'FNN_C1_LISTEN');
  const c2Address = checkAddress(options.c2, '--c2', 'FNN_C2');
  const queryTimeoutMs = Number(options.queryTimeout) * 1000;
  if (!(queryTimeoutMs > 0) || !Number.isFinite(queryTimeoutMs))
    throw new CliError('usage', '--query-timeout must be a positive number of seconds');
  const pk2 = loadPublicKey(options.keys);
  const sk1 = loadC1SecretKey(options.keys);
  sameSize(pk2, sk1.publicKey);
  const metrics = await serveMetrics('c1', options.metrics);
  const crypto = createCrypto(pk2);
  const fast = { pk2, sk1, multiExp: crypto.pool.multiExp.bind(crypto.pool) };
  const daemon = await startC1({
    listen,
    dbPath: options.db,
    c2Address,
    queryTimeoutMs,
    crypto: crypto.evaluator,
    fast,
    log,
    transport: options.transport,
    observers: metrics ? [metrics.observe] : [],
  }).catch(stopping(metrics, crypto.close));
  metrics?.watch({ sessions: daemon.c2Sessions, queries: () => daemon.admission.state(), databases: [options.db] });
  await serveUntilSignal(daemon, 'c1', log, crypto.close, options.transport, metrics?.server);
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

/** A daemon that failed to start takes its metrics server and crypto workers down with it, then fails as it did. */
const stopping =
  (metrics: { server: MetricsServer } | undefined, cleanup: () => Promise<void>) =>
  async (error: unknown): Promise<never> => {
    await metrics?.server.close();
    await cleanup();
    throw error;
  };

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
  metrics?: MetricsServer,
) {
  const tls = transport !== INSECURE;
  if (!tls) log.warn({}, 'plaintext (--insecure): no TLS, no certificates, no role checks');
  if (metrics) log.info({ metrics: `http://${metrics.address}/metrics` }, 'serving metrics');
  process.stdout.write(
    jsonLine({ event: 'listening', role, address: daemon.address, tls, pid: process.pid, ...(metrics && { metrics: metrics.address }) }) +
      '\n',
  );
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log.info({ signal }, 'stopping');
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

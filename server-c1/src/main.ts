import { DatabaseService } from '@fnn/proto';
import { Collections, daemonAudit, observeAll, serveDaemon } from '@fnn/server-common';
import {
  WireCodec,
  type C1Crypto,
  type CallObserver,
  type FastC1Crypto,
  type Logger,
  type RunningDaemon,
  type Transport,
} from '@fnn/shared';
import { AdmissionQueue, DEFAULT_ADMISSION_LIMITS, type AdmissionLimits } from './admission';
import { databaseService } from './database-service';
import { C2Link } from './c2-link';
import { watchC2, type C2RetryOptions } from './c2-watch';
import { RecordStore } from './storage';

export interface C1Config {
  listen: string; // host:port; port 0 picks a free one
  dbPath: string;
  /** The default collection's store, already open at dbPath (a test limits its size); C1 closes it on stop. Default: opened here. */
  store?: RecordStore;
  /** Collections C1 holds at most, the default one included (default DEFAULT_MAX_COLLECTIONS); the next one is refused. */
  maxCollections?: number;
  c2Address: string;
  crypto: C1Crypto;
  fast: FastC1Crypto;
  log: Logger;
  queryTimeoutMs?: number;
  /** Queries of one BatchQuery stream that run at once. */
  batchConcurrency?: number;
  /** TLS as C1, both for its callers (roles are checked) and towards C2; or plaintext. */
  transport: Transport;
  /** How often C1 checks an unreachable or mismatched C2 again (default C2_RETRY). */
  c2Retry?: C2RetryOptions;
  /** How many queries run and wait at once, per caller and in all (docs/SECURITY.md); the defaults when omitted. */
  admission?: Partial<AdmissionLimits>;
  /** An upload in parts that sends no part for this long is refused and gives up its place (default UPLOAD_PART_IDLE_MS). */
  uploadPartIdleMs?: number;
  /** Hear of every call once it ended or was refused (the audit trail, the metrics). */
  observers?: CallObserver[];
  /** Whether the deployment CA has revoked a certificate (by serial): such a caller is refused before any handler, and such a C2 gets nothing. */
  isRevoked?: (serial: string) => boolean;
  /** The audit trail's file (docs/SECURITY.md, "Audit trail"); none kept when omitted. */
  auditPath?: string;
}

export interface RunningC1 extends RunningDaemon {
  /** The queries running and waiting now. */
  readonly admission: AdmissionQueue;
  /** The protocol sessions with C2 open now (the metrics' sessions in flight). */
  c2Sessions(): number;
  /** Every collection's file now (the metrics' database size). */
  databases(): string[];
}

/** C1's main: wire storage, the link to C2 and the service; nothing else. */
export async function startC1(config: C1Config): Promise<RunningC1> {
  const pk = config.crypto.publicKey;
  const codec = new WireCodec(pk.cipherBytes);
  // First: a trail that cannot be opened stops C1 before it holds anything else.
  const audit = daemonAudit(config.auditPath, config.log, config.transport);
  const collections = new Collections<RecordStore>({
    dbPath: config.dbPath,
    open: (path) => new RecordStore(path, pk),
    defaultStore: config.store,
    max: config.maxCollections,
    daemon: 'C1',
    hint: () => '`fnn collections` lists those it has',
  });
  const store = collections.defaultStore;
  const c2 = new C2Link(config.c2Address, codec, config.transport, config.isRevoked);
  const admission = new AdmissionQueue({ ...DEFAULT_ADMISSION_LIMITS, ...config.admission });
  const observe = observeAll([...(config.observers ?? []), ...audit.observers]);
  const service = databaseService({
    observe,
    collections,
    crypto: config.crypto,
    codec,
    c2,
    fast: config.fast,
    log: config.log,
    queryTimeoutMs: config.queryTimeoutMs ?? 60 * 60_000,
    batchConcurrency: config.batchConcurrency,
    admission,
    uploadPartIdleMs: config.uploadPartIdleMs,
  });
  // In the background: C1 serves whatever C2 does; the watch only tells the operator (and stops with C1).
  // It compares the default collection's id with C2's: each other collection's is checked by C2 at every session.
  const watch = watchC2(c2, { pk2: pk, pk1: config.fast.sk1.publicKey }, () => store.collectionId(), config.log, config.c2Retry);
  const daemon = await serveDaemon({
    name: 'C1',
    listen: config.listen,
    transport: config.transport,
    log: config.log,
    services: [{ definition: DatabaseService, implementation: service }, audit.service(observe)],
    isRevoked: config.isRevoked,
    onRefused: observe,
    facts: { records: collections.count((s) => s.count), collections: collections.names().length, c2: config.c2Address, keyBits: pk.bits },
    close: () => {
      watch.stop();
      c2.close();
      collections.close();
      audit.close();
    },
  });
  return { ...daemon, admission, c2Sessions: () => c2.openSessions, databases: () => collections.files() };
}

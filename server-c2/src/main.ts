import { ReplicaService, RetrievalService, SecureComputationService } from '@fnn/proto';
import { Collections, daemonAudit, observeAll, serveDaemon } from '@fnn/server-common';
import {
  DEFAULT_TICKET_LIMITS,
  RetrievalStore,
  TicketStore,
  type Bound,
  type TicketLimits,
  WireCodec,
  type FastC2Crypto,
  type C2Crypto,
  type CallObserver,
  type Logger,
  type QueryShares,
  type RunningDaemon,
  type Transport,
} from '@fnn/shared';
import { ReplicaStore } from './replica-store';
import { DEFAULT_SESSION_LIMITS, replicaService, retrievalService, secureComputationService, type SessionLimits } from './services';

export interface C2Config {
  listen: string;
  dbPath: string; // the replica of the packed records (fast protocol)
  crypto: C2Crypto;
  fast: FastC2Crypto;
  log: Logger;
  /** TLS as C2 (callers' roles are checked), or plaintext. */
  transport: Transport;
  /** What callers may fill at C2 (docs/SECURITY.md); the defaults when omitted. */
  limits?: Partial<C2Limits>;
  /** Hear of every call once it ended or was refused (the audit trail, the metrics). */
  observers?: CallObserver[];
  /** Whether the deployment CA has revoked a caller's certificate (by serial): such a caller is refused before any handler. */
  isRevoked?: (serial: string) => boolean;
  /** The audit trail's file (docs/SECURITY.md, "Audit trail"); none kept when omitted. */
  auditPath?: string;
  /** Collections' replicas C2 holds at most, the default one included (default DEFAULT_MAX_COLLECTIONS). */
  maxCollections?: number;
}

export interface C2Limits {
  /** The doctors' pending query shares, per caller certificate and in all. */
  shares: TicketLimits;
  /** m + r waiting for the doctor: in all only (C1 opens the session, C2 does not know the doctor). */
  retrievals: Bound;
  sessions: SessionLimits;
}

export const DEFAULT_C2_LIMITS: C2Limits = {
  shares: DEFAULT_TICKET_LIMITS,
  retrievals: DEFAULT_TICKET_LIMITS.total,
  sessions: DEFAULT_SESSION_LIMITS,
};

/** What C2 holds for callers right now, by the stores' own count (entries, bytes of the values). */
export interface C2Held {
  shares: Bound;
  retrievals: Bound;
}

export interface RunningC2 extends RunningDaemon {
  held(): C2Held;
  /** The protocol sessions C1 holds open here now (the metrics' sessions in flight). */
  openSessions(): number;
  /** Every collection's replica file now (the metrics' database size). */
  databases(): string[];
}

/** C2's main: the key holder's two services; no storage beyond the key. */
export async function startC2(config: C2Config): Promise<RunningC2> {
  const pk = config.crypto.publicKey;
  // First: a trail that cannot be opened stops C2 before it holds anything else.
  const audit = daemonAudit(config.auditPath, config.log, config.transport);
  const replicas = new Collections<ReplicaStore>({
    dbPath: config.dbPath,
    open: (path) => new ReplicaStore(path, config.fast.pk1),
    max: config.maxCollections,
    daemon: 'C2',
    // C1 may hold a collection whose replica C2 lost or never got: the owner's repair writes it.
    hint: (name) => `its replica is written by the collection's uploads, or by \`fnn repair --collection ${name}\``,
  });
  const replica = replicas.defaultStore;
  const limits = { ...DEFAULT_C2_LIMITS, ...config.limits };
  const deps = {
    crypto: config.crypto,
    retrievals: new RetrievalStore({ limits: { total: limits.retrievals } }),
    sessions: limits.sessions,
    codec: new WireCodec(pk.cipherBytes),
    log: config.log,
    observe: observeAll([...(config.observers ?? []), ...audit.observers]),
    replica,
    replicas,
    fast: {
      crypto: config.fast,
      replica: () => replica.source(),
      shares: new TicketStore<QueryShares>('query share ticket', { limits: limits.shares }),
    },
  };
  const secure = secureComputationService(deps);
  const { shares } = deps.fast;
  const daemon = await serveDaemon({
    name: 'C2',
    listen: config.listen,
    transport: config.transport,
    log: config.log,
    services: [
      { definition: SecureComputationService, implementation: secure },
      { definition: RetrievalService, implementation: retrievalService(deps, secure.openSessions) },
      { definition: ReplicaService, implementation: replicaService(deps) },
      audit.service(deps.observe),
    ],
    isRevoked: config.isRevoked,
    onRefused: deps.observe,
    facts: { keyBits: pk.bits },
    close: () => {
      replicas.close();
      audit.close();
    },
  });
  return {
    ...daemon,
    openSessions: () => secure.openSessions(),
    databases: () => replicas.files(),
    held: () => ({
      shares: { entries: shares.size, bytes: shares.bytes },
      retrievals: { entries: deps.retrievals.size, bytes: deps.retrievals.bytes },
    }),
  };
}

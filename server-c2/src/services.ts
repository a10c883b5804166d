import { status as Code, type Metadata, type ServerDuplexStream, type ServerUnaryCall, type ServerWritableStream } from '@grpc/grpc-js';
import * as wire from '@fnn/proto';
import {
  checkImageSize,
  checkLookupTags,
  checkPixelDepth,
  collectionOf,
  damagedToWire,
  handlers,
  type Collections,
} from '@fnn/server-common';
import {
  C2SessionStream,
  c1MessageFromWire,
  c2MessageToWire,
  residueToBytes,
  invalidInput,
  notFound,
  DEFAULT_COLLECTION,
  checkShares,
  shareValue,
  callerOf,
  resourceExhausted,
  valuesPerMessage,
  type FastC2Deps,
  type C2Crypto,
  type CallObserver,
  type Logger,
  type RetrievalStore,
  type WireCodec,
} from '@fnn/shared';
import type { ReplicaStore } from './replica-store';

export interface C2ServiceDeps {
  crypto: C2Crypto;
  retrievals: RetrievalStore;
  codec: WireCodec;
  log: Logger;
  /** The fast protocol: C1's public key, the replica, the doctors' query shares. */
  fast: FastC2Deps;
  /** The default collection's replica (what `fast.replica` reads). */
  replica: ReplicaStore;
  /** Every collection's replica, the default one included; without it C2 holds the default collection only. */
  replicas?: Collections<ReplicaStore>;
  sessions: SessionLimits;
  /** Hears of every call once it has ended (the audit trail and the metrics). */
  observe?: CallObserver;
}

/** What C1 may hold open at C2: a session is C2's memory and a stream until it ends. */
export interface SessionLimits {
  /** A session with no message from C1 for this long is ended (DEADLINE_EXCEEDED). */
  idleMs: number;
  /** Sessions open at once; the next one is refused (RESOURCE_EXHAUSTED). */
  max: number;
}

/** C1 sends the next message as soon as it has C2's reply: a minute of silence is a stuck or gone C1. */
export const DEFAULT_SESSION_LIMITS: SessionLimits = { idleMs: 60_000, max: 64 };

/** Ends an idle session; forwarded as DEADLINE_EXCEEDED by toStatus, the one mapping. */
class SessionIdle extends Error {
  readonly code = Code.DEADLINE_EXCEEDED;
}

/** The next message of the session, or SessionIdle once C1 has been silent for `idleMs`. */
async function nextWithin<T>(iterator: AsyncIterator<T>, idleMs: number): Promise<IteratorResult<T>> {
  let timer: NodeJS.Timeout | undefined;
  const idle = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new SessionIdle('session idle')), idleMs);
  });
  try {
    return await Promise.race([iterator.next(), idle]);
  } finally {
    clearTimeout(timer);
  }
}

/** The replica of the collection a call names (NOT_FOUND for one C2 does not hold). */
function replicaOf(deps: C2ServiceDeps, metadata: Metadata): ReplicaStore {
  const name = collectionOf(metadata);
  if (deps.replicas) return deps.replicas.find(name);
  if (name !== DEFAULT_COLLECTION) throw notFound(`C2 has no collection "${name}"`);
  return deps.replica;
}

/** The replica of a collection a call names, for a question (Status, ListGroups): none yet answers as an empty one. */
function replicaIfAny(deps: C2ServiceDeps, metadata: Metadata): ReplicaStore | undefined {
  const name = collectionOf(metadata);
  return deps.replicas ? deps.replicas.get(name) : name === DEFAULT_COLLECTION ? deps.replica : undefined;
}

/** C2's protocol service: one C2SessionStream per stream, messages answered strictly in order. */
export function secureComputationService(deps: C2ServiceDeps): wire.SecureComputationServer & { openSessions(): number } {
  const { stream } = handlers(deps.log, deps.observe);
  const { idleMs, max } = deps.sessions;
  let open = 0;
  return {
    openSessions: () => open,
    session: (call: ServerDuplexStream<wire.C1Message, wire.C2Message>) => {
      if (open >= max) {
        void stream('Session', call, () => Promise.reject(resourceExhausted(`C2 has ${open} sessions open, at most ${max}; try later`)), {
          ok: 'session done',
          failed: 'session refused',
        });
        return;
      }
      open++;
      // The session's collection is read when a fast session opens (its replica as it is then): an unknown one is NOT_FOUND there.
      const fast: FastC2Deps = { ...deps.fast, replica: () => replicaOf(deps, call.metadata).source() };
      const session = new C2SessionStream({ crypto: deps.crypto, retrievals: deps.retrievals, fast });
      void stream(
        'Session',
        call,
        async (_requestId, fields) => {
          let steps = 0;
          try {
            collectionOf(call.metadata); // a bad name ends the session before its first message, whichever its protocol
            // destroyOnReturn: false, or the stream is destroyed when the loop ends and call.end() sends no status.
            const messages = (call.iterator({ destroyOnReturn: false }) as AsyncIterable<wire.C1Message>)[Symbol.asyncIterator]();
            for (;;) {
              // Only C1's silence counts: C2's own work on a message does not run down the idle timeout.
              const next = await nextWithin(messages, idleMs);
              if (next.done) break;
              const reply = await session.handle(c1MessageFromWire(deps.codec, next.value));
              steps++;
              call.write(c2MessageToWire(deps.codec, reply));
            }
            call.end();
          } catch (e) {
            if (e instanceof SessionIdle) fields.idleMs = idleMs;
            throw e;
          } finally {
            // An unfinished retrieval's reserved space goes back to the store.
            session.close();
            // The id comes with the first message: known once the session ends, whichever way.
            if (session.id !== undefined) fields.session = session.id;
            fields.steps = steps;
          }
        },
        { ok: 'session done', failed: 'session failed' },
      ).finally(() => open--);
    },
  };
}

/** Resolves once a stream's buffer has room again, or the stream is gone (a cancelled call never drains). */
function drained(call: ServerWritableStream<unknown, unknown>): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      for (const event of ['drain', 'cancelled', 'close', 'error']) call.off(event, done);
      resolve();
    };
    for (const event of ['drain', 'cancelled', 'close', 'error']) call.once(event, done);
  });
}

/** The doctor's half of retrieval, and status. */
export function retrievalService(deps: C2ServiceDeps, openSessions: () => number): wire.RetrievalServer {
  const { unary, stream } = handlers(deps.log, deps.observe);
  const pk = deps.crypto.publicKey;
  return {
    // m + r in parts below the message limit (§2.7), written as the doctor reads
    // them: C2 holds the result and one or two serialised parts, never a copy of all.
    // The ticket is spent when the stream starts: a doctor whose stream breaks runs the query again.
    retrieve: (call: ServerWritableStream<wire.RetrieveRequest, wire.RetrievedValues>) =>
      void stream('Retrieve', call, async (_requestId, fields) => {
        // The ticket is a session's, whichever collection it searched: the name is checked, not needed.
        collectionOf(call.metadata);
        const values = deps.retrievals.take(call.request.ticket);
        const perMessage = valuesPerMessage(Math.ceil(pk.bits / 8));
        let parts = 0;
        for (let at = 0; at < values.length && !call.cancelled; at += perMessage) {
          parts++;
          if (!call.write({ values: values.slice(at, at + perMessage).map(residueToBytes) })) await drained(call);
        }
        fields.parts = parts;
        call.end();
      }),
    // Sessions and retrievals are C2's in all; the replica is the named collection's (none yet: empty).
    status: unary<wire.StatusRequest, wire.KeyHolderStatus>('Status', (_req, _requestId, _fields, metadata) => {
      const replica = replicaIfAny(deps, metadata);
      return {
        keyBits: pk.bits,
        keyFingerprint: pk.fingerprint(),
        openSessions: openSessions(),
        pendingRetrievals: deps.retrievals.size,
        replicaRecords: BigInt(replica?.count ?? 0),
        pk1Fingerprint: deps.fast.crypto.pk1.fingerprint(),
        collectionId: replica?.collectionId() ?? Buffer.alloc(0),
      };
    }),
    // The caller's verified certificate is on the call, not the request: read it there.
    putShare: (call: ServerUnaryCall<wire.QueryShare, wire.ShareTicket>, callback) =>
      unary<wire.QueryShare, wire.ShareTicket>('PutShare', (req, _requestId, _fields, metadata) => {
        // A share is held in memory for minutes: refuse one that cannot belong to this collection, value by value.
        const p = replicaOf(deps, metadata).params();
        if (!p) throw invalidInput('the collection is empty');
        const share = checkShares(p, {
          distance: req.distance.map(shareValue),
          bound: req.bound.map(shareValue),
          coarse: req.coarse.map(shareValue),
        });
        return { ticket: deps.fast.shares.put(share, callerOf(call.getAuthContext()?.sslPeerCertificate)) };
      })(call, callback),
  };
}

/** The owner's replica of the packed records (under C1's key). */
export function replicaService(deps: C2ServiceDeps): wire.ReplicaServer {
  const { unary } = handlers(deps.log, deps.observe);
  const pk2 = deps.crypto.publicKey;
  const pk1 = deps.fast.crypto.pk1;
  return {
    putGroup: unary<wire.ReplicaGroup, wire.ReplicaReply>('Replica.PutGroup', (req, _requestId, fields, metadata) => {
      if (req.keyFingerprint !== pk2.fingerprint() || req.pk1Fingerprint !== pk1.fingerprint())
        throw invalidInput("encrypted under other keys than this deployment's");
      checkImageSize(req.width, req.height);
      checkPixelDepth(req.maxValue);
      const change = req.group;
      if (!change) throw invalidInput('no group');
      // The audit trail's "what": the group's number and how many members it holds after the change.
      Object.assign(fields, { group: change.group, records: req.members.length });
      checkLookupTags(req.members.map((m) => m.lookupTag));
      const columns = change.columns ? deps.codec.columnsFromWire(change.columns, false) : undefined;
      if (columns && !pk1.areValidCiphertexts([...columns.distance, ...columns.bound, ...columns.coarse]))
        throw invalidInput('invalid ciphertext');
      // A collection's first change creates its replica (its file, within C2's bound on collections).
      const replica = deps.replicas ? deps.replicas.create(collectionOf(metadata)) : replicaOf(deps, metadata);
      replica.stageGroup(
        { width: req.width, height: req.height, maxValue: req.maxValue },
        {
          group: change.group,
          version: Buffer.from(change.version),
          members: req.members.map((m) => ({ slot: m.slot, lookupTag: Buffer.from(m.lookupTag) })),
          columns,
        },
        req.collectionId,
      );
      return { total: BigInt(replica.countWithPending()) };
    }),
    commitGroup: unary<wire.CommitGroupRequest, wire.CommitGroupReply>('Replica.CommitGroup', (req, _requestId, fields, metadata) => {
      const replica = replicaOf(deps, metadata);
      if (req.collectionId.length === 0) throw invalidInput('no collection id');
      // A digest is 32 hex digits (groupDigest): anything else matches nothing, and is not stored.
      if (req.digest.length > 64) throw invalidInput('a group digest is 32 hex digits');
      const [settled] = replica.settleGroups(req.collectionId, [{ group: req.group, digest: req.digest || undefined }], true);
      Object.assign(fields, { group: req.group, agrees: settled !== 'differs' });
      return { agrees: settled !== 'differs', total: BigInt(replica.count) };
    }),
    // A collection C2 has no replica of yet lists as an empty replica: `fnn check` then says which groups to repair.
    listGroups: unary<wire.ListGroupsRequest, wire.GroupList>('Replica.ListGroups', (_req, _requestId, _fields, metadata) => {
      const replica = replicaIfAny(deps, metadata);
      if (!replica) return { collectionId: Buffer.alloc(0), width: 0, height: 0, maxValue: 0, groups: [], damaged: [] };
      const shape = replica.shape();
      return {
        collectionId: replica.collectionId() ?? Buffer.alloc(0),
        width: shape?.width ?? 0,
        height: shape?.height ?? 0,
        maxValue: shape?.maxValue ?? 0,
        groups: replica.groupStates().map((g) => ({
          group: g.group,
          digest: g.digest ?? '',
          members: g.members,
          pending: g.pending !== undefined,
          pendingDigest: g.pending?.digest ?? '',
          pendingMembers: g.pending?.members ?? 0,
        })),
        damaged: damagedToWire(replica.verify()),
      };
    }),
  };
}

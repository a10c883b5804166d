import type { Metadata, sendUnaryData, ServerDuplexStream, ServerUnaryCall } from '@grpc/grpc-js';
import * as wire from '@fnn/proto';
import {
  KeyHolderSession,
  checkShares,
  toStatus,
  residueToBytes,
  invalidInput,
  residueFromBytes,
  type C2SessionDeps,
  type KeyHolderCrypto,
  type Logger,
  type RetrievalStore,
  type WireCodec,
} from '@fnn/shared';
import type { ReplicaStore } from './replica-store';

export interface KeyHolderDeps {
  crypto: KeyHolderCrypto;
  retrievals: RetrievalStore;
  codec: WireCodec;
  log: Logger;
  /** The fast protocol: C1's public key, the replica, the doctors' query shares. */
  fast: NonNullable<C2SessionDeps['fast']>;
  replica: ReplicaStore;
}

/** C2's protocol service: one KeyHolderSession per stream, messages answered strictly in order. */
export function secureComputationService(deps: KeyHolderDeps): wire.SecureComputationServer & { openSessions(): number } {
  let open = 0;
  return {
    openSessions: () => open,
    session: (call: ServerDuplexStream<wire.C1Message, wire.C2Message>) => {
      open++;
      const requestId = requestIdOf(call.metadata);
      const session = new KeyHolderSession({ crypto: deps.crypto, retrievals: deps.retrievals, fast: deps.fast });
      const started = Date.now();
      let steps = 0;
      void (async () => {
        try {
          // destroyOnReturn: false, or the stream is destroyed when the loop ends and call.end() sends no status.
          for await (const message of call.iterator({ destroyOnReturn: false }) as AsyncIterable<wire.C1Message>) {
            const reply = await session.handle(deps.codec.c1FromWire(message));
            steps++;
            call.write(deps.codec.c2ToWire(reply));
          }
          call.end();
          deps.log.info({ requestId, session: session.id, steps, ms: Date.now() - started }, 'session done');
        } catch (error) {
          const s = toStatus(error);
          deps.log.warn({ requestId, session: session.id, steps, code: s.code, reason: s.details }, 'session failed');
          if (!call.cancelled) call.emit('error', s);
        } finally {
          open--;
        }
      })();
    },
  };
}

/** The doctor's half of retrieval, and status. */
export function retrievalService(deps: KeyHolderDeps, openSessions: () => number): wire.RetrievalServer {
  const pk = deps.crypto.publicKey;
  return {
    retrieve: (call: ServerUnaryCall<wire.RetrieveRequest, wire.RetrieveReply>, callback: sendUnaryData<wire.RetrieveReply>) => {
      try {
        const images = deps.retrievals.take(call.request.ticket);
        callback(null, { images: images.map((im) => ({ values: im.map(residueToBytes) })) });
        deps.log.info({ requestId: requestIdOf(call.metadata), results: images.length }, 'retrieved');
      } catch (error) {
        const s = toStatus(error);
        deps.log.warn({ rpc: 'Retrieve', code: s.code, reason: s.details }, 'failed');
        callback(s);
      }
    },
    status: (_call: ServerUnaryCall<wire.StatusRequest, wire.KeyHolderStatus>, callback: sendUnaryData<wire.KeyHolderStatus>) =>
      callback(null, {
        keyBits: pk.bits,
        keyFingerprint: pk.fingerprint(),
        openSessions: openSessions(),
        pendingRetrievals: deps.retrievals.size,
        replicaRecords: BigInt(deps.replica.count),
      }),
    putShare: (call: ServerUnaryCall<wire.QueryShare, wire.ShareTicket>, callback: sendUnaryData<wire.ShareTicket>) => {
      try {
        const values = (list: Uint8Array[]) =>
          list.map((b) => {
            if (b.length > 64) throw invalidInput('query share value too large');
            return residueFromBytes(b);
          });
        // A share is held in memory for minutes: refuse one that cannot belong to this collection.
        const p = deps.replica.params();
        if (!p) throw invalidInput('the collection is empty');
        const share = checkShares(p, { distance: values(call.request.distance), bound: values(call.request.bound) });
        const ticket = deps.fast.shares.put(share);
        callback(null, { ticket });
      } catch (error) {
        const s = toStatus(error);
        deps.log.warn({ rpc: 'PutShare', code: s.code, reason: s.details }, 'failed');
        callback(s);
      }
    },
  };
}

/** The owner's replica of the packed records (under C1's key). */
export function replicaService(deps: KeyHolderDeps): wire.ReplicaServer {
  const unary =
    <Req, Res>(name: string, handler: (req: Req) => Res) =>
    (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => {
      try {
        callback(null, handler(call.request));
      } catch (error) {
        const s = toStatus(error);
        deps.log.warn({ rpc: name, code: s.code, reason: s.details }, 'failed');
        callback(s);
      }
    };
  const pk2 = deps.crypto.publicKey;
  const pk1 = deps.fast.crypto.evaluatorKey;
  return {
    putGroup: unary<wire.ReplicaGroup, wire.ReplicaReply>('Replica.PutGroup', (req) => {
      if (req.keyFingerprint !== pk2.fingerprint() || req.evaluatorKeyFingerprint !== pk1.fingerprint())
        throw invalidInput('encrypted under other keys than this deployment\'s');
      if (req.width < 1 || req.height < 1 || req.width * req.height > 512 * 512 || req.maxValue < 1 || req.maxValue > 65535)
        throw invalidInput('impossible image shape');
      const change = req.group;
      if (!change) throw invalidInput('no group');
      for (const m of req.members) if (m.lookupTag.length !== 32) throw invalidInput('lookup tag must be 32 bytes');
      const columns = change.columns ? deps.codec.columnsFromWire(change.columns, false) : undefined;
      if (columns && !pk1.areValidCiphertexts([...columns.pixels, ...columns.embedding])) throw invalidInput('invalid ciphertext');
      deps.replica.putGroup(
        { width: req.width, height: req.height, maxValue: req.maxValue },
        {
          group: change.group,
          version: Buffer.from(change.version),
          members: req.members.map((m) => ({ slot: m.slot, lookupTag: Buffer.from(m.lookupTag) })),
          columns,
        },
      );
      return { total: BigInt(deps.replica.count) };
    }),
  };
}

function requestIdOf(metadata: Metadata): string {
  const given = metadata.get('x-request-id')[0];
  return typeof given === 'string' && /^[\w.-]{1,64}$/.test(given) ? given : '-';
}

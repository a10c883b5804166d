import type { ServerDuplexStream } from '@grpc/grpc-js';
import * as wire from '@fnn/proto';
import { checkImageSize, checkLookupTags, checkPixelDepth, handlers } from '@fnn/server-common';
import {
  C2SessionStream,
  c1MessageFromWire,
  c2MessageToWire,
  residueToBytes,
  invalidInput,
  checkShares,
  shareValue,
  type FastC2Deps,
  type C2Crypto,
  type Logger,
  type RetrievalStore,
  type WireCodec,
} from '@fnn/shared';
import type { ReplicaStore } from './replica-store';

export interface KeyHolderDeps {
  crypto: C2Crypto;
  retrievals: RetrievalStore;
  codec: WireCodec;
  log: Logger;
  /** The fast protocol: C1's public key, the replica, the doctors' query shares. */
  fast: FastC2Deps;
  replica: ReplicaStore;
}

/** C2's protocol service: one C2SessionStream per stream, messages answered strictly in order. */
export function secureComputationService(deps: KeyHolderDeps): wire.SecureComputationServer & { openSessions(): number } {
  const { stream } = handlers(deps.log);
  let open = 0;
  return {
    openSessions: () => open,
    session: (call: ServerDuplexStream<wire.C1Message, wire.C2Message>) => {
      open++;
      const session = new C2SessionStream({ crypto: deps.crypto, retrievals: deps.retrievals, fast: deps.fast });
      void stream(
        'Session',
        call,
        async (_requestId, fields) => {
          let steps = 0;
          try {
            // destroyOnReturn: false, or the stream is destroyed when the loop ends and call.end() sends no status.
            for await (const message of call.iterator({ destroyOnReturn: false }) as AsyncIterable<wire.C1Message>) {
              const reply = await session.handle(c1MessageFromWire(deps.codec, message));
              steps++;
              call.write(c2MessageToWire(deps.codec, reply));
            }
            call.end();
          } finally {
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

/** The doctor's half of retrieval, and status. */
export function retrievalService(deps: KeyHolderDeps, openSessions: () => number): wire.RetrievalServer {
  const { unary } = handlers(deps.log);
  const pk = deps.crypto.publicKey;
  return {
    retrieve: unary<wire.RetrieveRequest, wire.RetrieveReply>('Retrieve', (req, _requestId, fields) => {
      const images = deps.retrievals.take(req.ticket);
      fields.results = images.length;
      return { images: images.map((im) => ({ values: im.map(residueToBytes) })) };
    }),
    status: unary<wire.StatusRequest, wire.KeyHolderStatus>('Status', () => ({
      keyBits: pk.bits,
      keyFingerprint: pk.fingerprint(),
      openSessions: openSessions(),
      pendingRetrievals: deps.retrievals.size,
      replicaRecords: BigInt(deps.replica.count),
      pk1Fingerprint: deps.fast.crypto.pk1.fingerprint(),
    })),
    putShare: unary<wire.QueryShare, wire.ShareTicket>('PutShare', (req) => {
      // A share is held in memory for minutes: refuse one that cannot belong to this collection, value by value.
      const p = deps.replica.params();
      if (!p) throw invalidInput('the collection is empty');
      const share = checkShares(p, { distance: req.distance.map(shareValue), bound: req.bound.map(shareValue) });
      return { ticket: deps.fast.shares.put(share) };
    }),
  };
}

/** The owner's replica of the packed records (under C1's key). */
export function replicaService(deps: KeyHolderDeps): wire.ReplicaServer {
  const { unary } = handlers(deps.log);
  const pk2 = deps.crypto.publicKey;
  const pk1 = deps.fast.crypto.pk1;
  return {
    putGroup: unary<wire.ReplicaGroup, wire.ReplicaReply>('Replica.PutGroup', (req) => {
      if (req.keyFingerprint !== pk2.fingerprint() || req.pk1Fingerprint !== pk1.fingerprint())
        throw invalidInput("encrypted under other keys than this deployment's");
      checkImageSize(req.width, req.height);
      checkPixelDepth(req.maxValue);
      const change = req.group;
      if (!change) throw invalidInput('no group');
      checkLookupTags(req.members.map((m) => m.lookupTag));
      const columns = change.columns ? deps.codec.columnsFromWire(change.columns, false) : undefined;
      if (columns && !pk1.areValidCiphertexts([...columns.distance, ...columns.bound])) throw invalidInput('invalid ciphertext');
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

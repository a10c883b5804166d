import type { Metadata, sendUnaryData, ServerDuplexStream, ServerUnaryCall } from '@grpc/grpc-js';
import * as wire from '@fnn/proto';
import {
  KeyHolderSession,
  toStatus,
  residueToBytes,
  type KeyHolderCrypto,
  type Logger,
  type RetrievalStore,
  type WireCodec,
} from '@fnn/shared';

export interface KeyHolderDeps {
  crypto: KeyHolderCrypto;
  retrievals: RetrievalStore;
  codec: WireCodec;
  log: Logger;
}

/** C2's protocol service: one KeyHolderSession per stream, messages answered strictly in order. */
export function secureComputationService(deps: KeyHolderDeps): wire.SecureComputationServer & { openSessions(): number } {
  let open = 0;
  return {
    openSessions: () => open,
    session: (call: ServerDuplexStream<wire.C1Message, wire.C2Message>) => {
      open++;
      const requestId = requestIdOf(call.metadata);
      const session = new KeyHolderSession(deps.crypto, deps.retrievals);
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
      }),
  };
}

function requestIdOf(metadata: Metadata): string {
  const given = metadata.get('x-request-id')[0];
  return typeof given === 'string' && /^[\w.-]{1,64}$/.test(given) ? given : '-';
}

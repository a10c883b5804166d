import { Metadata, credentials, type ChannelOptions } from '@grpc/grpc-js';
import { SecureComputationClient, RetrievalClient } from '@fnn/proto';
import { fromPeerError, peerUnavailable, type C2Message, type SessionTransport, type WireCodec } from '@fnn/shared';

export const GRPC_MESSAGE_LIMIT = 64 * 1024 * 1024;
export const CHANNEL_OPTIONS: ChannelOptions = {
  'grpc.max_receive_message_length': GRPC_MESSAGE_LIMIT,
  'grpc.max_send_message_length': GRPC_MESSAGE_LIMIT,
};

/** C1's connection to C2: one bidirectional stream per query session. */
export class KeyHolderLink {
  private readonly secure: SecureComputationClient;
  private readonly retrieval: RetrievalClient;

  constructor(
    readonly address: string,
    private readonly codec: WireCodec,
  ) {
    this.secure = new SecureComputationClient(address, credentials.createInsecure(), CHANNEL_OPTIONS);
    this.retrieval = new RetrievalClient(address, credentials.createInsecure(), CHANNEL_OPTIONS);
  }

  /** A session transport over one stream; every reply is matched to its message in order. */
  openSession(requestId: string, deadline: Date): SessionTransport {
    const metadata = new Metadata();
    metadata.set('x-request-id', requestId);
    const call = this.secure.session(metadata, { deadline });
    const waiting: { resolve: (m: C2Message) => void; reject: (e: unknown) => void }[] = [];
    let failure: unknown;
    let closed = false;
    const fail = (error: unknown) => {
      failure ??= error;
      for (const w of waiting.splice(0)) w.reject(failure);
    };
    call.on('data', (message) => {
      const w = waiting.shift();
      if (!w) return fail(peerUnavailable('C2 sent a reply nobody asked for'));
      try {
        w.resolve(this.codec.c2FromWire(message));
      } catch (e) {
        w.reject(e);
      }
    });
    call.on('error', (e) => fail(closed ? peerUnavailable('session closed') : fromPeerError(e, 'C2')));
    call.on('end', () => fail(peerUnavailable('C2 ended the session early')));
    return {
      exchange: (message) => {
        if (failure) return Promise.reject(failure);
        return new Promise((resolve, reject) => {
          waiting.push({ resolve, reject });
          call.write(this.codec.c1ToWire(message));
        });
      },
      close: () => {
        closed = true;
        call.end();
      },
    };
  }

  /** Is C2 up and on our key? For status only; a short deadline. */
  reachable(timeoutMs = 2000): Promise<boolean> {
    return new Promise((resolve) => {
      this.retrieval.status({}, new Metadata(), { deadline: new Date(Date.now() + timeoutMs) }, (err, reply) =>
        resolve(!err && reply !== undefined),
      );
    });
  }

  close(): void {
    this.secure.close();
    this.retrieval.close();
  }
}

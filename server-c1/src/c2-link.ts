import { Metadata, type ChannelOptions } from '@grpc/grpc-js';
import { SecureComputationClient, RetrievalClient, type KeyHolderStatus } from '@fnn/proto';
import {
  COLLECTION_METADATA,
  DEFAULT_COLLECTION,
  c1MessageToWire,
  c2MessageFromWire,
  channelCredentials,
  fromPeerError,
  messageSizeOptions,
  peerUnavailable,
  type C2Message,
  type SessionTransport,
  type Transport,
  type WireCodec,
} from '@fnn/shared';

export const CHANNEL_OPTIONS: ChannelOptions = {
  // Closing the link must close its sockets too, so a stopped C1 exits.
  'grpc.use_local_subchannel_pool': 1,
  // C2 may restart: retry the connection often, so the next query finds it back within a second or two.
  'grpc.initial_reconnect_backoff_ms': 250,
  'grpc.max_reconnect_backoff_ms': 2000,
};

/** How long a query waits for a connection to C2 before failing with UNAVAILABLE. */
export const CONNECT_TIMEOUT_MS = 5000;

/** C1's connection to C2: one bidirectional stream per query session. */
export class C2Link {
  private readonly secure: SecureComputationClient;
  private readonly retrieval: RetrievalClient;
  private open = 0;

  constructor(
    readonly address: string,
    private readonly codec: WireCodec,
    /** C1's own certificate: C2 opens protocol sessions to the c1 role only. */
    transport: Transport,
  ) {
    const credentials = channelCredentials(transport, 'c2');
    // The deployment's message limit (FNN_MAX_MESSAGE_BYTES), read when C1 starts.
    const options = { ...CHANNEL_OPTIONS, ...messageSizeOptions() };
    this.secure = new SecureComputationClient(address, credentials, options);
    this.retrieval = new RetrievalClient(address, credentials, options);
  }

  /**
   * A session transport over one stream; every reply is matched to its message
   * in order. Waits (briefly) for the connection first, so a C2 that just
   * restarted is found again and a C2 that is down fails fast and clearly.
   */
  async openSession(requestId: string, deadline: Date, collection = DEFAULT_COLLECTION): Promise<SessionTransport> {
    await this.connected();
    const metadata = new Metadata();
    metadata.set('x-request-id', requestId);
    // C2 answers the session from this collection's replica; none named: the default's, as a C2 of one collection did.
    if (collection !== DEFAULT_COLLECTION) metadata.set(COLLECTION_METADATA, collection);
    const call = this.secure.session(metadata, { deadline });
    // A session is held until its stream's final status, however it ends (the metrics' sessions in flight).
    this.open++;
    call.once('status', () => this.open--);
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
        w.resolve(c2MessageFromWire(this.codec, message));
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
          call.write(c1MessageToWire(this.codec, message));
        });
      },
      close: () => {
        closed = true;
        call.end();
      },
    };
  }

  /** The sessions with C2 this link holds open now. */
  get openSessions(): number {
    return this.open;
  }

  private connected(): Promise<void> {
    return new Promise((resolve, reject) =>
      this.secure.waitForReady(new Date(Date.now() + CONNECT_TIMEOUT_MS), (err) =>
        err
          ? reject(peerUnavailable(`C2 at ${this.address} is unavailable (no connection within ${CONNECT_TIMEOUT_MS / 1000} s)`))
          : resolve(),
      ),
    );
  }

  /** C2's Retrieval.Status (its keys and replica) within a short deadline; rejects with the gRPC error. */
  keyHolderStatus(timeoutMs = 2000): Promise<KeyHolderStatus> {
    return new Promise((resolve, reject) => {
      this.retrieval.status({}, new Metadata(), { deadline: new Date(Date.now() + timeoutMs) }, (err, reply) =>
        err || reply === undefined ? reject(err ?? new Error('no reply')) : resolve(reply),
      );
    });
  }

  /** Does C2 answer? For status only; a short deadline. */
  reachable(timeoutMs = 2000): Promise<boolean> {
    return this.keyHolderStatus(timeoutMs).then(
      () => true,
      () => false,
    );
  }

  close(): void {
    this.secure.close();
    this.retrieval.close();
  }
}

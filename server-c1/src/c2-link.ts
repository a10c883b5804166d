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
  private secure!: SecureComputationClient;
  private retrieval!: RetrievalClient;
  private open = 0;
  /** The serial of C2's certificate on the connection now; none before a handshake. */
  private serial: string | undefined;
  /** The serial of the last certificate refused as revoked, for the error a query gets. */
  private revokedSerial: string | undefined;

  constructor(
    readonly address: string,
    private readonly codec: WireCodec,
    /** C1's own certificate: C2 opens protocol sessions to the c1 role only. */
    private readonly transport: Transport,
    /** The deployment's revocation list: a C2 whose certificate is on it gets nothing from C1. */
    private readonly isRevoked?: (serial: string) => boolean,
  ) {
    this.dial();
  }

  private dial(): void {
    const isRevoked = this.isRevoked;
    const credentials = channelCredentials(this.transport, 'c2', {
      isRevoked:
        isRevoked &&
        ((serial) => {
          const revoked = isRevoked(serial);
          if (revoked) this.revokedSerial = serial;
          return revoked;
        }),
      accepted: (serial) => {
        this.serial = serial;
        this.revokedSerial = undefined;
      },
    });
    // The deployment's message limit (FNN_MAX_MESSAGE_BYTES), read when C1 starts.
    const options = { ...CHANNEL_OPTIONS, ...messageSizeOptions() };
    this.secure = new SecureComputationClient(this.address, credentials, options);
    this.retrieval = new RetrievalClient(this.address, credentials, options);
  }

  /**
   * The handshake checks the list, but a connection made before C2's
   * certificate was revoked would outlive it: such a connection is dropped
   * here, before anything is sent, so the next handshake checks it again.
   */
  private dropIfRevoked(): void {
    if (this.serial === undefined || !this.isRevoked?.(this.serial)) return;
    this.revokedSerial = this.serial;
    this.serial = undefined;
    this.secure.close();
    this.retrieval.close();
    this.dial();
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
    this.dropIfRevoked();
    return new Promise((resolve, reject) =>
      this.secure.waitForReady(new Date(Date.now() + CONNECT_TIMEOUT_MS), (err) => {
        if (!err) return resolve();
        if (this.revokedSerial !== undefined)
          return reject(
            peerUnavailable(
              `C2 at ${this.address} presents a revoked certificate (serial ${this.revokedSerial}): C1 sends it nothing; issue C2 a new one`,
            ),
          );
        reject(peerUnavailable(`C2 at ${this.address} is unavailable (no connection within ${CONNECT_TIMEOUT_MS / 1000} s)`));
      }),
    );
  }

  /** C2's Retrieval.Status (its keys and replica) within a short deadline; rejects with the gRPC error. */
  keyHolderStatus(timeoutMs = 2000): Promise<KeyHolderStatus> {
    this.dropIfRevoked();
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

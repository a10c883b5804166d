import type * as wire from '@fnn/proto';
import type { BatchEncryptor, C1Crypto, C2Crypto } from '../crypto/backend';
import type { PublicKey } from '../crypto/paillier';
import type { RecordKey } from '../crypto/symmetric';
import type { GrayImage } from '../image/image';
import type { RecordMetadata } from '../image/record-metadata';
import type { WireCodec } from '../wire/codec';
import type { C1Message, C2Message, SessionFamily, SessionTransport } from './messages';
import type { ProgressListener } from './progress';
import type { RecordSource } from './paper/records';
import type { RetrievalStore } from './paper/retrieval';
import type { FastC1Crypto, PackedRecordSource } from './fast/c1';
import type { FastC2Crypto, ReplicaSource } from './fast/c2';
import type { QueryShares } from './fast/doctor';
import type { TicketStore } from './ticket-store';

// One protocol = one module with four sides (docs/ARCHITECTURE.md, "Protocol
// modules"): what the doctor sends and opens, what C1 runs, what C2 answers in
// a session, and which stored layout it reads (what the owner must upload).
// The daemons and the CLI call these sides through the registry without
// knowing which protocol runs.

/** A protocol's name: its case in QueryRequest.protocol and QueryReply.answer. */
export type ProtocolName = NonNullable<wire.QueryRequest['protocol']>['$case'];

/** The protocol's part of a QueryRequest (the oneof, with its case). */
export type WireQuery = NonNullable<wire.QueryRequest['protocol']>;
/** The protocol's part of a QueryReply (a failure is not a protocol's). */
export type WireAnswer = Exclude<NonNullable<wire.QueryReply['answer']>, { $case: 'failure' }>;

/**
 * What C1 stores for the protocols: the paper's per-pixel layout (fnn, bf) and
 * the packed layout (fast). A collection holds the packed layout always and
 * the paper's unless uploaded without it.
 */
export type Layout = 'paper' | 'packed';

/** C1's records in the two layouts, each frozen when taken (the candidate list of one query). */
export interface CollectionAtC1 {
  shape(): { width: number; height: number } | undefined;
  /** The paper's layout; refuses (FAILED_PRECONDITION) a collection uploaded without it. */
  snapshot(): RecordSource & { encryptedId(candidate: number): Buffer; sealedImage(candidate: number): Buffer };
  packedSnapshot(): PackedRecordSource & { sealedImage(candidate: number): Buffer; encryptedId(candidate: number): Buffer };
}

/** What C1 gives a protocol for one query, the header already checked against the collection. */
export interface C1QueryContext {
  collection: CollectionAtC1;
  /** pk2 (the collection's key) and the paper's batch crypto. */
  crypto: C1Crypto;
  /** sk1, pk2 and the multi-exponentiation pool (fast). */
  fast: FastC1Crypto;
  codec: WireCodec;
  /** A session with C2 for this query (opened once the request is checked). */
  openSession(): Promise<SessionTransport>;
  k: number;
  requestId: string;
  onProgress?: ProgressListener;
  /** Ciphertexts per message of the paper's retrieval (§2.7); by default what half the message limit holds. */
  retrievalChunkValues?: number;
}

/** A protocol's answer at C1: the reply's oneof and the counts C1 may reveal. */
export interface C1Answer {
  answer: WireAnswer;
  /** `levels` only from the fast protocol (its bound cascade, PROTOCOLS.md §3.5a). */
  stats: Omit<wire.SearchStats, 'levels'> & Partial<Pick<wire.SearchStats, 'levels'>>;
}

/** What C2 gives a protocol's session. */
export interface C2SessionDeps {
  /** sk2 and its batch work. */
  crypto: C2Crypto;
  /** m + r for the doctor (paper protocols, step 7). */
  retrievals: RetrievalStore;
  /** The fast protocol: pk1, the replica and the doctors' query shares; absent at a C2 without a replica. */
  fast?: FastC2Deps;
}

/** What C2 needs for the fast protocol's sessions (PROTOCOLS.md §3.5). */
export interface FastC2Deps {
  crypto: FastC2Crypto;
  /** Read when a fast session opens: the replica as it is at that moment. */
  replica: () => ReplicaSource;
  shares: TicketStore<QueryShares>;
}

/** C2's side of one session: every message after the opening one, each answered in order. */
export interface C2Session {
  reply(message: C1Message): Promise<C2Message>;
  /** The request id C1 gave when opening (for logs). */
  readonly requestId: string;
  /** The session's stream ended, whichever way: give back what it held beyond itself (a reservation). */
  close?(): void;
}

/** A session family's messages to and from the wire (its case of C1Message.protocol and C2Message.protocol). */
export interface SessionWire {
  c1ToWire(codec: WireCodec, m: C1Message): NonNullable<wire.C1Message['protocol']>;
  c1FromWire(codec: WireCodec, sessionId: string, w: NonNullable<wire.C1Message['protocol']>): C1Message;
  c2ToWire(codec: WireCodec, m: C2Message): NonNullable<wire.C2Message['protocol']>;
  c2FromWire(codec: WireCodec, sessionId: string, w: NonNullable<wire.C2Message['protocol']>): C2Message;
}

/** What the doctor's side may ask of the deployment (DoctorClient gives it these). */
export interface DoctorContext {
  pk2: PublicKey;
  recordKey: RecordKey;
  codec: WireCodec;
  encrypt: BatchEncryptor;
  /** C1's Status, fetched once per client. */
  collection(): Promise<wire.DatabaseStatus>;
  /** Deposit a fast query's share v at C2; its ticket. */
  putShare(share: wire.QueryShare): Promise<string>;
  /** m + r from C2 for a paper query's results: every result's values, nearest first, in parts (§2.7). */
  retrieve(ticket: string): AsyncIterable<Uint8Array[]>;
}

/** One neighbour as the doctor's side opens it: E_k(ID) still sealed, the image and metadata in clear. */
export interface Neighbour {
  encryptedId: Uint8Array;
  image: GrayImage;
  /** What the owner sealed with the image ({} for none, or from a C1 that did not send it). */
  metadata: RecordMetadata;
}

export interface ProtocolModule {
  name: ProtocolName;
  /** One line for `--help` and docs. */
  summary: string;
  /** The stored layout the protocol reads. */
  layout: Layout;
  /** What C1's progress counts: records (paper) or groups of records (fast). */
  progressUnit: 'records' | 'groups';
  /** The protocol has a lower-bound stage (its reply's stats carry it). */
  bounded: boolean;
  doctor: {
    /** The protocol's part of a QueryRequest for this image (the header is the client's). */
    query(ctx: DoctorContext, image: GrayImage): Promise<WireQuery>;
    /** The neighbours' sealed IDs and pixels, nearest first, from the protocol's answer to `query`. */
    neighbours(ctx: DoctorContext, answer: WireAnswer, query: GrayImage): Promise<Neighbour[]>;
    /** A refusal worth asking again with a new query (e.g. a group changed under a fast query). */
    retryable(code: number): boolean;
  };
  c1: {
    answer(ctx: C1QueryContext, query: WireQuery): Promise<C1Answer>;
  };
  c2: {
    /** The session family this protocol's C1 side opens (the paper's protocols share one). */
    family: SessionFamily;
    /** Its messages to and from the wire. */
    wire: SessionWire;
    /** C2's side of a session, from its opening message. */
    open(deps: C2SessionDeps, message: C1Message): Promise<{ session: C2Session; reply: C2Message }>;
  };
}

import type * as wire from '@fnn/proto';
import type { BatchEncryptor } from '../crypto/backend';
import type { PublicKey } from '../crypto/paillier';
import { RecordKeyError } from '../encoding/sealed-image';
import type { RecordKey } from '../crypto/symmetric';
import type { GrayImage } from '../image/image';
import type { RecordMetadata } from '../image/record-metadata';
import { squaredDistance } from '../reference';
import { WireCodec } from '../wire/codec';
import type { DoctorContext, ProtocolModule, ProtocolName } from './module';
import type { QueryProgress } from './progress';
import { protocolModule } from './registry';

// The doctor's side of every protocol, as one client over a DoctorLink (gRPC in
// the CLI, the test's clients elsewhere), the way the owner's CollectionWriter
// is over an OwnerLink. It builds a query with the chosen protocol's module,
// asks again when that protocol says a refusal is passing, and opens the answer:
// IDs decrypted with k, pixels recovered, distances measured here (C1 and C2
// never see one).

/** How the doctor reaches C1 and C2. */
export interface DoctorLink {
  /** C1's Status: the collection's shape and key. */
  status(): Promise<wire.DatabaseStatus>;
  /** C2's PutShare: a fast query's share v, held for one session; its ticket. */
  putShare(share: wire.QueryShare): Promise<string>;
  /** C2's Retrieve: m + r of a paper query's results, in parts as they arrive. */
  retrieve(ticket: string): AsyncIterable<Uint8Array[]>;
  /** C1's query, with progress while it runs. */
  query(request: wire.QueryRequest, onProgress: (progress: QueryProgress) => void): Promise<wire.QueryReply>;
}

export interface DoctorNeighbour {
  id: string;
  distance: bigint;
  image: GrayImage;
  /** What the owner sealed with the record: its DICOM header's identity and label; {} for none. */
  metadata: RecordMetadata;
}

export interface DoctorAnswer {
  tag: string;
  protocol: ProtocolName;
  neighbours: DoctorNeighbour[];
  total: number;
  /** Records rejected by the lower bound and C1's time on it; absent for a protocol without one (bf). */
  bound?: { rejected: number; ms: number };
  /** fast only: per stage of the bound cascade ("coarse", "fine", "distance"; PROTOCOLS.md §3.5a), as C1 reported it. */
  levels?: { level: string; groupsVisited: number; groupsPruned: number; recordsVisited: number; ms: number }[];
}

/** How often a passing refusal is asked again (waits about 0.25, 0.5, 1, 2, 4 s). */
export const QUERY_RETRIES = 5;

export class DoctorClient {
  readonly protocol: ProtocolModule;
  private readonly ctx: DoctorContext;
  private status: Promise<wire.DatabaseStatus> | undefined;

  constructor(
    private readonly link: DoctorLink,
    keys: { pk2: PublicKey; recordKey: RecordKey },
    encrypt: BatchEncryptor,
    protocol: ProtocolName,
    readonly k: number,
  ) {
    this.protocol = protocolModule(protocol);
    this.ctx = {
      pk2: keys.pk2,
      recordKey: keys.recordKey,
      codec: new WireCodec(keys.pk2.cipherBytes),
      encrypt,
      collection: () => this.collection(),
      putShare: (share) => link.putShare(share),
      retrieve: (ticket) => link.retrieve(ticket),
    };
  }

  /** C1's facts, asked once (a failed ask is asked again next time). */
  collection(): Promise<wire.DatabaseStatus> {
    this.status ??= this.link.status().catch((error) => {
      this.status = undefined;
      throw error;
    });
    return this.status;
  }

  /** A new query for this image (a new share each time for fast: tickets are single-use). */
  async request(tag: string, image: GrayImage): Promise<wire.QueryRequest> {
    const header = { keyFingerprint: this.ctx.pk2.fingerprint(), width: image.width, height: image.height };
    return { tag, k: this.k, header, protocol: await this.protocol.doctor.query(this.ctx, image) };
  }

  /** Whether a refusal with this gRPC code, after `attempt` retries, is worth asking again. */
  askAgain(code: number | undefined, attempt: number): boolean {
    return code !== undefined && attempt < QUERY_RETRIES && this.protocol.doctor.retryable(code);
  }

  /** The pause before retry `attempt`, jittered so queries that collided do not collide again. */
  pause(attempt: number): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, 250 * 2 ** attempt * (0.5 + Math.random())));
  }

  /** One query, asked again while the protocol says its refusal is passing. */
  async query(tag: string, image: GrayImage, onProgress: (p: QueryProgress) => void = () => {}): Promise<DoctorAnswer> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.open(await this.link.query(await this.request(tag, image), onProgress), image);
      } catch (error) {
        if (!this.askAgain((error as { code?: number }).code, attempt)) throw error;
        await this.pause(attempt);
      }
    }
  }

  /** C1's reply opened: IDs decrypted with k, pixels recovered, distances measured against the query. */
  async open(reply: wire.QueryReply, query: GrayImage): Promise<DoctorAnswer> {
    const answer = reply.answer;
    if (!answer || answer.$case === 'failure') throw new Error('C1 answered without results');
    const opened = await this.protocol.doctor.neighbours(this.ctx, answer, query);
    const neighbours = opened.map((n) => {
      if (n.image.pixels.length !== query.pixels.length) throw new Error('a result image has another size than the query');
      return {
        id: this.decryptId(n.encryptedId),
        distance: squaredDistance(query.pixels, n.image.pixels),
        image: n.image,
        metadata: n.metadata,
      };
    });
    const bound = reply.stats?.bound;
    const levels = reply.stats?.levels ?? [];
    return {
      tag: reply.tag,
      protocol: this.protocol.name,
      neighbours,
      total: Number(reply.stats?.total ?? 0n),
      ...(this.protocol.bounded && bound ? { bound: { rejected: Number(bound.rejected), ms: Number(bound.ms) } } : {}),
      ...(levels.length > 0
        ? {
            levels: levels.map((l) => ({
              level: l.level,
              groupsVisited: Number(l.groupsVisited),
              groupsPruned: Number(l.groupsPruned),
              recordsVisited: Number(l.recordsVisited),
              ms: Number(l.ms),
            })),
          }
        : {}),
    };
  }

  private decryptId(blob: Uint8Array): string {
    try {
      return this.ctx.recordKey.decryptId(Buffer.from(blob));
    } catch {
      throw new RecordKeyError("a result identifier does not decrypt: is record.key the owner's?");
    }
  }
}

import type * as wire from '@fnn/proto';
import { checkImageSize, checkLookupTag, checkLookupTags, checkPixelDepth, MAX_K } from '@fnn/server-common';
import {
  invalidInput,
  layoutsFromWire,
  maxSealedImageBytes,
  protocolOfQuery,
  settingsFromWire,
  type ProtocolModule,
  type PublicKey,
  type WireCodec,
  type WireQuery,
} from '@fnn/shared';
import type { CollectionShape, GroupChange, StoredRecord } from './storage';

// C1's checks of every request, before anything reaches the store or a
// protocol: each wire message becomes the values the store and the protocols
// take, or a one-line refusal (INVALID_ARGUMENT). Nothing here knows gRPC,
// so the checks are tested without a daemon (requests.test.ts); the protocol
// modules check their own part of a query (registry).

/** Slots one AllocateSlots call may ask for (an upload goes in batches). */
export const MAX_SLOTS_PER_CALL = 10_000;
/** E_k(ID): AES-GCM nonce and tag (28 bytes) around at least one byte, at most a long ID. */
const ENCRYPTED_ID_BYTES = { min: 29, max: 1024 };

export class RequestChecks {
  constructor(
    /** pk2: everything C1 holds is under it. */
    private readonly pk2: PublicKey,
    private readonly codec: WireCodec,
  ) {}

  upload(req: wire.UploadRequest): { shape: CollectionShape; change: GroupChange; records: StoredRecord[] } {
    this.key(req.keyFingerprint);
    checkImageSize(req.width, req.height);
    checkPixelDepth(req.maxValue);
    if (req.records.length === 0) throw invalidInput('no records to upload');
    if (!req.group) throw invalidInput('an upload names no group');
    const d = req.width * req.height;
    const layouts = layoutsFromWire(req.layouts);
    if (!layouts.includes('packed')) throw invalidInput('an upload must carry the packed layout (every group is packed)');
    // The per-record ciphertexts of the paper's layout (PROTOCOLS.md §2.1) travel with the record; the packed layout with the group.
    const perRecord = layouts.includes('paper');
    const records = req.records.map((r, i): StoredRecord => {
      const what = `record ${i + 1}`;
      checkLookupTag(r.lookupTag, what);
      if (r.encryptedId.length < ENCRYPTED_ID_BYTES.min || r.encryptedId.length > ENCRYPTED_ID_BYTES.max)
        throw invalidInput(`${what}: encrypted identifier has an impossible size`);
      // E_k(image and metadata): 12 bytes of shape, 2 per pixel and the metadata section, sealed (sealed-image.ts).
      if (r.sealedImage.length < ENCRYPTED_ID_BYTES.min || r.sealedImage.length > maxSealedImageBytes(d))
        throw invalidInput(`${what}: sealed image has an impossible size`);
      if (perRecord && r.pixels.length !== d) throw invalidInput(`${what} has ${r.pixels.length} pixels, expected ${d}`);
      if (!perRecord && (r.pixels.length > 0 || r.sum.length > 0 || r.spread.length > 0))
        throw invalidInput(`${what} carries the paper's layout, but the upload says it has none`);
      return {
        lookupTag: Buffer.from(r.lookupTag),
        encryptedId: Buffer.from(r.encryptedId),
        sealedImage: Buffer.from(r.sealedImage),
        slot: r.slot,
        paper: perRecord
          ? { pixels: this.ciphers(r.pixels, what), sum: this.ciphers([r.sum], what)[0], spread: this.ciphers([r.spread], what)[0] }
          : undefined,
      };
    });
    return {
      shape: {
        width: req.width,
        height: req.height,
        maxValue: req.maxValue,
        layouts,
        settings: req.settings && settingsFromWire(req.settings),
      },
      change: this.groupChange(req.group),
      records,
    };
  }

  delete(req: wire.DeleteRequest): { tags: Buffer[]; changes: GroupChange[] } {
    if (req.lookupTags.length === 0) throw invalidInput('no records named');
    checkLookupTags(req.lookupTags);
    return { tags: req.lookupTags.map((t) => Buffer.from(t)), changes: req.groups.map((g) => this.groupChange(g)) };
  }

  allocateSlots(req: wire.AllocateSlotsRequest): { shape: Omit<CollectionShape, 'layouts'>; tags: Buffer[] } {
    checkImageSize(req.width, req.height);
    checkPixelDepth(req.maxValue);
    if (req.lookupTags.length === 0 || req.lookupTags.length > MAX_SLOTS_PER_CALL)
      throw invalidInput(`name between 1 and ${MAX_SLOTS_PER_CALL} records`);
    checkLookupTags(req.lookupTags);
    return { shape: { width: req.width, height: req.height, maxValue: req.maxValue }, tags: req.lookupTags.map((t) => Buffer.from(t)) };
  }

  /**
   * What every protocol's query shares (PROTOCOLS.md §1): a protocol, k, and a
   * header of C1's key and the collection's image size; the protocol's own part
   * is its module's to check.
   */
  query(
    req: wire.QueryRequest,
    collection: { width: number; height: number } | undefined,
  ): { protocol: ProtocolModule; k: number; query: WireQuery } {
    const protocol = protocolOfQuery(req.protocol);
    const k = req.k === 0 ? 1 : req.k;
    if (k > MAX_K) throw invalidInput(`k above ${MAX_K} is not supported`);
    const h = req.header;
    if (!h) throw invalidInput('query without its image size and key');
    this.key(h.keyFingerprint);
    if (!collection) throw invalidInput('the collection is empty');
    if (h.width !== collection.width || h.height !== collection.height)
      throw invalidInput(`query is ${h.width}x${h.height}, the collection's images are ${collection.width}x${collection.height}`);
    return { protocol, k, query: req.protocol! };
  }

  private key(fingerprint: string): void {
    if (fingerprint !== this.pk2.fingerprint()) throw invalidInput('encrypted under another Paillier key than this collection');
  }

  private ciphers(list: Uint8Array[], what: string): bigint[] {
    const values = this.codec.fromCiphers(list);
    if (!this.pk2.areValidCiphertexts(values)) throw invalidInput(`${what}: invalid ciphertext`);
    return values;
  }

  /** A group change from the wire, its columns checked to be ciphertexts under pk2. */
  private groupChange(g: wire.GroupChange): GroupChange {
    const columns = g.columns ? this.codec.columnsFromWire(g.columns, true) : undefined;
    if (
      columns &&
      !this.pk2.areValidCiphertexts([
        ...columns.distance,
        ...columns.bound,
        ...columns.coarse,
        columns.distanceConstant!,
        columns.boundConstant!,
        columns.coarseConstant!,
      ])
    )
      throw invalidInput(`group ${g.group}: invalid ciphertext`);
    return { group: g.group, baseVersion: Buffer.from(g.baseVersion), version: Buffer.from(g.version), columns };
  }
}

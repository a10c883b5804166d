import type { RecordKey } from '../crypto/symmetric';
import type { GrayImage } from '../image/image';
import { MAX_METADATA_BYTES, parseRecordMetadata, serializeRecordMetadata, type RecordMetadata } from '../image/record-metadata';

// The record itself, sealed under the owner's record key k (AES-256-GCM) and
// stored beside E_k(ID): the fast protocol hands the winners' sealed records to
// the doctor, who opens them with k; the paper's protocols hand them over too,
// for the metadata (the pixels come from the retrieval, and must agree).
//
// Layout of the plaintext, 'fnn image v2': width, height and maxValue as
// 32-bit big-endian, the pixels as 16-bit big-endian (this much is v1), then
// the metadata section: the metadata's length as 32-bit big-endian, its
// canonical bytes (record-metadata.ts), and zeros up to a multiple of
// METADATA_BLOCK bytes. The padding is what keeps the metadata's length from
// C1 and C2 (AES-GCM hides the bytes, not how many there are): every record of
// a collection seals to the same size, with or without a label or a DICOM
// header, unless its metadata passes one block. Records sealed as
// 'fnn image v1' (before metadata) still open, with no metadata. The context
// is the GCM associated data, so a v1 record cannot pass for a v2 one.

const CONTEXT_V1 = 'fnn image v1';
const CONTEXT = 'fnn image v2';

/** The metadata section's unit: a header's fields and a long label fit in one. */
export const METADATA_BLOCK = 2048;

/** AES-GCM's nonce and tag around every sealed value (symmetric.ts). */
const SEAL_BYTES = 12 + 16;

/**
 * The largest sealed record of an image of `pixels` pixels: what C1 accepts.
 * Its shape and pixels, the longest metadata section (MAX_METADATA_BYTES in
 * whole blocks) and the seal.
 */
export function maxSealedImageBytes(pixels: number): number {
  return SEAL_BYTES + 12 + 2 * pixels + Math.ceil((4 + MAX_METADATA_BYTES) / METADATA_BLOCK) * METADATA_BLOCK;
}

/** A sealed value that does not open with this record key (wrong key, or a damaged record). */
export class RecordKeyError extends Error {
  override name = 'RecordKeyError';
}

export interface SealedRecord {
  image: GrayImage;
  /** Only the fields present; {} for a record without any (a PNG, or sealed as v1). */
  metadata: RecordMetadata;
}

export function sealImage(recordKey: RecordKey, image: GrayImage, metadata: RecordMetadata = {}): Buffer {
  const meta = serializeRecordMetadata(metadata);
  const pixelsEnd = 12 + 2 * image.pixels.length;
  const section = Math.ceil((4 + meta.length) / METADATA_BLOCK) * METADATA_BLOCK;
  const plain = Buffer.alloc(pixelsEnd + section); // zeros: the padding
  plain.writeUInt32BE(image.width, 0);
  plain.writeUInt32BE(image.height, 4);
  plain.writeUInt32BE(image.maxValue, 8);
  image.pixels.forEach((v, i) => plain.writeUInt16BE(v, 12 + 2 * i));
  plain.writeUInt32BE(meta.length, pixelsEnd);
  meta.copy(plain, pixelsEnd + 4);
  return recordKey.seal(plain, CONTEXT);
}

/** The image and metadata of a sealed record (v2, or v1 without metadata). */
export function openSealedRecord(recordKey: RecordKey, sealed: Uint8Array): SealedRecord {
  let plain: Buffer | undefined;
  let version = 2;
  for (const [context, v] of [
    [CONTEXT, 2],
    [CONTEXT_V1, 1],
  ] as const) {
    try {
      plain = recordKey.open(sealed, context);
      version = v;
      break;
    } catch {
      // the other version, or not ours
    }
  }
  if (!plain) throw new RecordKeyError('a result image does not open: wrong record key, or the record is corrupted');
  const malformed = () => new RecordKeyError('a result image is malformed');
  if (plain.length < 12) throw malformed();
  const width = plain.readUInt32BE(0);
  const height = plain.readUInt32BE(4);
  const maxValue = plain.readUInt32BE(8);
  const pixelsEnd = 12 + 2 * width * height;
  if (plain.length < pixelsEnd) throw malformed();
  const pixels = new Uint16Array(width * height);
  for (let i = 0; i < pixels.length; i++) pixels[i] = plain.readUInt16BE(12 + 2 * i);
  const image = { width, height, maxValue, pixels };
  if (version === 1) {
    if (plain.length !== pixelsEnd) throw malformed();
    return { image, metadata: {} };
  }
  const section = plain.length - pixelsEnd;
  if (section < METADATA_BLOCK || section % METADATA_BLOCK !== 0) throw malformed();
  const length = plain.readUInt32BE(pixelsEnd);
  if (4 + length > section || plain.subarray(pixelsEnd + 4 + length).some((b) => b !== 0)) throw malformed();
  try {
    return { image, metadata: parseRecordMetadata(plain.subarray(pixelsEnd + 4, pixelsEnd + 4 + length)) };
  } catch {
    throw malformed();
  }
}

export function openSealedImage(recordKey: RecordKey, sealed: Uint8Array): GrayImage {
  return openSealedRecord(recordKey, sealed).image;
}

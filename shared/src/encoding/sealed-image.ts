import type { RecordKey } from '../crypto/symmetric';
import type { GrayImage } from '../image/image';
import { parseRecordMetadata, serializeRecordMetadata, type RecordMetadata } from '../image/record-metadata';

// The record itself, sealed under the owner's record key k (AES-256-GCM) and
// stored beside E_k(ID): the fast protocol hands the winners' sealed records to
// the doctor, who opens them with k; the paper's protocols hand them over too,
// for the metadata (the pixels come from the retrieval, and must agree).
//
// Layout of the plaintext, 'fnn image v2': width, height and maxValue as
// 32-bit big-endian, the pixels as 16-bit big-endian (this much is v1), then
// the metadata's length as 32-bit big-endian and its canonical bytes
// (record-metadata.ts). Records sealed as 'fnn image v1' (before metadata)
// still open, with no metadata. The context is the GCM associated data, so a
// v1 record cannot be passed off as a v2 one or the reverse.

const CONTEXT_V1 = 'fnn image v1';
const CONTEXT = 'fnn image v2';

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
  const plain = Buffer.alloc(pixelsEnd + 4 + meta.length);
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
  if (plain.length < pixelsEnd + 4) throw malformed();
  const length = plain.readUInt32BE(pixelsEnd);
  if (plain.length !== pixelsEnd + 4 + length) throw malformed();
  try {
    return { image, metadata: parseRecordMetadata(plain.subarray(pixelsEnd + 4)) };
  } catch {
    throw malformed();
  }
}

export function openSealedImage(recordKey: RecordKey, sealed: Uint8Array): GrayImage {
  return openSealedRecord(recordKey, sealed).image;
}

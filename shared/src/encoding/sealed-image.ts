import type { RecordKey } from '../crypto/symmetric';
import type { GrayImage } from '../image/image';

// The image itself, sealed under the owner's record key k (AES-256-GCM) and
// stored beside E_k(ID): the fast protocol hands the winners' sealed images to
// the doctor, who opens them with k. Layout of the plaintext: width, height and
// maxValue as 32-bit big-endian, then the pixels as 16-bit big-endian.

const CONTEXT = 'fnn image v1';

/** A sealed value that does not open with this record key (wrong key, or a damaged record). */
export class RecordKeyError extends Error {
  override name = 'RecordKeyError';
}

export function sealImage(recordKey: RecordKey, image: GrayImage): Buffer {
  const plain = Buffer.alloc(12 + 2 * image.pixels.length);
  plain.writeUInt32BE(image.width, 0);
  plain.writeUInt32BE(image.height, 4);
  plain.writeUInt32BE(image.maxValue, 8);
  image.pixels.forEach((v, i) => plain.writeUInt16BE(v, 12 + 2 * i));
  return recordKey.seal(plain, CONTEXT);
}

export function openSealedImage(recordKey: RecordKey, sealed: Uint8Array): GrayImage {
  let plain: Buffer;
  try {
    plain = recordKey.open(sealed, CONTEXT);
  } catch {
    throw new RecordKeyError('a result image does not open: wrong record key, or the record is corrupted');
  }
  const width = plain.readUInt32BE(0);
  const height = plain.readUInt32BE(4);
  const maxValue = plain.readUInt32BE(8);
  if (plain.length !== 12 + 2 * width * height) throw new RecordKeyError('a result image is malformed');
  const pixels = new Uint16Array(width * height);
  for (let i = 0; i < pixels.length; i++) pixels[i] = plain.readUInt16BE(12 + 2 * i);
  return { width, height, maxValue, pixels };
}

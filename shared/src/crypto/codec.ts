// Big-endian byte encodings of non-negative bigints. Conversions go through
// hex strings because V8 parses and prints those natively; a per-byte loop of
// BigInt shifts costs O(bytes^2) and is ~50x slower for a 512-byte ciphertext.

function requireNonNegative(x: bigint, what: string): void {
  if (typeof x !== 'bigint') throw new TypeError(`${what} must be a bigint`);
  if (x < 0n) throw new RangeError(`${what} must be non-negative`);
}

/** Fixed-width big-endian bytes (ciphertexts on the wire and on disk all have the key's cipherBytes). */
export function cipherToBytes(c: bigint, width: number): Uint8Array {
  return valuesToFixedBlob([c], width, 'ciphertext');
}

/** Inverse of cipherToBytes; the width is the caller's to check (it knows the key). */
export function bytesToCipher(b: Uint8Array): bigint {
  return bytesToBigint(b);
}

/** Minimal big-endian bytes; 0 encodes as the empty array (bytesToBigint maps it back to 0). */
export function bigintToBytes(x: bigint): Uint8Array {
  requireNonNegative(x, 'value');
  if (x === 0n) return new Uint8Array(0);
  const hex = x.toString(16);
  return Buffer.from(hex.length % 2 === 0 ? hex : '0' + hex, 'hex');
}

/** Big-endian bytes to a non-negative bigint; leading zero bytes are allowed. */
export function bytesToBigint(b: Uint8Array): bigint {
  if (!(b instanceof Uint8Array)) throw new TypeError('bytes must be a Uint8Array');
  if (b.length === 0) return 0n;
  return BigInt('0x' + Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex'));
}

/** Non-negative values of one width back to back (big-endian each), in one allocation; `what` names them in errors. */
export function valuesToFixedBlob(values: readonly bigint[], width: number, what = 'value'): Buffer {
  if (!Number.isSafeInteger(width) || width <= 0) throw new RangeError(`${what} width must be a positive integer`);
  const out = Buffer.allocUnsafe(values.length * width);
  for (let i = 0; i < values.length; i++) {
    requireNonNegative(values[i], what);
    const hex = values[i].toString(16);
    if (hex.length > 2 * width) throw new RangeError(`${what} does not fit in ${width} bytes`);
    out.write(hex.padStart(2 * width, '0'), i * width, width, 'hex');
  }
  return out;
}

/** Inverse of valuesToFixedBlob. */
export function fixedBlobToValues(blob: Uint8Array, width: number): bigint[] {
  if (!Number.isSafeInteger(width) || width <= 0) throw new RangeError('value width must be a positive integer');
  if (blob.length % width !== 0) throw new RangeError('blob is not a whole number of values');
  const buf = Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength);
  const out = new Array<bigint>(blob.length / width);
  for (let i = 0; i < out.length; i++) out[i] = BigInt('0x' + buf.toString('hex', i * width, (i + 1) * width));
  return out;
}

/**
 * Values of one width back to back, big-endian each: how the databases store a
 * column of ciphertexts, and what the C module reads as it is. A query's
 * 65536-term multi-exponentiation over such a column skips 65536 conversions
 * to BigInt and back.
 */
export interface FixedWidthValues {
  bytes: Uint8Array;
  width: number;
}

/** Values at the width of the largest (at least one byte). */
export function toFixedWidth(values: readonly bigint[], what = 'value'): FixedWidthValues {
  let max = 0n;
  for (const v of values) {
    requireNonNegative(v, what);
    if (v > max) max = v;
  }
  const width = Math.max(1, Math.ceil(max.toString(16).length / 2));
  return { bytes: valuesToFixedBlob(values, width, what), width };
}

/** How many values a FixedWidthValues holds; refused unless the bytes are whole values. */
export function fixedWidthCount(values: FixedWidthValues, what = 'value'): number {
  if (!Number.isSafeInteger(values.width) || values.width <= 0) throw new RangeError(`${what} width must be a positive integer`);
  if (values.bytes.length % values.width !== 0) throw new RangeError(`not a whole number of ${what}s`);
  return values.bytes.length / values.width;
}

/** Ciphertexts of one width back to back: how the databases store a vector. */
export function ciphersToBlob(ciphers: readonly bigint[], width: number): Buffer {
  return valuesToFixedBlob(ciphers, width, 'ciphertext');
}

export function blobToCiphers(blob: Uint8Array, width: number): bigint[] {
  if (blob.length % width !== 0) throw new RangeError('stored vector is not a whole number of ciphertexts');
  return fixedBlobToValues(blob, width);
}

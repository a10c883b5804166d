// NIfTI-1/NIfTI-2 volumes (.nii, .nii.gz) -> one grayscale image per slice
// along a chosen voxel axis, read with nifti-reader-js (header, gunzip, voxel
// block). This file only picks voxels out of the block.
//
// Slices follow the voxel grid, not the scanner's axes (no reorientation by
// the affine): slice k along z is every voxel (i, j, k), with columns i and
// rows j running from the highest index down, so that a volume stored in the
// usual RAS order shows anterior (z) or superior (x, y) at the top, as
// demo/extract-images.mjs does.

import { invalidInput } from '../errors';
import { applyPixelRule, decimalOf, float32ToDecimal, type PixelRule, type Rescale } from './pixel-rule';
import type { ImageStack } from './stack';

export type SliceAxis = 'x' | 'y' | 'z';

// ESM only (its package.json exports just "import"), hence import(), which
// TypeScript keeps as a real dynamic import in this CommonJS build.
const loadNifti = () => import('nifti-reader-js');

/** Integer datatypes: [bytes, DataView getter, lowest, highest]; floats must hold integers. */
const DATATYPES: Record<
  number,
  [
    number,
    'getUint8' | 'getInt8' | 'getInt16' | 'getUint16' | 'getInt32' | 'getUint32' | 'getFloat32' | 'getFloat64',
    number,
    number,
    string,
  ]
> = {
  2: [1, 'getUint8', 0, 255, 'UINT8'],
  256: [1, 'getInt8', -128, 127, 'INT8'],
  4: [2, 'getInt16', -32768, 32767, 'INT16'],
  512: [2, 'getUint16', 0, 65535, 'UINT16'],
  8: [4, 'getInt32', -(2 ** 31), 2 ** 31 - 1, 'INT32'],
  768: [4, 'getUint32', 0, 2 ** 32 - 1, 'UINT32'],
  16: [4, 'getFloat32', NaN, NaN, 'FLOAT32'],
  64: [8, 'getFloat64', NaN, NaN, 'FLOAT64'],
};

export function looksLikeNifti(bytes: Uint8Array): boolean {
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) return true; // gzip
  if (bytes.length < 4) return false;
  const view = new DataView(bytes.buffer, bytes.byteOffset, 4);
  return [348, 540].some((size) => view.getInt32(0, true) === size || view.getInt32(0, false) === size);
}

export async function openNifti(bytes: Uint8Array, name: string, axis: SliceAxis = 'z'): Promise<ImageStack> {
  const fail = (why: string) => invalidInput(`${name}: ${why}`);
  const nifti = await loadNifti();
  let data: ArrayBuffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  if (nifti.isCompressed(data)) {
    try {
      data = nifti.decompress(data) as ArrayBuffer;
    } catch (e) {
      throw fail(`not a readable .gz file (${e instanceof Error ? e.message : String(e)}): truncated or corrupt`);
    }
  }
  if (!nifti.isNIFTI(data)) {
    throw fail(
      nifti.isNIFTI(data, true)
        ? 'a NIfTI header without its voxels (.hdr/.img pair); FNN reads single-file .nii or .nii.gz'
        : 'not a NIfTI-1 or NIfTI-2 file',
    );
  }
  const header = nifti.readHeader(data);
  const nDims = header.dims[0];
  if (!(nDims >= 2 && nDims <= 7)) throw fail(`dim[0] ${nDims} is not a number of dimensions (2..7)`);
  const size = (d: number) => (d <= nDims ? header.dims[d] : 1);
  const [nx, ny, nz] = [size(1), size(2), size(3)];
  if (![nx, ny, nz].every((n) => Number.isInteger(n) && n >= 1)) throw fail(`has no voxels (dimensions ${nx} x ${ny} x ${nz})`);
  let volumes = 1;
  for (let d = 4; d <= nDims; d++) volumes *= size(d);
  if (volumes !== 1) throw fail(`holds ${volumes} volumes (${nDims}-D); FNN slices one 3-D volume per file`);

  const type = DATATYPES[header.datatypeCode];
  if (!type) throw fail(`NIfTI datatype ${header.datatypeCode} is not supported; FNN reads integer and real-valued grayscale voxels`);
  const [bytesPerVoxel, getter, lowest, highest, typeName] = type;
  const voxelCount = nx * ny * nz;
  const voxels = nifti.readImage(header, data);
  if (voxels.byteLength < voxelCount * bytesPerVoxel) {
    throw fail(`the voxel data is truncated (${voxels.byteLength} of ${voxelCount * bytesPerVoxel} bytes)`);
  }
  const view = new DataView(voxels);
  const little = header.littleEndian;
  const voxel = (i: number, j: number, k: number) => view[getter]((i + nx * (j + ny * k)) * bytesPerVoxel, little);

  // NIfTI: scl_slope 0 (or not a number) means the voxels are used as stored.
  const niftiTwo = header instanceof nifti.NIFTI2;
  const toDecimal = (v: number) => (niftiTwo ? decimalOf(v) : float32ToDecimal(v));
  const scaled = Number.isFinite(header.scl_slope) && header.scl_slope !== 0;
  const rescale: Rescale | undefined = scaled
    ? {
        slope: toDecimal(header.scl_slope),
        intercept: toDecimal(Number.isFinite(header.scl_inter) ? header.scl_inter : 0),
        names: ['scl_slope', 'scl_inter'],
      }
    : undefined;

  const count = axis === 'x' ? nx : axis === 'y' ? ny : nz;
  const [width, height] = axis === 'x' ? [ny, nz] : axis === 'y' ? [nx, nz] : [nx, ny];
  const digits = Math.max(3, String(count - 1).length);
  const range: [number, number] | undefined = Number.isNaN(lowest) ? undefined : [lowest, highest];

  return {
    format: 'nifti',
    name,
    width,
    height,
    count,
    label: (k) => `${axis}${String(k).padStart(digits, '0')}`,
    image(k: number, rule: PixelRule) {
      if (!Number.isInteger(k) || k < 0 || k >= count) throw new RangeError(`${name} has no slice ${k} along ${axis}`);
      const values = new Float64Array(width * height);
      for (let row = 0; row < height; row++) {
        const up = height - 1 - row;
        for (let col = 0; col < width; col++) {
          values[row * width + col] = axis === 'z' ? voxel(col, up, k) : axis === 'y' ? voxel(col, k, up) : voxel(k, col, up);
        }
      }
      const where = `${name} slice ${axis}=${k}`;
      if (!range && values.some((v) => !Number.isInteger(v))) {
        throw fail(`slice ${axis}=${k} has ${typeName} voxels that are not integers; FNN stores integers and does not round`);
      }
      return applyPixelRule({ width, height, values, range, rescale, where }, rule);
    },
  };
}

import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { openImageStack } from './formats';
import { openNifti } from './nifti';

/**
 * A single-file NIfTI-1 (.nii) written field by field from the standard's
 * header layout (348 bytes, 4-byte extension flag, voxels at 352): test input
 * only; the product reads with nifti-reader-js.
 */
function writeNifti(o: {
  dims: number[];
  datatype: number;
  bitpix: number;
  voxels: number[];
  slope?: number;
  inter?: number;
  littleEndian?: boolean;
  magic?: string;
}): Buffer {
  const little = o.littleEndian ?? true;
  const count = o.voxels.length;
  const buf = Buffer.alloc(352 + count * (o.bitpix / 8));
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  view.setInt32(0, 348, little);
  const dim = [o.dims.length, ...o.dims, 1, 1, 1, 1, 1, 1, 1].slice(0, 8);
  dim.forEach((d, i) => view.setInt16(40 + 2 * i, d, little));
  view.setInt16(70, o.datatype, little);
  view.setInt16(72, o.bitpix, little);
  for (let i = 0; i < 8; i++) view.setFloat32(76 + 4 * i, 1, little); // pixdim
  view.setFloat32(108, 352, little); // vox_offset
  view.setFloat32(112, o.slope ?? 0, little);
  view.setFloat32(116, o.inter ?? 0, little);
  buf.write(o.magic ?? 'n+1\0', 344, 'latin1');
  const setter = (
    { 2: 'setUint8', 256: 'setInt8', 4: 'setInt16', 512: 'setUint16', 8: 'setInt32', 16: 'setFloat32', 64: 'setFloat64' } as const
  )[o.datatype as 2];
  o.voxels.forEach((v, i) => (view[setter] as (o: number, v: number, l: boolean) => void)(352 + i * (o.bitpix / 8), v, little));
  return buf;
}

// A 3 x 4 x 5 volume whose voxel (i, j, k) holds 100k + 10j + i.
const [NX, NY, NZ] = [3, 4, 5];
const voxelValue = (i: number, j: number, k: number) => 100 * k + 10 * j + i;
const volume = () => {
  const out: number[] = [];
  for (let k = 0; k < NZ; k++) for (let j = 0; j < NY; j++) for (let i = 0; i < NX; i++) out.push(voxelValue(i, j, k));
  return out;
};
const uint16 = (over: Partial<Parameters<typeof writeNifti>[0]> = {}) =>
  writeNifti({ dims: [NX, NY, NZ], datatype: 512, bitpix: 16, voxels: volume(), ...over });

describe('NIfTI slicing', () => {
  it('z (default): one image per k, columns i, rows j from the top index down; IDs z000..', async () => {
    const stack = await openNifti(uint16(), 'vol.nii');
    expect([stack.format, stack.count, stack.width, stack.height]).toEqual(['nifti', NZ, NX, NY]);
    expect(Array.from({ length: NZ }, (_, k) => stack.label(k))).toEqual(['z000', 'z001', 'z002', 'z003', 'z004']);
    const img = stack.image(2, { offset: 0 });
    expect(img.maxValue).toBe(65535);
    expect(Array.from(img.pixels)).toEqual([230, 231, 232, 220, 221, 222, 210, 211, 212, 200, 201, 202]);
  });

  it('y and x: columns along the other in-plane axis, rows from the top z down', async () => {
    const y = await openNifti(uint16(), 'vol.nii', 'y');
    expect([y.count, y.width, y.height, y.label(1)]).toEqual([NY, NX, NZ, 'y001']);
    const ySlice = Array.from(y.image(1, { offset: 0 }).pixels);
    expect(ySlice).toEqual([4, 3, 2, 1, 0].flatMap((k) => [0, 1, 2].map((i) => voxelValue(i, 1, k))));
    const x = await openNifti(uint16(), 'vol.nii', 'x');
    expect([x.count, x.width, x.height, x.label(2)]).toEqual([NX, NY, NZ, 'x002']);
    expect(Array.from(x.image(2, { offset: 0 }).pixels)).toEqual(
      [4, 3, 2, 1, 0].flatMap((k) => [0, 1, 2, 3].map((j) => voxelValue(2, j, k))),
    );
  });

  it('.nii.gz gives the same images as .nii, found by content whatever the name', async () => {
    const plain = await openNifti(uint16(), 'vol.nii');
    const gz = await openImageStack(gzipSync(uint16()), 'vol.nii.gz');
    expect(gz.count).toBe(NZ);
    for (let k = 0; k < NZ; k++) expect(gz.image(k, { offset: 0 })).toEqual(plain.image(k, { offset: 0 }));
    expect((await openImageStack(gzipSync(uint16()), 'unnamed')).format).toBe('nifti');
  });

  it('big-endian files, 8-bit and signed types, scl_slope/scl_inter and the offset', async () => {
    const be = await openNifti(uint16({ littleEndian: false }), 'be.nii');
    expect(be.image(4, { offset: 0 })).toEqual((await openNifti(uint16(), 'le.nii')).image(4, { offset: 0 }));
    const u8 = await openNifti(writeNifti({ dims: [2, 1, 1], datatype: 2, bitpix: 8, voxels: [0, 255] }), 'u8.nii');
    expect(u8.image(0, { offset: 0 })).toMatchObject({ maxValue: 255, pixels: Uint16Array.from([0, 255]) });
    const s16 = await openNifti(
      writeNifti({ dims: [2, 1, 1], datatype: 4, bitpix: 16, voxels: [-1024, 3071], slope: 2, inter: 10 }),
      's16.nii',
    );
    expect(Array.from(s16.image(0, { offset: 2038 }).pixels)).toEqual([0, 8190]);
    expect(() => s16.image(0, { offset: 0 })).toThrow(
      /s16\.nii slice z=0: pixel at \(0, 0\) is below 0 after scl_slope 2 and scl_inter 10/,
    );
    const tenth = await openNifti(writeNifti({ dims: [2, 1, 1], datatype: 4, bitpix: 16, voxels: [10, 20], slope: 0.1 }), 'tenth.nii');
    expect(Array.from(tenth.image(0, { offset: 0 }).pixels)).toEqual([1, 2]);
  });

  it('real-valued voxels: integers are kept, fractions refused', async () => {
    const whole = await openNifti(writeNifti({ dims: [2, 1, 1], datatype: 16, bitpix: 32, voxels: [3, 4000] }), 'f.nii');
    expect(whole.image(0, { offset: 0 })).toMatchObject({ maxValue: 65535, pixels: Uint16Array.from([3, 4000]) });
    const frac = await openNifti(writeNifti({ dims: [2, 1, 1], datatype: 64, bitpix: 64, voxels: [3, 0.5] }), 'd.nii');
    expect(() => frac.image(0, { offset: 0 })).toThrow(/d\.nii: slice z=0 has FLOAT64 voxels that are not integers/);
  });

  it('a 2-D file is one slice', async () => {
    const flat = await openNifti(writeNifti({ dims: [3, 2], datatype: 2, bitpix: 8, voxels: [1, 2, 3, 4, 5, 6] }), 'flat.nii');
    expect([flat.count, flat.label(0), Array.from(flat.image(0, { offset: 0 }).pixels)]).toEqual([1, 'z000', [4, 5, 6, 1, 2, 3]]);
  });
});

describe('NIfTI files that cannot be read say why', () => {
  it('truncated voxels, a truncated .gz, a 4-D series, not NIfTI, an unsupported type', async () => {
    const full = uint16();
    await expect(openNifti(full.subarray(0, full.length - 10), 'cut.nii')).rejects.toThrow(/cut\.nii: the voxel data is truncated/);
    const gz = gzipSync(full);
    await expect(openNifti(gz.subarray(0, gz.length - 30), 'cut.nii.gz')).rejects.toThrow(
      /cut\.nii\.gz: not a readable \.gz file .*truncated or corrupt/,
    );
    const series = writeNifti({ dims: [2, 1, 1, 3], datatype: 2, bitpix: 8, voxels: [1, 2, 3, 4, 5, 6] });
    await expect(openNifti(series, 'fmri.nii')).rejects.toThrow(/fmri\.nii: holds 3 volumes \(4-D\)/);
    await expect(openNifti(Buffer.alloc(400, 1), 'junk.nii')).rejects.toThrow(/junk\.nii: not a NIfTI-1 or NIfTI-2 file/);
    const pair = uint16({ magic: 'ni1\0' });
    await expect(openNifti(pair, 'scan.hdr')).rejects.toThrow(/\.hdr\/\.img pair/);
    const rgb = writeNifti({ dims: [1, 1, 1], datatype: 128, bitpix: 24, voxels: [] });
    await expect(openNifti(rgb, 'rgb.nii')).rejects.toThrow(/rgb\.nii: NIfTI datatype 128 is not supported/);
  });
});

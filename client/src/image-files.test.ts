import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodePng, encodePng } from '@fnn/shared';
import { expandImagePaths, openImageFile, parseIdFrom, parseImageOptions, readQueryImage, recordIdOf, ruledImage } from './image-files';
import { CliError } from './output';

const TESTDATA = join(__dirname, '..', '..', 'shared', 'src', 'image', 'testdata');
const DEMO_PNG = join(__dirname, '..', '..', 'demo', 'images', 'ch2-z106.png');
const defaults = parseImageOptions({});

/** A 4 x 3 x 6 UINT8 NIfTI-1 volume (voxel (i,j,k) = 10k + i), gzipped. */
function niftiGz(): Buffer {
  const [nx, ny, nz] = [4, 3, 6];
  const buf = Buffer.alloc(352 + nx * ny * nz);
  buf.writeInt32LE(348, 0);
  [3, nx, ny, nz, 1, 1, 1, 1].forEach((d, i) => buf.writeInt16LE(d, 40 + 2 * i));
  buf.writeInt16LE(2, 70);
  buf.writeInt16LE(8, 72);
  buf.writeFloatLE(352, 108);
  buf.write('n+1\0', 344, 'latin1');
  for (let k = 0; k < nz; k++) for (let j = 0; j < ny; j++) for (let i = 0; i < nx; i++) buf[352 + i + nx * (j + ny * k)] = 10 * k + i;
  return gzipSync(buf);
}

let work: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'fnn-images-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('expandImagePaths', () => {
  it('takes PNG, DICOM (.dcm or a Part 10 file without extension) and NIfTI from a directory, sorted', () => {
    const dir = join(work, 'mixed');
    mkdirSync(dir);
    copyFileSync(DEMO_PNG, join(dir, 'b.png'));
    copyFileSync(join(TESTDATA, 'ch2-z106.dcm'), join(dir, 'c.dcm'));
    copyFileSync(join(TESTDATA, 'ch2-z106_rle_dcmtk.dcm'), join(dir, 'IM0001'));
    writeFileSync(join(dir, 'a.nii.gz'), niftiGz());
    writeFileSync(join(dir, 'notes.txt'), 'not an image');
    writeFileSync(join(dir, '.DS_Store'), '');
    expect(expandImagePaths([dir]).map((p) => p.slice(dir.length + 1))).toEqual(['IM0001', 'a.nii.gz', 'b.png', 'c.dcm']);
  });
});

describe('parseImageOptions', () => {
  it('defaults to offset 0, no size, refuse, axis z', () => {
    expect(defaults).toEqual({ rule: { offset: 0 }, size: undefined, fit: 'refuse', axis: 'z' });
    expect(parseImageOptions({ offset: '1024', size: '256x128', fit: 'crop', axis: 'x' })).toEqual({
      rule: { offset: 1024 },
      size: { width: 256, height: 128 },
      fit: 'crop',
      axis: 'x',
    });
  });

  it('refuses malformed flags with a usage error naming the flag', () => {
    for (const [flags, message] of [
      [{ offset: '1.5' }, /--offset must be an integer/],
      [{ offset: 'abc' }, /--offset/],
      [{ size: '256' }, /--size must be WIDTHxHEIGHT/],
      [{ size: '0x4' }, /--size/],
      [{ fit: 'stretch' }, /--fit must be refuse or crop/],
      [{ axis: 't' }, /--axis must be x, y or z/],
    ] as const) {
      expect(() => parseImageOptions(flags)).toThrow(message);
      expect(() => parseImageOptions(flags)).toThrow(CliError);
    }
  });
});

describe('records of a file', () => {
  it('a multi-frame DICOM gives name#frameN, a NIfTI volume name#z012, --id replaces the name', async () => {
    const frames = await openImageFile(join(TESTDATA, 'MR_small_3frames_rle_dcmtk.dcm'), defaults);
    expect(Array.from({ length: frames.count }, (_, i) => recordIdOf('x/MR_small_3frames_rle_dcmtk.dcm', frames, i))).toEqual([
      'MR_small_3frames_rle_dcmtk.dcm#frame1',
      'MR_small_3frames_rle_dcmtk.dcm#frame2',
      'MR_small_3frames_rle_dcmtk.dcm#frame3',
    ]);
    const mr = decodePng(readFileSync(join(TESTDATA, 'MR_small.png')), 'MR_small.png');
    expect(Array.from(ruledImage(frames, 2, defaults).pixels)).toEqual(Array.from(mr.pixels, (v) => v + 2000));

    writeFileSync(join(work, 'vol.nii.gz'), niftiGz());
    const vol = await openImageFile(join(work, 'vol.nii.gz'), defaults);
    expect([vol.count, recordIdOf('vol.nii.gz', vol, 3), recordIdOf('vol.nii.gz', vol, 3, 'brain')]).toEqual([
      6,
      'vol.nii.gz#z003',
      'brain#z003',
    ]);
    const sagittal = await openImageFile(join(work, 'vol.nii.gz'), parseImageOptions({ axis: 'x' }));
    expect([sagittal.count, sagittal.width, sagittal.height, recordIdOf('vol.nii.gz', sagittal, 1)]).toEqual([4, 3, 6, 'vol.nii.gz#x001']);

    const png = await openImageFile(DEMO_PNG, defaults);
    expect([recordIdOf(DEMO_PNG, png, 0), recordIdOf(DEMO_PNG, png, 0, 'scan-7')]).toEqual(['ch2-z106.png', 'scan-7']);
  });

  it('--id-from sop names a DICOM record by its SOP Instance UID, the same in every lossless encoding; frames keep #frameN', async () => {
    const MR_UID = '1.3.6.1.4.1.5962.1.1.4.1.1.20040826185059.5457';
    const encodings = ['MR_small.dcm', 'MR_small_RLE.dcm', 'MR_small_bigendian.dcm', 'MR_small_implicit.dcm', 'MR_small_jp2klossless.dcm'];
    for (const f of encodings) {
      const stack = await openImageFile(join(TESTDATA, f), defaults);
      expect([recordIdOf(f, stack, 0, undefined, 'sop'), recordIdOf(f, stack, 0, undefined, 'file')], f).toEqual([MR_UID, f]);
    }
    const frames = await openImageFile(join(TESTDATA, 'MR_small_3frames_rle_dcmtk.dcm'), defaults);
    expect(recordIdOf('mf.dcm', frames, 1, undefined, 'sop')).toBe(`${MR_UID}#frame2`);
    // --id wins over the UID; a PNG or a NIfTI has none and keeps its name.
    expect(recordIdOf('mf.dcm', frames, 1, 'scan-7', 'sop')).toBe('scan-7#frame2');
    const png = await openImageFile(DEMO_PNG, defaults);
    expect(recordIdOf(DEMO_PNG, png, 0, undefined, 'sop')).toBe('ch2-z106.png');
    expect([parseIdFrom(undefined), parseIdFrom('file')]).toEqual(['sop', 'file']);
    expect(() => parseIdFrom('uid')).toThrow(/--id-from must be sop or file, not "uid"/);
  });

  it('a DICOM without a well-formed SOP Instance UID keeps its file name under --id-from sop', async () => {
    const bytes = Buffer.from(readFileSync(join(TESTDATA, 'ch2-z106.dcm')));
    // Same length, not a UID: both the dataset's SOPInstanceUID and the file meta's copy.
    const uid = Buffer.from('1.2.826.0.1.3680043.8.498.1');
    for (let at = bytes.indexOf(uid); at >= 0; at = bytes.indexOf(uid, at + 1)) bytes.write('1.2.826.0.1.3680043.8.498.X', at, 'latin1');
    writeFileSync(join(work, 'no-uid.dcm'), bytes);
    const stack = await openImageFile(join(work, 'no-uid.dcm'), defaults);
    expect([stack.sopInstanceUid, recordIdOf('no-uid.dcm', stack, 0, undefined, 'sop')]).toEqual([undefined, 'no-uid.dcm']);
  });

  it('a file that cannot be read is a usage error naming it and the reason', async () => {
    await expect(openImageFile(join(TESTDATA, 'MR_truncated.dcm'), defaults)).rejects.toThrow(/MR_truncated\.dcm: the file is truncated/);
    await expect(openImageFile(join(TESTDATA, 'rtplan.dcm'), defaults)).rejects.toThrow(/rtplan\.dcm: has no pixel data: not an image/);
    await expect(openImageFile(join(TESTDATA, 'SC_rgb_rle.dcm'), defaults)).rejects.toThrow(/SC_rgb_rle\.dcm: colour image/);
    await expect(openImageFile(join(work, 'missing.dcm'), defaults)).rejects.toThrow(/missing\.dcm: cannot be read/);
    writeFileSync(join(work, 'notes.txt'), 'hello');
    await expect(openImageFile(join(work, 'notes.txt'), defaults)).rejects.toThrow(/notes\.txt: not a PNG, DICOM Part 10 or NIfTI file/);
  });
});

describe('size: refuse by default, --fit crop to the collection size', () => {
  it('refuses another size with a message that says what to do', async () => {
    const stack = await openImageFile(join(TESTDATA, 'MR_small.dcm'), defaults);
    expect(() => ruledImage(stack, 0, defaults, { width: 32, height: 32 })).toThrow(
      /MR_small\.dcm: 64x64, but the collection's images are 32x32: pass --fit crop to center-crop\/pad it to 32x32/,
    );
  });

  it('crops a larger image and pads a smaller one, centred', async () => {
    const crop = parseImageOptions({ fit: 'crop' });
    const stack = await openImageFile(join(TESTDATA, 'MR_small.dcm'), crop);
    const full = ruledImage(stack, 0, crop);
    const small = ruledImage(stack, 0, crop, { width: 32, height: 16 });
    expect([small.width, small.height, small.pixels[0]]).toEqual([32, 16, full.pixels[24 * 64 + 16]]);
    const big = ruledImage(stack, 0, crop, { width: 66, height: 64 });
    expect([big.pixels[0], big.pixels[1], big.pixels[65]]).toEqual([0, full.pixels[0], 0]);
  });
});

describe('the query image', () => {
  it('goes through the same rule and fit as uploads', async () => {
    const ct = join(TESTDATA, 'CT_small.dcm');
    await expect(readQueryImage(ct, defaults)).rejects.toThrow(/below 0 after RescaleSlope 1 and RescaleIntercept -1024 and --offset 0/);
    const img = await readQueryImage(ct, parseImageOptions({ offset: '1024', size: '100x100', fit: 'crop' }));
    expect([img.width, img.height]).toEqual([100, 100]);
    await expect(readQueryImage(ct, parseImageOptions({ offset: '1024', fit: 'crop' }))).rejects.toThrow(/--fit crop needs --size/);
    await expect(readQueryImage(ct, parseImageOptions({ offset: '1024', size: '100x100' }))).rejects.toThrow(
      /128x128, but the collection's images are 100x100/,
    );
  });

  it('names one image of a multi-image file as FILE#label, and asks for it otherwise', async () => {
    const mf = join(TESTDATA, 'MR_small_3frames_rle_dcmtk.dcm');
    const mr = decodePng(readFileSync(join(TESTDATA, 'MR_small.png')), 'MR_small.png');
    expect(Array.from((await readQueryImage(`${mf}#frame2`, defaults)).pixels)).toEqual(Array.from(mr.pixels, (v) => v + 1000));
    await expect(readQueryImage(mf, defaults)).rejects.toThrow(
      /holds 3 images \(frame1\.\.frame3\); a query is one: name it as MR_small_3frames_rle_dcmtk\.dcm#frame1/,
    );
    await expect(readQueryImage(`${mf}#frame9`, defaults)).rejects.toThrow(/has no image frame9 \(frame1\.\.frame3\)/);
    writeFileSync(join(work, 'q.nii.gz'), niftiGz());
    const slice = await readQueryImage(join(work, 'q.nii.gz#z005'), defaults);
    expect(Array.from(slice.pixels.subarray(0, 4))).toEqual([50, 51, 52, 53]);
  });
});

describe('the same picture as DICOM and as PNG', () => {
  it('gives identical GrayImages (8-bit real MRI; 16-bit MR), so distances between them are 0', async () => {
    const asPng = await readQueryImage(DEMO_PNG, defaults);
    for (const f of [
      'ch2-z106.dcm',
      'ch2-z106_rle_dcmtk.dcm',
      'ch2-z106_jpeg_lossless_sv1_dcmtk.dcm',
      'ch2-z106_jpegls_dcmtk.dcm',
      'ch2-z106_j2k_gdcm.dcm',
    ]) {
      expect(await readQueryImage(join(TESTDATA, f), defaults), f).toEqual(asPng);
    }
    expect(await readQueryImage(join(TESTDATA, 'MR_small_jpeg_lossless_sv6_dcmtk.dcm'), defaults)).toEqual(
      await readQueryImage(join(TESTDATA, 'MR_small.png'), defaults),
    );
  });

  it('and under an offset both shift alike (PNG values get the offset too)', async () => {
    const png = await readQueryImage(DEMO_PNG, parseImageOptions({ offset: '7' }));
    const dcm = await readQueryImage(join(TESTDATA, 'ch2-z106.dcm'), parseImageOptions({ offset: '7' }));
    expect(dcm).toEqual(png);
    expect(png.maxValue).toBe(65535); // 7..262 no longer fits 8 bits
    writeFileSync(join(work, 'same.png'), encodePng(dcm));
    expect(decodePng(readFileSync(join(work, 'same.png')), 'same.png').pixels).toEqual(dcm.pixels);
  });
});

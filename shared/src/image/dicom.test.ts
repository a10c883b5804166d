import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Context, NativeCodecs, Transcoder } from 'dcmjs-codecs';
import { beforeAll, describe, expect, it } from 'vitest';
import { openDicom, SUPPORTED_DICOM_SYNTAXES } from './dicom';
import { decodePng } from './png';

// Two kinds of evidence:
// 1. Round trips through the chosen library: dcmjs-codecs writes a file in
//    each transfer syntax (its Transcoder, on dcmjs), we read it back.
// 2. Files made by other implementations (pydicom's test files, DCMTK and
//    GDCM encoders; testdata/LICENSE.md says where each comes from), so an
//    error the library makes symmetrically in encoder and decoder shows up.

const testdata = (f: string) => readFileSync(join(__dirname, 'testdata', f));
const open = (f: string) => openDicom(testdata(f), f);
const offset0 = { offset: 0 };

const EXPLICIT_LE = '1.2.840.10008.1.2.1';

interface Sample {
  bits: 8 | 16;
  stored: number;
  signed: boolean;
}

/** Smooth (so lossy codecs stay close) with the extremes of the range at two corners (lossless only). */
function pattern(w: number, h: number, frames: number, s: Sample, extremes: boolean): number[] {
  const lo = s.signed ? -(2 ** (s.stored - 1)) : 0;
  const hi = s.signed ? 2 ** (s.stored - 1) - 1 : 2 ** s.stored - 1;
  const out: number[] = [];
  for (let f = 0; f < frames; f++) {
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const t = 0.5 + 0.4 * Math.sin(x / 4 + f) * Math.cos(y / 5 - f);
        out.push(Math.round(lo + (hi - lo) * t));
      }
    }
    if (extremes) {
      out[f * w * h] = lo;
      out[f * w * h + w * h - 1] = hi;
    }
  }
  return out;
}

/** dcmjs naturalized elements of a grayscale image; `values` are stored values, frame after frame. */
function elements(w: number, h: number, frames: number, s: Sample, values: number[], extra: Record<string, unknown> = {}) {
  const buffer = new ArrayBuffer(w * h * frames * (s.bits / 8));
  // Containers hold the stored value in two's complement (bits above BitsStored as the sign extends them).
  const view = s.bits === 8 ? new Uint8Array(buffer) : new Uint16Array(buffer);
  values.forEach((v, i) => (view[i] = v < 0 ? v + 2 ** s.bits : v));
  return {
    _vrMap: { PixelData: s.bits === 8 ? 'OB' : 'OW' },
    SOPClassUID: '1.2.840.10008.5.1.4.1.1.7',
    SOPInstanceUID: '1.2.826.0.1.3680043.8.498.42',
    Modality: 'OT',
    Rows: h,
    Columns: w,
    BitsAllocated: s.bits,
    BitsStored: s.stored,
    HighBit: s.stored - 1,
    PixelRepresentation: s.signed ? 1 : 0,
    SamplesPerPixel: 1,
    PhotometricInterpretation: 'MONOCHROME2',
    NumberOfFrames: String(frames),
    PixelData: [buffer],
    ...extra,
  };
}

/** A Part 10 file in `syntax`, written by dcmjs-codecs from explicit VR little endian elements. */
function writeDicom(el: Record<string, unknown>, syntax: string, parameters: Record<string, unknown> = {}): Uint8Array {
  const t = new Transcoder(el, EXPLICIT_LE);
  t.transcode(syntax, parameters);
  return new Uint8Array(t.getDicomPart10());
}

/**
 * 4.51 and 4.57 are not in the Transcoder's list: encode each frame with the
 * library's libjpeg (lossy / lossless with predictor 6) and write the
 * fragments under that syntax.
 */
function writeJpegProcess(el: ReturnType<typeof elements>, syntax: string, params: Record<string, unknown>, frames: number) {
  const { Rows: h, Columns: w, BitsAllocated: bits } = el;
  const all = new Uint8Array(el.PixelData[0]);
  const frameBytes = w * h * (bits / 8);
  const fragments = Array.from({ length: frames }, (_, f) => {
    const context = new Context({
      width: w,
      height: h,
      bitsAllocated: bits,
      bitsStored: el.BitsStored,
      samplesPerPixel: 1,
      pixelRepresentation: el.PixelRepresentation,
      planarConfiguration: 0,
      photometricInterpretation: 'MONOCHROME2',
      decodedBuffer: all.slice(f * frameBytes, (f + 1) * frameBytes),
    });
    const encoded = NativeCodecs.encodeJpeg(context, params).getEncodedBuffer()!;
    const even = new Uint8Array(encoded.length + (encoded.length % 2));
    even.set(encoded);
    return even.buffer;
  });
  return new Uint8Array(new Transcoder({ ...el, _vrMap: { PixelData: 'OB' }, PixelData: fragments }, syntax).getDicomPart10());
}

const W = 23;
const H = 17;
const FRAMES = 3;

/** [syntax, lossless, sample kinds it can carry, extra encoder parameters] */
const ROUND_TRIPS: [string, boolean, Sample[], Record<string, unknown>?][] = [
  [
    '1.2.840.10008.1.2',
    true,
    [
      { bits: 8, stored: 8, signed: false },
      { bits: 16, stored: 12, signed: false },
      { bits: 16, stored: 16, signed: true },
    ],
  ],
  [
    '1.2.840.10008.1.2.1',
    true,
    [
      { bits: 8, stored: 8, signed: true },
      { bits: 16, stored: 16, signed: false },
      { bits: 16, stored: 12, signed: true },
    ],
  ],
  [
    '1.2.840.10008.1.2.2',
    true,
    [
      { bits: 8, stored: 8, signed: false },
      { bits: 16, stored: 12, signed: false },
      { bits: 16, stored: 16, signed: true },
    ],
  ],
  [
    '1.2.840.10008.1.2.5',
    true,
    [
      { bits: 8, stored: 8, signed: false },
      { bits: 16, stored: 12, signed: false },
      { bits: 16, stored: 16, signed: true },
    ],
  ],
  ['1.2.840.10008.1.2.4.50', false, [{ bits: 8, stored: 8, signed: false }], { quality: 95 }],
  [
    '1.2.840.10008.1.2.4.70',
    true,
    [
      { bits: 8, stored: 8, signed: false },
      { bits: 16, stored: 12, signed: false },
      { bits: 16, stored: 16, signed: true },
    ],
  ],
  [
    '1.2.840.10008.1.2.4.80',
    true,
    [
      { bits: 8, stored: 8, signed: false },
      { bits: 16, stored: 12, signed: false },
      { bits: 16, stored: 16, signed: true },
    ],
  ],
  [
    '1.2.840.10008.1.2.4.81',
    false,
    [
      { bits: 8, stored: 8, signed: false },
      { bits: 16, stored: 12, signed: false },
    ],
    { allowedLossyError: 2 },
  ],
  [
    '1.2.840.10008.1.2.4.90',
    true,
    [
      { bits: 8, stored: 8, signed: false },
      { bits: 16, stored: 12, signed: false },
      { bits: 16, stored: 16, signed: true },
    ],
  ],
  [
    '1.2.840.10008.1.2.4.91',
    false,
    [
      { bits: 8, stored: 8, signed: false },
      { bits: 16, stored: 12, signed: false },
    ],
    { rate: 2 },
  ],
  [
    '1.2.840.10008.1.2.4.201',
    true,
    [
      { bits: 8, stored: 8, signed: false },
      { bits: 16, stored: 12, signed: false },
      { bits: 16, stored: 16, signed: true },
    ],
  ],
  [
    '1.2.840.10008.1.2.4.202',
    true,
    [
      { bits: 8, stored: 8, signed: false },
      { bits: 16, stored: 16, signed: true },
    ],
  ],
  [
    '1.2.840.10008.1.2.4.203',
    false,
    [
      { bits: 8, stored: 8, signed: false },
      { bits: 16, stored: 12, signed: false },
    ],
  ],
  [
    '1.2.840.10008.1.2.4.110',
    true,
    [
      { bits: 8, stored: 8, signed: false },
      { bits: 16, stored: 12, signed: false },
      { bits: 16, stored: 16, signed: false },
    ],
  ],
  [
    '1.2.840.10008.1.2.4.112',
    false,
    [
      { bits: 8, stored: 8, signed: false },
      { bits: 16, stored: 12, signed: false },
    ],
  ],
];

const kind = (s: Sample) => `${s.bits}-bit allocated, ${s.stored} stored, ${s.signed ? 'signed' : 'unsigned'}`;
/** The offset that makes every stored value of this sample kind non-negative. */
const offsetFor = (s: Sample) => (s.signed ? 2 ** (s.stored - 1) : 0);

beforeAll(async () => {
  await NativeCodecs.initializeAsync();
});

describe('DICOM round trips through dcmjs-codecs, every supported transfer syntax, 3 frames each', () => {
  for (const [syntax, lossless, samples, params] of ROUND_TRIPS) {
    for (const s of samples) {
      it(`${syntax} (${SUPPORTED_DICOM_SYNTAXES[syntax]}), ${kind(s)}`, async () => {
        const values = pattern(W, H, FRAMES, s, lossless);
        const bytes = writeDicom(elements(W, H, FRAMES, s, values), syntax, params);
        const stack = await openDicom(bytes, 'gen.dcm');
        expect([stack.format, stack.width, stack.height, stack.count]).toEqual(['dicom', W, H, FRAMES]);
        expect(Array.from({ length: FRAMES }, (_, f) => stack.label(f))).toEqual(['frame1', 'frame2', 'frame3']);
        const offset = offsetFor(s);
        for (let f = 0; f < FRAMES; f++) {
          const img = stack.image(f, { offset });
          expect(img.maxValue).toBe(s.stored <= 8 ? 255 : 65535);
          const want = values.slice(f * W * H, (f + 1) * W * H).map((v) => v + offset);
          if (lossless) expect(Array.from(img.pixels)).toEqual(want);
          else {
            // Lossy: close to the original everywhere (a few per cent of the range).
            const tolerance = 0.05 * 2 ** s.stored;
            const worst = Math.max(...want.map((v, i) => Math.abs(v - img.pixels[i])));
            expect(worst).toBeLessThanOrEqual(tolerance);
          }
        }
      });
    }
  }

  it('1.2.840.10008.1.2.4.57 (JPEG Lossless, predictor 6), 12-bit and 16-bit signed', async () => {
    for (const s of [
      { bits: 16, stored: 12, signed: false },
      { bits: 16, stored: 16, signed: true },
    ] as Sample[]) {
      const values = pattern(W, H, FRAMES, s, true);
      const bytes = writeJpegProcess(elements(W, H, FRAMES, s, values), '1.2.840.10008.1.2.4.57', { lossy: false, predictor: 6 }, FRAMES);
      const stack = await openDicom(bytes, 'sv6.dcm');
      for (let f = 0; f < FRAMES; f++) {
        expect(Array.from(stack.image(f, { offset: offsetFor(s) }).pixels)).toEqual(
          values.slice(f * W * H, (f + 1) * W * H).map((v) => v + offsetFor(s)),
        );
      }
    }
  });

  it('1.2.840.10008.1.2.4.51 (JPEG Extended), 8-bit lossy', async () => {
    const s: Sample = { bits: 8, stored: 8, signed: false };
    const values = pattern(W, H, FRAMES, s, false);
    const bytes = writeJpegProcess(elements(W, H, FRAMES, s, values), '1.2.840.10008.1.2.4.51', { lossy: true, quality: 95 }, FRAMES);
    const stack = await openDicom(bytes, 'ext.dcm');
    const img = stack.image(2, offset0);
    const want = values.slice(2 * W * H);
    expect(Math.max(...want.map((v, i) => Math.abs(v - img.pixels[i])))).toBeLessThanOrEqual(12);
  });
});

describe('DICOM files made by other implementations', () => {
  // MR_small: 64x64, 16-bit signed, values 0..~1500; the reference is the same
  // pixels written as a 16-bit PNG by Pillow.
  const mrSmall = () => decodePng(testdata('MR_small.png'), 'MR_small.png');
  for (const f of [
    'MR_small.dcm', // explicit VR little endian (pydicom)
    'MR_small_implicit.dcm', // implicit VR little endian (DCMTK dcmodify)
    'MR_small_bigendian.dcm', // explicit VR big endian (DCMTK)
    'MR_small_RLE.dcm', // RLE (pydicom's authors)
    'MR_small_jpeg_ls_lossless.dcm', // JPEG-LS lossless (CharLS via pydicom's authors)
    'MR_small_jp2klossless.dcm', // JPEG 2000 lossless
    'MR_small_jpeg_lossless_sv1_dcmtk.dcm', // JPEG lossless SV1, 4.70 (DCMTK dcmcjpeg)
    'MR_small_jpeg_lossless_sv6_dcmtk.dcm', // JPEG lossless predictor 6, 4.57 (DCMTK dcmcjpeg)
  ]) {
    it(`${f} gives MR_small's pixels, the same GrayImage as the PNG`, async () => {
      const img = (await open(f)).image(0, offset0);
      expect(img).toEqual(mrSmall());
    });
  }

  // demo/images/ch2-z106.png (8-bit real MRI) written as DICOM by pydicom,
  // then compressed by DCMTK and GDCM: each gives back the PNG exactly.
  const ch2 = () => decodePng(readFileSync(join(__dirname, '..', '..', '..', 'demo', 'images', 'ch2-z106.png')), 'ch2-z106.png');
  for (const f of [
    'ch2-z106.dcm',
    'ch2-z106_implicit_dcmtk.dcm',
    'ch2-z106_bigendian_dcmtk.dcm',
    'ch2-z106_rle_dcmtk.dcm',
    'ch2-z106_jpeg_lossless_sv1_dcmtk.dcm',
    'ch2-z106_jpeg_lossless_sv6_dcmtk.dcm',
    'ch2-z106_jpegls_dcmtk.dcm',
    'ch2-z106_j2k_gdcm.dcm',
    'ch2-z106_monochrome1.dcm', // stored as 255 - v, MONOCHROME1: mirrored back
  ]) {
    it(`${f} gives the same GrayImage as demo/images/ch2-z106.png`, async () => {
      expect((await open(f)).image(0, offset0)).toEqual(ch2());
    });
  }

  for (const f of ['ch2-z106_jpeg_baseline_dcmtk', 'ch2-z106_jpeg_extended_dcmtk']) {
    it(`${f}.dcm (lossy) decodes as DCMTK's dcmdjpeg decodes it`, async () => {
      const img = (await open(`${f}.dcm`)).image(0, offset0);
      expect(Array.from(img.pixels)).toEqual(Array.from(testdata(`${f}.decoded.raw`)));
    });
  }

  it('JPGExtended.dcm (4.51, 12-bit lossy, 256x1024) decodes as DCMTK decodes it', async () => {
    const img = (await open('JPGExtended.dcm')).image(0, offset0);
    expect([img.width, img.height, img.maxValue]).toEqual([256, 1024, 65535]);
    const le = Buffer.alloc(img.pixels.length * 2);
    img.pixels.forEach((v, i) => le.writeUInt16LE(v, 2 * i));
    expect(createHash('sha256').update(le).digest('hex')).toBe('d30242775a414c01d616447854ebe3f2b20259822894bcd6891f879bcdcbf313');
  });

  it('image_dfl.dcm (deflated explicit VR, 512x512 8-bit) decodes as pydicom decodes it', async () => {
    const img = (await open('image_dfl.dcm')).image(0, offset0);
    expect([img.width, img.height, img.maxValue]).toEqual([512, 512, 255]);
    expect(createHash('sha256').update(Uint8Array.from(img.pixels)).digest('hex')).toBe(
      '1f5f1b1c1a57606a55d7e4212ee2655c8205b45e264bd55057f7388c258deef8',
    );
  });

  it('CT_small.dcm: RescaleIntercept -1024 applied; refused without an offset, exact with --offset 1024', async () => {
    const stack = await open('CT_small.dcm');
    expect(() => stack.image(0, offset0)).toThrow(
      /CT_small\.dcm: pixel at \(0, 0\) is below 0 after RescaleSlope 1 and RescaleIntercept -1024 and --offset 0/,
    );
    const img = stack.image(0, { offset: 1024 });
    // pydicom: pixel_array[0, 0:3] = 175, 180, 166 (stored), so HU = stored - 1024.
    expect(Array.from(img.pixels.subarray(0, 3))).toEqual([175, 180, 166]);
    expect(Array.from(stack.image(0, { offset: 2000 }).pixels.subarray(0, 3))).toEqual([1151, 1156, 1142]);
  });
});

describe('DICOM files that cannot be read say why', () => {
  it('a truncated file (pydicom MR_truncated.dcm, and a generated RLE file cut mid-fragment)', async () => {
    await expect(open('MR_truncated.dcm')).rejects.toThrow(/MR_truncated\.dcm: the file is truncated/);
    const s: Sample = { bits: 16, stored: 16, signed: false };
    const rle = writeDicom(elements(W, H, 1, s, pattern(W, H, 1, s, true)), '1.2.840.10008.1.2.5');
    await expect(openDicom(rle.subarray(0, rle.length - 40), 'cut.dcm')).rejects.toThrow(/cut\.dcm: the file is truncated/);
    // Cut inside the header, too.
    await expect(openDicom(rle.subarray(0, 300), 'cut.dcm')).rejects.toThrow(/cut\.dcm: the file is truncated/);
  });

  it('a DICOM file without pixel data (an RT Plan; a generated dataset) is not an image', async () => {
    await expect(open('rtplan.dcm')).rejects.toThrow(/rtplan\.dcm: has no pixel data: not an image \(Modality RTPLAN/);
    const report = new Uint8Array(
      new Transcoder(
        { SOPClassUID: '1.2.840.10008.5.1.4.1.1.88.11', SOPInstanceUID: '1.2.3', Modality: 'SR', PatientName: 'X' },
        EXPLICIT_LE,
      ).getDicomPart10(),
    );
    await expect(openDicom(report, 'report.dcm')).rejects.toThrow(/report\.dcm: has no pixel data: not an image \(Modality SR/);
  });

  it('a colour image is refused by its photometric interpretation', async () => {
    await expect(open('SC_rgb_rle.dcm')).rejects.toThrow(
      /SC_rgb_rle\.dcm: colour image \(PhotometricInterpretation RGB, 3 samples per pixel\)/,
    );
    const s: Sample = { bits: 8, stored: 8, signed: false };
    const palette = writeDicom(
      elements(W, H, 1, s, pattern(W, H, 1, s, true), { PhotometricInterpretation: 'PALETTE COLOR' }),
      EXPLICIT_LE,
    );
    await expect(openDicom(palette, 'pal.dcm')).rejects.toThrow(/colour image \(PhotometricInterpretation PALETTE COLOR/);
  });

  it('an unsupported compression is named', async () => {
    const s: Sample = { bits: 8, stored: 8, signed: false };
    const el = { ...elements(W, H, 1, s, []), _vrMap: { PixelData: 'OB' }, PixelData: [new Uint8Array(64).fill(1).buffer] };
    const mpeg = new Uint8Array(new Transcoder(el, '1.2.840.10008.1.2.4.100').getDicomPart10());
    await expect(openDicom(mpeg, 'video.dcm')).rejects.toThrow(
      /video\.dcm: transfer syntax 1\.2\.840\.10008\.1\.2\.4\.100 \(MPEG2 video\) is not supported/,
    );
  });

  it('a file that is not DICOM, and a 32-bit one', async () => {
    await expect(openDicom(new Uint8Array(500).fill(7), 'junk.dcm')).rejects.toThrow(/junk\.dcm: not a DICOM Part 10 file/);
    const s: Sample = { bits: 16, stored: 16, signed: false };
    const el = elements(W, H, 1, s, pattern(W, H, 1, s, true));
    const wide = writeDicom({ ...el, BitsAllocated: 32, BitsStored: 32, HighBit: 31, Rows: H, Columns: Math.floor(W / 2) }, EXPLICIT_LE);
    await expect(openDicom(wide, 'dose.dcm')).rejects.toThrow(/dose\.dcm: BitsAllocated 32 is not supported/);
  });

  it('a frame that does not decode fails by file and frame, and the decoder keeps working after it', async () => {
    // No codec checksums its data, so the test breaks the structure: frame 2
    // is 64 bytes of junk in place of a codestream.
    const s: Sample = { bits: 16, stored: 16, signed: false };
    const values = pattern(W, H, 2, s, true);
    for (const syntax of [
      '1.2.840.10008.1.2.5',
      '1.2.840.10008.1.2.4.70',
      '1.2.840.10008.1.2.4.80',
      '1.2.840.10008.1.2.4.90',
      '1.2.840.10008.1.2.4.201',
    ]) {
      const good = writeDicom(elements(W, H, 2, s, values), syntax);
      const goodStack = await openDicom(good, 'good.dcm');
      const t = new Transcoder(elements(W, H, 2, s, values), EXPLICIT_LE);
      t.transcode(syntax);
      const el = t.getElements() as { PixelData: ArrayBuffer[] };
      el.PixelData = [el.PixelData[0], new Uint8Array(64).fill(7).buffer];
      const bad = new Uint8Array(new Transcoder(el, syntax).getDicomPart10());
      const stack = await openDicom(bad, 'bad.dcm');
      expect(Array.from(stack.image(0, offset0).pixels), syntax).toEqual(values.slice(0, W * H));
      expect(() => stack.image(1, offset0), syntax).toThrow(/bad\.dcm: frame 2 (does not decode as|decodes to)/);
      expect(Array.from(goodStack.image(1, offset0).pixels), syntax).toEqual(values.slice(W * H));
    }
  });
});

describe('DICOM pixel semantics', () => {
  const s16: Sample = { bits: 16, stored: 16, signed: true };

  it('MONOCHROME1 is mirrored within the stored range (unsigned: max - v; signed: -1 - v)', async () => {
    const values = [0, 1, 100, 4095];
    const mono1 = writeDicom(
      elements(2, 2, 1, { bits: 16, stored: 12, signed: false }, values, { PhotometricInterpretation: 'MONOCHROME1' }),
      EXPLICIT_LE,
    );
    expect(Array.from((await openDicom(mono1, 'm1.dcm')).image(0, offset0).pixels)).toEqual([4095, 4094, 3995, 0]);
    const signed = writeDicom(elements(2, 2, 1, s16, [-32768, -1, 0, 32767], { PhotometricInterpretation: 'MONOCHROME1' }), EXPLICIT_LE);
    expect(Array.from((await openDicom(signed, 'm1s.dcm')).image(0, { offset: 32768 }).pixels)).toEqual([65535, 32768, 32767, 0]);
  });

  it('bits outside BitsStored/HighBit are not part of the pixel', async () => {
    // 12 bits stored at HighBit 15 (shifted up by 4), and 12 bits at HighBit 11 with junk above.
    const shifted = elements(2, 1, 1, { bits: 16, stored: 16, signed: false }, [0x1230, 0xfff0], { BitsStored: 12, HighBit: 15 });
    expect(Array.from((await openDicom(writeDicom(shifted, EXPLICIT_LE), 'hb.dcm')).image(0, offset0).pixels)).toEqual([0x123, 0xfff]);
    const junk = elements(2, 1, 1, { bits: 16, stored: 16, signed: false }, [0xf123, 0x8fff], { BitsStored: 12, HighBit: 11 });
    expect(Array.from((await openDicom(writeDicom(junk, EXPLICIT_LE), 'junk.dcm')).image(0, offset0).pixels)).toEqual([0x123, 0xfff]);
    const signed12 = elements(2, 1, 1, { bits: 16, stored: 12, signed: true }, [-2048, 2047]);
    expect(Array.from((await openDicom(writeDicom(signed12, EXPLICIT_LE), 's12.dcm')).image(0, { offset: 2048 }).pixels)).toEqual([
      0, 4095,
    ]);
  });

  it('a fractional RescaleSlope is applied exactly, and a non-integer result is refused, not rounded', async () => {
    const u: Sample = { bits: 16, stored: 16, signed: false };
    const even = writeDicom(elements(2, 2, 1, u, [0, 2, 10, 65534], { RescaleSlope: '0.5', RescaleIntercept: '-1' }), EXPLICIT_LE);
    expect(Array.from((await openDicom(even, 'half.dcm')).image(0, { offset: 1 }).pixels)).toEqual([0, 1, 5, 32767]);
    const tenth = writeDicom(elements(2, 1, 1, u, [30, 65530], { RescaleSlope: '0.1', RescaleIntercept: '0' }), EXPLICIT_LE);
    expect(Array.from((await openDicom(tenth, 'tenth.dcm')).image(0, offset0).pixels)).toEqual([3, 6553]);
    const odd = writeDicom(elements(2, 1, 1, u, [4, 3], { RescaleSlope: '0.5', RescaleIntercept: '0' }), EXPLICIT_LE);
    await expect(openDicom(odd, 'odd.dcm').then((st) => st.image(0, offset0))).rejects.toThrow(
      /odd\.dcm: pixel at \(1, 0\) is not an integer after RescaleSlope 0\.5 and RescaleIntercept 0/,
    );
  });

  it('values still outside 0..65535 after the rule are refused by frame and position, with the offset that would fit', async () => {
    const values = [0, 5, 7, 9, -3, 0];
    const stack = await openDicom(writeDicom(elements(3, 1, 2, s16, values), EXPLICIT_LE), 'neg.dcm');
    expect(Array.from(stack.image(0, offset0).pixels)).toEqual([0, 5, 7]);
    expect(() => stack.image(1, offset0)).toThrow(
      /neg\.dcm frame 2: pixel at \(1, 0\) is below 0 after --offset 0; the file's stored values span -32768\.\.32767, so --offset 32768 fits/,
    );
    expect(() => stack.image(0, { offset: 65535 })).toThrow(/neg\.dcm frame 1: pixel at \(1, 0\) is above 65535/);
  });

  it('an enhanced multi-frame file rescales each frame by its own functional group', async () => {
    const u: Sample = { bits: 16, stored: 12, signed: false };
    const perFrame = [0, 1, 2].map((f) => ({
      PixelValueTransformationSequence: [{ RescaleSlope: '1', RescaleIntercept: String(100 * f), RescaleType: 'US' }],
    }));
    const el = elements(2, 1, 3, u, [1, 2, 1, 2, 1, 2], { PerFrameFunctionalGroupsSequence: perFrame });
    const stack = await openDicom(writeDicom(el, '1.2.840.10008.1.2.5'), 'enh.dcm');
    expect([0, 1, 2].map((f) => Array.from(stack.image(f, offset0).pixels))).toEqual([
      [1, 2],
      [101, 102],
      [201, 202],
    ]);
  });
});

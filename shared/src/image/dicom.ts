// DICOM Part 10 -> grayscale images, one per frame. Two libraries do the
// work (docs/IMAGES.md says why these two):
//
// * dicom-parser reads the file: explicit and implicit VR, little and big
//   endian, deflated datasets, encapsulated fragments and their offset
//   tables. It throws "buffer overrun" on a truncated file, where dcmjs would
//   hand back pixel data silently padded with zeros.
// * dcmjs-codecs' WebAssembly decodes compressed frames: RLE, JPEG
//   (libjpeg 8/12/16-bit builds: baseline, extended, lossless with any
//   predictor), JPEG-LS (CharLS), JPEG 2000 (OpenJPEG), HTJ2K (OpenJPH) and
//   JPEG XL (libjxl).
//
// What this file adds is DICOM's pixel semantics: BitsStored/HighBit/
// PixelRepresentation, MONOCHROME1, and which RescaleSlope/Intercept applies
// to which frame. Messages say which file and frame, and why.

import * as dicomParser from 'dicom-parser';
import { invalidInput } from '../errors';
import { applyPixelRule, decimalOf, parseDecimal, type PixelRule, type Rescale } from './pixel-rule';
import { dicomRecordMetadata, dicomSopInstanceUid, dicomWindow, type DicomMetadataOptions } from './record-metadata';
import type { ImageStack } from './stack';

const decimalNumber = (d: { digits: bigint; exponent: number }) => Number(d.digits) * 10 ** d.exponent;

type Codecs = typeof import('dcmjs-codecs');
type DecoderName = 'decodeRle' | 'decodeJpeg' | 'decodeJpegLs' | 'decodeJpeg2000' | 'decodeHtJpeg2000' | 'decodeJpegXl';

/** Uncompressed transfer syntaxes (deflate is undone by dicom-parser while parsing). */
const NATIVE: Record<string, string> = {
  '1.2.840.10008.1.2': 'Implicit VR Little Endian',
  '1.2.840.10008.1.2.1': 'Explicit VR Little Endian',
  '1.2.840.10008.1.2.1.99': 'Deflated Explicit VR Little Endian',
  '1.2.840.10008.1.2.2': 'Explicit VR Big Endian',
};

/**
 * Compressed transfer syntaxes and the dcmjs-codecs decoder for each. The
 * library's Transcoder lists only 4.50 and 4.70 among the JPEG processes, but
 * its decodeJpeg picks the 8/12/16-bit libjpeg build from the frame's own SOF
 * precision and reads any process, so 4.51 and 4.57 decode the same way
 * (tested with files made by DCMTK and by pydicom's authors).
 */
const COMPRESSED: Record<string, [DecoderName, string]> = {
  '1.2.840.10008.1.2.5': ['decodeRle', 'RLE Lossless'],
  '1.2.840.10008.1.2.4.50': ['decodeJpeg', 'JPEG Baseline (Process 1)'],
  '1.2.840.10008.1.2.4.51': ['decodeJpeg', 'JPEG Extended (Process 2 & 4)'],
  '1.2.840.10008.1.2.4.57': ['decodeJpeg', 'JPEG Lossless (Process 14)'],
  '1.2.840.10008.1.2.4.70': ['decodeJpeg', 'JPEG Lossless (Process 14, Selection Value 1)'],
  '1.2.840.10008.1.2.4.80': ['decodeJpegLs', 'JPEG-LS Lossless'],
  '1.2.840.10008.1.2.4.81': ['decodeJpegLs', 'JPEG-LS Near-Lossless'],
  '1.2.840.10008.1.2.4.90': ['decodeJpeg2000', 'JPEG 2000 Lossless'],
  '1.2.840.10008.1.2.4.91': ['decodeJpeg2000', 'JPEG 2000'],
  '1.2.840.10008.1.2.4.201': ['decodeHtJpeg2000', 'HTJ2K Lossless'],
  '1.2.840.10008.1.2.4.202': ['decodeHtJpeg2000', 'HTJ2K Lossless RPCL'],
  '1.2.840.10008.1.2.4.203': ['decodeHtJpeg2000', 'HTJ2K'],
  '1.2.840.10008.1.2.4.110': ['decodeJpegXl', 'JPEG XL Lossless'],
  '1.2.840.10008.1.2.4.112': ['decodeJpegXl', 'JPEG XL'],
};

/** Names for the syntaxes we refuse, so the message says what the file is. */
const UNSUPPORTED: Record<string, string> = {
  '1.2.840.10008.1.2.4.52': 'JPEG Extended (Process 3 & 5, retired)',
  '1.2.840.10008.1.2.4.53': 'JPEG Spectral Selection (retired)',
  '1.2.840.10008.1.2.4.55': 'JPEG Full Progression (retired)',
  '1.2.840.10008.1.2.4.92': 'JPEG 2000 Part 2 Multi-component Lossless',
  '1.2.840.10008.1.2.4.93': 'JPEG 2000 Part 2 Multi-component',
  '1.2.840.10008.1.2.4.100': 'MPEG2 video',
  '1.2.840.10008.1.2.4.101': 'MPEG2 video',
  '1.2.840.10008.1.2.4.102': 'MPEG-4 AVC/H.264 video',
  '1.2.840.10008.1.2.4.103': 'MPEG-4 AVC/H.264 video',
  '1.2.840.10008.1.2.4.104': 'MPEG-4 AVC/H.264 video',
  '1.2.840.10008.1.2.4.105': 'MPEG-4 AVC/H.264 video',
  '1.2.840.10008.1.2.4.106': 'MPEG-4 AVC/H.264 video',
  '1.2.840.10008.1.2.4.107': 'HEVC/H.265 video',
  '1.2.840.10008.1.2.4.108': 'HEVC/H.265 video',
  '1.2.840.10008.1.2.4.111': 'JPEG XL JPEG Recompression',
  '1.2.840.10008.1.2.1.98': 'Encapsulated Uncompressed Explicit VR Little Endian',
};

export const SUPPORTED_DICOM_SYNTAXES: Readonly<Record<string, string>> = Object.freeze({
  ...NATIVE,
  ...Object.fromEntries(Object.entries(COMPRESSED).map(([uid, [, name]]) => [uid, name])),
});

let codecs: Promise<Codecs> | undefined;

/**
 * The WebAssembly is compiled once per process, and only when a compressed
 * file is met: the daemons import this library too and never need it.
 */
function loadCodecs(): Promise<Codecs> {
  codecs ??= (async () => {
    // A plain require keeps it out of the daemons' start-up; it is CommonJS.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const lib = require('dcmjs-codecs') as Codecs;
    await lib.NativeCodecs.initializeAsync();
    return lib;
  })();
  return codecs;
}

const PART10_MARKER_AT = 128;

export function isDicomPart10(bytes: Uint8Array): boolean {
  return bytes.length >= PART10_MARKER_AT + 4 && String.fromCharCode(...bytes.subarray(PART10_MARKER_AT, PART10_MARKER_AT + 4)) === 'DICM';
}

export async function openDicom(bytes: Uint8Array, name: string): Promise<ImageStack> {
  const fail = (why: string) => invalidInput(`${name}: ${why}`);
  if (!isDicomPart10(bytes)) throw fail('not a DICOM Part 10 file (no "DICM" at byte 128)');

  let ds: dicomParser.DataSet;
  try {
    // A Buffer, so that dicom-parser can inflate a deflated dataset with zlib.
    ds = dicomParser.parseDicom(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  } catch (e) {
    const reason = parserReason(e);
    throw fail(reason === TRUNCATED ? 'the file is truncated (it ends inside its data)' : `not a readable DICOM file (${reason})`);
  }
  if (ds.warnings.some((w) => w.includes('missing sequence delimiter'))) {
    throw fail('the file is truncated (its compressed pixel data has no end)');
  }

  const syntax = ds.string('x00020010')?.replace(/\0/g, '').trim() ?? '';
  const pixelData = ds.elements.x7fe00010;
  if (!pixelData) {
    if (ds.elements.x7fe00008 || ds.elements.x7fe00009) throw fail('has floating-point pixel data; FNN stores integer images only');
    const what = [
      ds.string('x00080060') && `Modality ${ds.string('x00080060')}`,
      ds.string('x00080016') && `SOP Class ${ds.string('x00080016')}`,
    ]
      .filter(Boolean)
      .join(', ');
    throw fail(`has no pixel data: not an image${what ? ` (${what})` : ''}`);
  }
  const compressed = COMPRESSED[syntax];
  if (!NATIVE[syntax] && !compressed) {
    const known = UNSUPPORTED[syntax];
    throw fail(
      `transfer syntax ${syntax || '(none)'}${known ? ` (${known})` : ''} is not supported; ` +
        'FNN reads uncompressed, deflated, RLE, JPEG, JPEG-LS, JPEG 2000, HTJ2K and JPEG XL DICOM',
    );
  }
  if (Boolean(compressed) !== Boolean(pixelData.encapsulatedPixelData)) {
    throw fail(`pixel data is ${pixelData.encapsulatedPixelData ? '' : 'not '}encapsulated, which contradicts transfer syntax ${syntax}`);
  }

  const photometric = (ds.string('x00280004') ?? '').trim();
  const samplesPerPixel = ds.uint16('x00280002') ?? 1;
  if ((photometric !== 'MONOCHROME1' && photometric !== 'MONOCHROME2') || samplesPerPixel !== 1) {
    throw fail(
      `colour image (PhotometricInterpretation ${photometric || 'missing'}, ${samplesPerPixel} sample${samplesPerPixel === 1 ? '' : 's'} per pixel); ` +
        'FNN stores grayscale (MONOCHROME1/MONOCHROME2) images only',
    );
  }
  const rows = ds.uint16('x00280010') ?? 0;
  const columns = ds.uint16('x00280011') ?? 0;
  if (rows < 1 || columns < 1) throw fail(`has no image size (Rows ${rows}, Columns ${columns})`);
  const bitsAllocated = ds.uint16('x00280100') ?? 0;
  if (bitsAllocated !== 8 && bitsAllocated !== 16) {
    throw fail(`BitsAllocated ${bitsAllocated} is not supported; FNN reads 8- and 16-bit DICOM pixel data`);
  }
  const bitsStored = ds.uint16('x00280101') ?? bitsAllocated;
  const highBit = ds.uint16('x00280102') ?? bitsStored - 1;
  if (bitsStored < 1 || bitsStored > bitsAllocated || highBit < bitsStored - 1 || highBit >= bitsAllocated) {
    throw fail(`inconsistent BitsAllocated ${bitsAllocated}, BitsStored ${bitsStored}, HighBit ${highBit}`);
  }
  const signed = (ds.uint16('x00280103') ?? 0) === 1;
  const frames = ds.intString('x00280008') ?? 1;
  if (!Number.isInteger(frames) || frames < 1) throw fail(`NumberOfFrames ${ds.string('x00280008')} is not a positive integer`);
  if (ds.elements.x00283000) {
    throw fail('has a Modality LUT Sequence; FNN applies RescaleSlope/RescaleIntercept only');
  }

  const frameSamples = rows * columns;
  const bytesPerSample = bitsAllocated / 8;
  if (!compressed && pixelData.length < frames * frameSamples * bytesPerSample) {
    throw fail(
      `pixel data holds ${pixelData.length} bytes but ${frames} frame${frames === 1 ? '' : 's'} of ${columns}x${rows} ` +
        `at ${bitsAllocated} bits need ${frames * frameSamples * bytesPerSample}`,
    );
  }
  const lib = compressed ? await loadCodecs() : undefined;
  const rescales = Array.from({ length: frames }, (_, f) => rescaleOf(ds, f, fail));
  const range: [number, number] = signed ? [-(2 ** (bitsStored - 1)), 2 ** (bitsStored - 1) - 1] : [0, 2 ** bitsStored - 1];
  const where = (f: number) => (frames > 1 ? `${name} frame ${f + 1}` : name);

  /** Frame f's samples as stored, each still in its BitsAllocated container. */
  const containers = (f: number): ArrayLike<number> => {
    if (!compressed) {
      const start = pixelData.dataOffset + f * frameSamples * bytesPerSample;
      const out = new Uint16Array(frameSamples);
      if (bytesPerSample === 1) out.set(ds.byteArray.subarray(start, start + frameSamples));
      // The dataset's own parser: little or big endian as the syntax says.
      else for (let i = 0; i < frameSamples; i++) out[i] = ds.byteArrayParser.readUint16(ds.byteArray, start + 2 * i);
      return out;
    }
    const encoded = encapsulatedFrame(ds, pixelData, f, frames, syntax, (why) => fail(`frame ${f + 1}: ${why}`));
    const context = new lib!.Context({
      width: columns,
      height: rows,
      bitsAllocated,
      bitsStored,
      samplesPerPixel: 1,
      pixelRepresentation: signed ? 1 : 0,
      planarConfiguration: 0,
      photometricInterpretation: photometric,
      encodedBuffer: new Uint8Array(encoded.buffer, encoded.byteOffset, encoded.byteLength),
    });
    let decoded: Uint8Array | undefined;
    try {
      decoded = lib!.NativeCodecs[compressed[0]](context, {}).getDecodedBuffer();
    } catch (e) {
      throw fail(`frame ${f + 1} does not decode as ${compressed[1]} (${e instanceof Error ? e.message : String(e)})`);
    }
    // Codecs write samples little endian, one or two bytes each; an 8-bit
    // JPEG inside 16-bit containers comes back one byte per sample.
    if (decoded?.length === frameSamples * 2 && bytesPerSample === 2) {
      const view = new DataView(decoded.buffer, decoded.byteOffset, decoded.byteLength);
      return Uint16Array.from({ length: frameSamples }, (_, i) => view.getUint16(2 * i, true));
    }
    if (decoded?.length === frameSamples || (decoded?.length === frameSamples + 1 && bytesPerSample === 1)) {
      return Uint16Array.from(decoded.subarray(0, frameSamples));
    }
    throw fail(
      `frame ${f + 1} decodes to ${decoded?.length ?? 0} bytes, not the ${frameSamples * bytesPerSample} of a ${columns}x${rows} ${bitsAllocated}-bit frame`,
    );
  };

  // Stored value = bits HighBit-BitsStored+1 .. HighBit of the container,
  // two's complement when PixelRepresentation is 1; other bits (old overlay
  // planes) are not part of the pixel. Codecs return values right-aligned.
  const shift = compressed ? 0 : highBit + 1 - bitsStored;
  const mask = 2 ** bitsStored - 1;
  const signBit = 2 ** (bitsStored - 1);
  // MONOCHROME1 (low = white) becomes MONOCHROME2 by mirroring the stored
  // value within its range, as GDCM's conversion does: FNN's images are
  // always "larger is brighter", so a MONOCHROME1 and a MONOCHROME2 file of
  // the same picture store the same values and the PNGs look right.
  const invert = photometric === 'MONOCHROME1';
  // Read once: the same for every frame but the window.
  const header = dicomRecordMetadata(ds);

  return {
    format: 'dicom',
    name,
    width: columns,
    height: rows,
    count: frames,
    label: (f) => (frames > 1 ? `frame${f + 1}` : ''),
    sopInstanceUid: dicomSopInstanceUid(ds),
    metadata(f: number, options: DicomMetadataOptions = {}) {
      if (!Number.isInteger(f) || f < 0 || f >= frames) throw new RangeError(`${name} has no frame ${f + 1}`);
      const m = { ...header, ...(options.keepPatientIdentity ? dicomRecordMetadata(ds, options) : {}) };
      const window = dicomWindow(ds, f);
      if (!window) return m;
      // The window is in modality units (after the rescale); a MONOCHROME1
      // image's values were mirrored within the stored range, so its window is too.
      const rescale = rescales[f];
      const slope = rescale ? decimalNumber(rescale.slope) : 1;
      const intercept = rescale ? decimalNumber(rescale.intercept) : 0;
      const center = invert ? slope * (range[0] + range[1]) + 2 * intercept - window.center : window.center;
      return { ...m, windowCenter: center, windowWidth: window.width };
    },
    image(f: number, rule: PixelRule) {
      if (!Number.isInteger(f) || f < 0 || f >= frames) throw new RangeError(`${name} has no frame ${f + 1}`);
      const raw = containers(f);
      const values = new Int32Array(frameSamples);
      for (let i = 0; i < frameSamples; i++) {
        let v = Math.floor(raw[i] / 2 ** shift) & mask;
        if (signed && v >= signBit) v -= 2 * signBit;
        values[i] = invert ? range[0] + range[1] - v : v;
      }
      return applyPixelRule({ width: columns, height: rows, values, range, rescale: rescales[f], where: where(f) }, rule);
    },
  };
}

/**
 * RescaleSlope/Intercept for frame f: an enhanced multi-frame file keeps them
 * per frame or shared in its functional groups (Pixel Value Transformation);
 * a classic file at the top level. Absent everywhere: identity.
 */
function rescaleOf(ds: dicomParser.DataSet, frame: number, fail: (why: string) => Error): Rescale | undefined {
  const transform = (groups: dicomParser.Element | undefined, item: number) =>
    groups?.items?.[item]?.dataSet?.elements.x00289145?.items?.[0]?.dataSet;
  const source =
    [transform(ds.elements.x52009230, frame), transform(ds.elements.x52009229, 0), ds].find(
      (d) => d?.elements.x00281053 || d?.elements.x00281052,
    ) ?? undefined;
  if (!source) return undefined;
  const read = (tag: string, name: string, fallback: number) => {
    const text = source.string(tag);
    if (text === undefined || text.trim() === '') return decimalOf(fallback);
    const d = parseDecimal(text.split('\\')[0]);
    if (!d) throw fail(`${name} "${text}" is not a decimal number`);
    return d;
  };
  const slope = read('x00281053', 'RescaleSlope', 1);
  if (slope.digits === 0n) throw fail('RescaleSlope is 0: every pixel would be the same value');
  return { slope, intercept: read('x00281052', 'RescaleIntercept', 0), names: ['RescaleSlope', 'RescaleIntercept'] };
}

/** The compressed bytes of frame f, from whichever fragment layout the file uses. */
function encapsulatedFrame(
  ds: dicomParser.DataSet,
  pixelData: dicomParser.Element,
  f: number,
  frames: number,
  syntax: string,
  fail: (why: string) => Error,
): dicomParser.ByteArray {
  const fragments = pixelData.fragments ?? [];
  try {
    if (fragments.length === 0) throw fail('the pixel data has no fragments');
    if (pixelData.basicOffsetTable && pixelData.basicOffsetTable.length > 0) {
      return dicomParser.readEncapsulatedImageFrame(ds, pixelData, f);
    }
    if (frames === 1) return dicomParser.readEncapsulatedPixelDataFromFragments(ds, pixelData, 0, fragments.length);
    if (frames === fragments.length) return dicomParser.readEncapsulatedPixelDataFromFragments(ds, pixelData, f, 1);
    if (COMPRESSED[syntax][0] === 'decodeJpeg') {
      // No offset table and several fragments per frame: JPEG frames can be
      // found by their start-of-image markers.
      const table = dicomParser.createJPEGBasicOffsetTable(ds, pixelData);
      return dicomParser.readEncapsulatedImageFrame(ds, pixelData, f, table);
    }
  } catch (e) {
    if (e instanceof Error && e.name === 'FnnError') throw e;
    throw fail(`cannot be located in the pixel data (${parserReason(e)})`);
  }
  throw fail(`cannot be located: ${fragments.length} fragments for ${frames} frames and no offset table`);
}

const TRUNCATED = 'the file is truncated';

/** dicom-parser throws strings, Errors, or { exception, dataSet }. */
function parserReason(e: unknown): string {
  const text =
    typeof e === 'string'
      ? e
      : e instanceof Error
        ? e.message
        : typeof e === 'object' && e && 'exception' in e
          ? String((e as { exception: unknown }).exception)
          : String(e);
  if (/buffer overrun|past end of buffer|attempt to read past|cannot be greater than or equal to 'byteArray' length/i.test(text))
    return TRUNCATED;
  return text.replace(/^dicomParser[.:]\w+: ?/, '').slice(0, 160);
}

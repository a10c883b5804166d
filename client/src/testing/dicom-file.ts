// A minimal DICOM Part 10 writer (explicit VR little endian, one grayscale
// frame) for the demo and the end-to-end tests: a file whose header says what
// the test needs (a distinctive StudyDescription, a patient name, a window),
// made without a DICOM toolkit. FNN itself only reads DICOM (shared/src/image/dicom.ts).

export interface DicomFileSpec {
  width: number;
  height: number;
  /** Stored values, row major: 8-bit when `bits` is 8, else 16-bit unsigned. */
  pixels: ArrayLike<number>;
  bits?: 8 | 16;
  sopInstanceUid: string;
  /** Text elements by keyword (those below), written as the header's. */
  header?: Partial<Record<keyof typeof TEXT_TAGS, string>>;
}

const SECONDARY_CAPTURE = '1.2.840.10008.5.1.4.1.1.7';
const EXPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2.1';

/** The text elements this writer knows: tag and VR. */
const TEXT_TAGS = {
  SpecificCharacterSet: [0x0008, 0x0005, 'CS'],
  StudyDate: [0x0008, 0x0020, 'DA'],
  Modality: [0x0008, 0x0060, 'CS'],
  StudyDescription: [0x0008, 0x1030, 'LO'],
  SeriesDescription: [0x0008, 0x103e, 'LO'],
  PatientName: [0x0010, 0x0010, 'PN'],
  PatientID: [0x0010, 0x0020, 'LO'],
  BodyPartExamined: [0x0018, 0x0015, 'CS'],
  StudyInstanceUID: [0x0020, 0x000d, 'UI'],
  SeriesInstanceUID: [0x0020, 0x000e, 'UI'],
  WindowCenter: [0x0028, 0x1050, 'DS'],
  WindowWidth: [0x0028, 0x1051, 'DS'],
  RescaleIntercept: [0x0028, 0x1052, 'DS'],
  RescaleSlope: [0x0028, 0x1053, 'DS'],
} as const;

type Element = { group: number; element: number; vr: string; value: Buffer };

const LONG_VRS = new Set(['OB', 'OW', 'SQ', 'UN', 'UT']);

function encode({ group, element, vr, value }: Element): Buffer {
  const padded = value.length % 2 === 0 ? value : Buffer.concat([value, Buffer.from([vr === 'UI' || vr === 'OB' ? 0 : 0x20])]);
  const head = Buffer.alloc(LONG_VRS.has(vr) ? 12 : 8);
  head.writeUInt16LE(group, 0);
  head.writeUInt16LE(element, 2);
  head.write(vr, 4, 'latin1');
  if (LONG_VRS.has(vr)) head.writeUInt32LE(padded.length, 8);
  else head.writeUInt16LE(padded.length, 6);
  return Buffer.concat([head, padded]);
}

const text = (group: number, element: number, vr: string, value: string, utf8 = false): Element => ({
  group,
  element,
  vr,
  value: Buffer.from(value, utf8 ? 'utf8' : 'latin1'),
});

const us = (group: number, element: number, value: number): Element => {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(value);
  return { group, element, vr: 'US', value: b };
};

/** The bytes of a Part 10 file holding one frame and the header asked for. */
export function dicomFile(spec: DicomFileSpec): Buffer {
  const bits = spec.bits ?? 8;
  const utf8 = spec.header?.SpecificCharacterSet === 'ISO_IR 192';
  const pixelBytes = Buffer.alloc(spec.width * spec.height * (bits / 8));
  for (let i = 0; i < spec.width * spec.height; i++) {
    if (bits === 8) pixelBytes[i] = spec.pixels[i];
    else pixelBytes.writeUInt16LE(spec.pixels[i], 2 * i);
  }
  const dataset: Element[] = [
    text(0x0008, 0x0016, 'UI', SECONDARY_CAPTURE),
    text(0x0008, 0x0018, 'UI', spec.sopInstanceUid),
    ...Object.entries(spec.header ?? {}).map(([keyword, value]) => {
      const [group, element, vr] = TEXT_TAGS[keyword as keyof typeof TEXT_TAGS];
      return text(group, element, vr, value!, utf8);
    }),
    us(0x0028, 0x0002, 1),
    text(0x0028, 0x0004, 'CS', 'MONOCHROME2'),
    us(0x0028, 0x0010, spec.height),
    us(0x0028, 0x0011, spec.width),
    us(0x0028, 0x0100, bits),
    us(0x0028, 0x0101, bits),
    us(0x0028, 0x0102, bits - 1),
    us(0x0028, 0x0103, 0),
    { group: 0x7fe0, element: 0x0010, vr: bits === 8 ? 'OB' : 'OW', value: pixelBytes },
  ].sort((a, b) => a.group - b.group || a.element - b.element);
  const meta = Buffer.concat(
    [
      { group: 0x0002, element: 0x0001, vr: 'OB', value: Buffer.from([0, 1]) },
      text(0x0002, 0x0002, 'UI', SECONDARY_CAPTURE),
      text(0x0002, 0x0003, 'UI', spec.sopInstanceUid),
      text(0x0002, 0x0010, 'UI', EXPLICIT_VR_LITTLE_ENDIAN),
      text(0x0002, 0x0012, 'UI', '1.2.826.0.1.3680043.10.1'),
    ].map(encode),
  );
  const length = Buffer.alloc(4);
  length.writeUInt32LE(meta.length);
  return Buffer.concat([
    Buffer.alloc(128),
    Buffer.from('DICM', 'latin1'),
    encode({ group: 0x0002, element: 0x0000, vr: 'UL', value: length }),
    meta,
    ...dataset.map(encode),
  ]);
}

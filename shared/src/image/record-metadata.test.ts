import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Transcoder } from 'dcmjs-codecs';
import { describe, expect, it } from 'vitest';
import { generateSymmetricKey, RecordKey } from '../crypto/symmetric';
import { METADATA_BLOCK, openSealedImage, openSealedRecord, RecordKeyError, sealImage } from '../encoding/sealed-image';
import { openDicom } from './dicom';
import {
  MAX_LABEL_BYTES,
  MAX_METADATA_BYTES,
  MAX_METADATA_FIELD_BYTES,
  metadataLine,
  parseRecordMetadata,
  serializeRecordMetadata,
  truncateUtf8,
  type RecordMetadata,
} from './record-metadata';

const testdata = (f: string) => readFileSync(join(__dirname, 'testdata', f));
const EXPLICIT_LE = '1.2.840.10008.1.2.1';

/** A 2x2 16-bit DICOM with the header elements given (dcmjs naturalized names). */
function dicom(extra: Record<string, unknown>, frames = 1): Uint8Array {
  const buffer = new ArrayBuffer(2 * 2 * 2 * frames);
  new Uint16Array(buffer).set(Array.from({ length: 4 * frames }, (_, i) => 100 * i));
  const el = {
    _vrMap: { PixelData: 'OW' },
    SOPClassUID: '1.2.840.10008.5.1.4.1.1.7',
    SOPInstanceUID: '1.2.826.0.1.3680043.8.498.77',
    Rows: 2,
    Columns: 2,
    BitsAllocated: 16,
    BitsStored: 12,
    HighBit: 11,
    PixelRepresentation: 0,
    SamplesPerPixel: 1,
    PhotometricInterpretation: 'MONOCHROME2',
    NumberOfFrames: String(frames),
    PixelData: [buffer],
    ...extra,
  };
  const t = new Transcoder(el, EXPLICIT_LE);
  t.transcode(EXPLICIT_LE);
  return new Uint8Array(t.getDicomPart10());
}

const CLINICAL = {
  Modality: 'MR',
  BodyPartExamined: 'HEAD',
  StudyDescription: 'Brain T1 zebra-okapi-7731',
  SeriesDescription: 'AX T1 SE',
  StudyDate: '20240305',
  StudyInstanceUID: '1.2.826.0.1.3680043.8.498.10',
  SeriesInstanceUID: '1.2.826.0.1.3680043.8.498.11',
  WindowCenter: '40',
  WindowWidth: '400',
  PatientName: 'Doe^Jane',
  PatientID: 'MRN-0042',
};

describe('metadata of a DICOM record', () => {
  it('reads modality, body part, study, series, date, UIDs and window; patient identity only when asked', async () => {
    const stack = await openDicom(dicom(CLINICAL), 'mr.dcm');
    const m = stack.metadata!(0);
    expect(m).toEqual({
      modality: 'MR',
      bodyPart: 'HEAD',
      studyDescription: 'Brain T1 zebra-okapi-7731',
      seriesDescription: 'AX T1 SE',
      studyDate: '2024-03-05',
      studyInstanceUid: '1.2.826.0.1.3680043.8.498.10',
      seriesInstanceUid: '1.2.826.0.1.3680043.8.498.11',
      sopInstanceUid: '1.2.826.0.1.3680043.8.498.77',
      windowCenter: 40,
      windowWidth: 400,
    });
    expect(m).not.toHaveProperty('patientName');
    expect(stack.metadata!(0, { keepPatientIdentity: true })).toMatchObject({ patientName: 'Doe^Jane', patientId: 'MRN-0042' });
  });

  it('takes the first of several window values, leaves out a width below 1 and a date that is not one', async () => {
    const m = (await openDicom(dicom({ WindowCenter: ['40', '300'], WindowWidth: ['80', '1500'], StudyDate: '20241341' }), 'x.dcm'))
      .metadata!(0);
    expect([m.windowCenter, m.windowWidth, m.studyDate]).toEqual([40, 80, undefined]);
    const none = (await openDicom(dicom({ WindowCenter: '40', WindowWidth: '0' }), 'x.dcm')).metadata!(0);
    expect(none).not.toHaveProperty('windowCenter');
  });

  it("puts the window in the record's values: through the rescale as given, mirrored for MONOCHROME1", async () => {
    // MONOCHROME1, 12 bits unsigned, intercept -1024: stored v is mirrored to 4095 - v, so modality value m = v - 1024 becomes 2047 - m.
    const m = (
      await openDicom(
        dicom({
          PhotometricInterpretation: 'MONOCHROME1',
          RescaleSlope: '1',
          RescaleIntercept: '-1024',
          WindowCenter: '40',
          WindowWidth: '400',
        }),
        'x.dcm',
      )
    ).metadata!(0);
    expect([m.windowCenter, m.windowWidth]).toEqual([4095 - 2048 - 40, 400]);
  });

  it('decodes text in the declared character set (UTF-8 here); pydicom and DCMTK files read as expected', async () => {
    const m = (await openDicom(dicom({ SpecificCharacterSet: 'ISO_IR 192', StudyDescription: 'Gehirn Übersicht' }), 'x.dcm')).metadata!(0);
    expect(m.studyDescription).toBe('Gehirn Übersicht');
    const ct = (await openDicom(testdata('CT_small.dcm'), 'CT_small.dcm')).metadata!(0);
    expect(ct).toMatchObject({
      modality: 'CT',
      studyDate: '2004-01-19',
      sopInstanceUid: '1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322',
    });
    expect(ct).not.toHaveProperty('patientName');
    const nm = (await openDicom(testdata('JPGExtended.dcm'), 'JPGExtended.dcm')).metadata!(0);
    expect(nm.studyDescription).toBe('Whole Body Bone');
  });

  it('cuts a header value longer than its cap at a character boundary', async () => {
    const long = 'é'.repeat(MAX_METADATA_FIELD_BYTES); // 2 bytes each in UTF-8
    const m = (await openDicom(dicom({ SpecificCharacterSet: 'ISO_IR 192', StudyDescription: long }), 'x.dcm')).metadata!(0);
    expect(m.studyDescription).toBe('é'.repeat(MAX_METADATA_FIELD_BYTES / 2));
    expect(truncateUtf8('aé', 2)).toBe('a');
  });
});

describe('the canonical serialisation', () => {
  const full: RecordMetadata = {
    label: 'glioma, grade "II"',
    modality: 'MR',
    windowWidth: 400,
    windowCenter: 40.5,
    studyDescription: 'Brain',
  };

  it('is the present fields in one order whatever the object order, and reads back', () => {
    const bytes = serializeRecordMetadata(full);
    expect(bytes.toString()).toBe(
      '{"modality":"MR","studyDescription":"Brain","windowCenter":40.5,"windowWidth":400,"label":"glioma, grade \\"II\\""}',
    );
    expect(serializeRecordMetadata({ ...full, bodyPart: '' }).equals(bytes)).toBe(true);
    expect(parseRecordMetadata(bytes)).toEqual(full);
    expect(parseRecordMetadata(new Uint8Array())).toEqual({});
  });

  it('refuses a field over its cap, of the wrong type, or bytes that are not one object; ignores fields it does not know', () => {
    expect(() => serializeRecordMetadata({ label: 'x'.repeat(MAX_LABEL_BYTES + 1) })).toThrow(/label is longer than 1024 bytes/);
    expect(() => serializeRecordMetadata({ modality: 'x'.repeat(MAX_METADATA_FIELD_BYTES + 1) })).toThrow(/modality is longer/);
    expect(() => serializeRecordMetadata({ windowCenter: Number.NaN })).toThrow(/finite number/);
    expect(() => parseRecordMetadata(Buffer.from('{"windowWidth":"400"}'))).toThrow(/wrong type/);
    expect(() => parseRecordMetadata(Buffer.from('[1]'))).toThrow(/not an object/);
    expect(() => parseRecordMetadata(Buffer.alloc(MAX_METADATA_BYTES + 1, 0x20))).toThrow(/longer than 8192/);
    expect(parseRecordMetadata(Buffer.from('{"modality":"CT","futureField":1}'))).toEqual({ modality: 'CT' });
  });

  it('prints as one compact line', () => {
    expect(
      metadataLine({
        modality: 'MR',
        bodyPart: 'HEAD',
        studyDescription: 'Brain T1',
        studyDate: '2024-03-05',
        label: 'glioma\nsee report',
      }),
    ).toBe('MR · HEAD · "Brain T1" · 2024-03-05 · label: glioma see report');
    expect(metadataLine({})).toBe('');
  });
});

describe('sealed records (fnn image v2)', () => {
  const key = new RecordKey(generateSymmetricKey());
  const image = { width: 3, height: 2, maxValue: 65535, pixels: Uint16Array.from([0, 1, 2, 65535, 4, 5]) };

  it('carry the metadata with the image under k, and nothing of it in clear', () => {
    const sealed = sealImage(key, image, { studyDescription: 'zebra-okapi-7731', label: 'glioma' });
    expect(openSealedRecord(key, sealed)).toEqual({ image, metadata: { studyDescription: 'zebra-okapi-7731', label: 'glioma' } });
    expect(openSealedImage(key, sealed)).toEqual(image);
    expect(sealed.includes(Buffer.from('zebra'))).toBe(false);
    expect(openSealedRecord(key, sealImage(key, image)).metadata).toEqual({});
  });

  it('still open when sealed as v1 (before metadata), with none; damage or another key is a RecordKeyError', () => {
    const plain = Buffer.alloc(12 + 2 * 6);
    [3, 2, 65535].forEach((v, i) => plain.writeUInt32BE(v, 4 * i));
    image.pixels.forEach((v, i) => plain.writeUInt16BE(v, 12 + 2 * i));
    expect(openSealedRecord(key, key.seal(plain, 'fnn image v1'))).toEqual({ image, metadata: {} });
    const sealed = sealImage(key, image, { modality: 'CT' });
    const damaged = Buffer.from(sealed);
    damaged[damaged.length - 1] ^= 1;
    expect(() => openSealedRecord(key, damaged)).toThrow(RecordKeyError);
    expect(() => openSealedRecord(new RecordKey(generateSymmetricKey()), sealed)).toThrow(RecordKeyError);
    // A v2 plaintext whose metadata section does not add up is malformed, not opened.
    const section = (length: number, size = METADATA_BLOCK, fill = 0) => {
      const b = Buffer.alloc(size, fill);
      b.writeUInt32BE(length);
      b.write('{}', 4);
      return key.seal(Buffer.concat([plain, b]), 'fnn image v2');
    };
    expect(openSealedRecord(key, section(2)).metadata).toEqual({});
    for (const bad of [section(METADATA_BLOCK), section(2, 100), section(2, METADATA_BLOCK, 1)])
      expect(() => openSealedRecord(key, bad)).toThrow(/malformed/);
  });

  it('seal to one size whatever the metadata, so C1 and C2 cannot tell a labelled record from another by its length', () => {
    const sizes = [{}, { modality: 'MR' }, { studyDescription: 'x'.repeat(256), label: 'y'.repeat(MAX_LABEL_BYTES) }].map(
      (m) => sealImage(key, image, m).length,
    );
    expect(new Set(sizes).size).toBe(1);
  });
});

import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodePng, openSealedRecord, type RecordMetadata } from '@fnn/shared';
import { jsonLines, runCli, type Daemon } from './harness';
import { EXIT } from './output';
import { dicomFile } from './testing/dicom-file';
import { conn, makeKeys, startC1, startC2, type Keys } from './testing/deployment';

// Records with clinical identity, end to end through the real `fnn` and real
// daemons: a DICOM's header and the owner's label are sealed with the image,
// come back with every result in every protocol, and are nowhere in clear in
// C1's or C2's database files; the patient's name and ID are not uploaded at
// all unless the owner asks.

const DEMO = join(__dirname, '..', '..', 'demo', 'images');
const STUDY = 'Brain T1 zebra-okapi-7731';
const PATIENT = 'Quixote^Zebulon';
const PATIENT_ID = 'MRN-ZQ-4417';
const LABEL = 'glioma, grade "II" (biopsy 2024-03-07)';
const UID_A = '1.2.826.0.1.3680043.8.498.9001';
const UID_B = '1.2.826.0.1.3680043.8.498.9002';

let work: string;
let keys: Keys;
let c1: Daemon;
let c2: Daemon;
const pixels = (slice: string) => decodePng(readFileSync(join(DEMO, slice)), slice).pixels;

const header = {
  Modality: 'MR',
  BodyPartExamined: 'HEAD',
  StudyDescription: STUDY,
  SeriesDescription: 'AX T1',
  StudyDate: '20240305',
  StudyInstanceUID: '1.2.826.0.1.3680043.8.498.9000',
  SeriesInstanceUID: '1.2.826.0.1.3680043.8.498.9010',
  WindowCenter: '100',
  WindowWidth: '120',
  PatientName: PATIENT,
  PatientID: PATIENT_ID,
};

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'fnn-records-e2e-'));
  keys = await makeKeys(join(work, 'keys'));
  c2 = await startC2(keys, join(work, 'c2.db'));
  c1 = await startC1(keys, join(work, 'c1.db'), c2.address);
});

afterAll(async () => {
  await c1?.stop();
  await c2?.stop();
  rmSync(work, { recursive: true, force: true });
});

const flags = () => conn(c1, c2, keys);

/** What C1 holds sealed, opened with the owner's key: each record's metadata by ID. */
function sealedAtC1(): Record<string, RecordMetadata> {
  const db = new Database(join(work, 'c1.db'), { readonly: true, fileMustExist: true });
  try {
    const rows = db.prepare('SELECT encrypted_id, sealed_image FROM records').all() as { encrypted_id: Buffer; sealed_image: Buffer }[];
    return Object.fromEntries(
      rows.map((r) => [keys.recordKey.decryptId(r.encrypted_id), openSealedRecord(keys.recordKey, r.sealed_image).metadata]),
    );
  } finally {
    db.close();
  }
}

/** Every byte of both servers' databases, with their write-ahead logs. */
function databaseBytes(): Buffer {
  const files = ['c1.db', 'c2.db'].flatMap((f) => [f, `${f}-wal`, `${f}-shm`]).map((f) => join(work, f));
  return Buffer.concat(files.filter((f) => existsSync(f)).map((f) => readFileSync(f)));
}

describe('records with clinical identity', () => {
  it('uploads DICOM with its header and a label sealed, the patient left out; a CSV ID without a record is reported', async () => {
    const dir = join(work, 'study');
    mkdirSync(dir);
    writeFileSync(join(dir, 'IM0001'), dicomFile({ width: 16, height: 16, pixels: pixels('ch2-z106.png'), sopInstanceUid: UID_A, header }));
    writeFileSync(join(dir, 'b.dcm'), dicomFile({ width: 16, height: 16, pixels: pixels('ch2-z166.png'), sopInstanceUid: UID_B, header }));
    const labels = join(work, 'labels.csv');
    writeFileSync(labels, `ID,label\r\n${UID_A},"glioma, grade ""II"" (biopsy 2024-03-07)"\r\nnot-in-this-upload,normal\r\n`);
    const run = await runCli(['upload', dir, ...flags(), '--labels', labels, '--json']);
    expect(run.code, run.stderr).toBe(0);
    const lines = jsonLines(run.stdout);
    expect(lines.filter((l) => l.id).map((l) => [l.id, l.status])).toEqual([
      [UID_A, 'stored'],
      [UID_B, 'stored'],
    ]);
    expect(lines.at(-1)).toEqual({ labels, unmatched: ['not-in-this-upload'] });
    const held = sealedAtC1();
    expect(held[UID_A]).toEqual({
      modality: 'MR',
      bodyPart: 'HEAD',
      studyDescription: STUDY,
      seriesDescription: 'AX T1',
      studyDate: '2024-03-05',
      studyInstanceUid: '1.2.826.0.1.3680043.8.498.9000',
      seriesInstanceUid: '1.2.826.0.1.3680043.8.498.9010',
      sopInstanceUid: UID_A,
      windowCenter: 100,
      windowWidth: 120,
      label: LABEL,
    });
    // Not even sealed: the patient's name and ID stayed on the owner's machine.
    expect(held[UID_B]).not.toHaveProperty('patientName');
    expect(held[UID_B]).not.toHaveProperty('patientId');
    expect(held[UID_B]).not.toHaveProperty('label');
  });

  it('gives the doctor the metadata with every result, in fast, fnn and bf, as JSON, as one line per result, and in the sheet', async () => {
    const query = join(DEMO, 'ch2-z106.png');
    for (const protocol of ['fast', 'fnn', 'bf']) {
      const run = await runCli(['query', query, ...flags(), '--protocol', protocol, '--k', '2', '--json']);
      expect(run.code, `${protocol}: ${run.stderr}`).toBe(0);
      const [result] = jsonLines(run.stdout) as {
        results: { id: string; distance: string; rmsPerPixel: number; metadata: RecordMetadata }[];
      }[];
      expect(result.results[0], protocol).toMatchObject({
        id: UID_A,
        distance: '0',
        rmsPerPixel: 0,
        metadata: { studyDescription: STUDY, modality: 'MR', label: LABEL, windowCenter: 100 },
      });
      const second = result.results[1];
      expect(second.id, protocol).toBe(UID_B);
      expect(second.rmsPerPixel).toBeCloseTo(Math.sqrt(Number(second.distance) / 256), 9);
      expect(second.metadata).not.toHaveProperty('label');
      expect(JSON.stringify(result)).not.toContain(PATIENT);
    }
    const out = join(work, 'results');
    const human = await runCli(['query', query, ...flags(), '--k', '2', '--out', out]);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toContain(`1. ${UID_A}  distance 0 (RMS 0 per pixel)`);
    expect(human.stdout).toContain(`     MR · HEAD · "${STUDY}" · "AX T1" · 2024-03-05 · W 120 / L 100 · label: ${LABEL}`);
    const sheet = readFileSync(join(out, 'ch2-z106.sheet.html'), 'utf8');
    expect(sheet).toContain(STUDY);
    expect(sheet).toContain('shown with its DICOM window');
    expect(sheet).toContain('glioma, grade &quot;II&quot;');
  });

  it("has none of it in clear in C1's or C2's database files (nor their write-ahead logs)", () => {
    const bytes = databaseBytes();
    // The files searched are the databases: their schema is in them in clear.
    expect(bytes.includes(Buffer.from('sealed_image'))).toBe(true);
    for (const secret of [STUDY, 'zebra-okapi', 'glioma', PATIENT, PATIENT_ID, 'AX T1']) {
      expect(bytes.includes(Buffer.from(secret, 'utf8')), secret).toBe(false);
      expect(bytes.includes(Buffer.from(secret, 'utf16le')), `${secret} (UTF-16)`).toBe(false);
    }
  });

  it('--keep-patient-identity seals the name and ID too (still not in clear at the servers), and the doctor sees them', async () => {
    const file = join(work, 'kept.dcm');
    writeFileSync(
      file,
      dicomFile({ width: 16, height: 16, pixels: pixels('ch2-z206.png'), sopInstanceUid: '1.2.826.0.1.3680043.8.498.9003', header }),
    );
    const run = await runCli(['upload', file, ...flags(), '--keep-patient-identity', '--json']);
    expect(run.code, run.stderr).toBe(0);
    expect(sealedAtC1()['1.2.826.0.1.3680043.8.498.9003']).toMatchObject({ patientName: PATIENT, patientId: PATIENT_ID });
    const q = await runCli(['query', join(DEMO, 'ch2-z206.png'), ...flags()]);
    expect(q.code, q.stderr).toBe(0);
    expect(q.stdout).toContain(`patient: ${PATIENT} (${PATIENT_ID})`);
    const bytes = databaseBytes();
    for (const secret of [PATIENT, PATIENT_ID]) expect(bytes.includes(Buffer.from(secret)), secret).toBe(false);
  });

  it('refuses a labels file that is not ID,label rows, or whose label is too long, before anything is uploaded (exit 2)', async () => {
    const file = join(DEMO, 'ch2-z045.png');
    const cases: [string, RegExp][] = [
      ['a.png,one,two\n', /row 1: 3 columns; each row is ID,label/],
      ['a.png,"unclosed\n', /not CSV/],
      [`a.png,${'x'.repeat(1025)}\n`, /the label of a\.png is longer than 1024 bytes/],
      ['a.png,one\na.png,two\n', /row 2: a\.png is labelled again, differently \(row 1\)/],
    ];
    for (const [text, message] of cases) {
      const labels = join(work, 'bad-labels.csv');
      writeFileSync(labels, text);
      const run = await runCli(['upload', file, ...flags(), '--labels', labels]);
      expect(run.code, text).toBe(EXIT.usage);
      expect(run.stderr, text).toMatch(message);
    }
    const missing = await runCli(['upload', file, ...flags(), '--labels', join(work, 'nope.csv')]);
    expect([missing.code, missing.stderr.trim()]).toEqual([EXIT.usage, `fnn: --labels ${join(work, 'nope.csv')}: cannot be read`]);
  });
});

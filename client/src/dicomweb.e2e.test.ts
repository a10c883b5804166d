import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSealedRecord } from '@fnn/shared';
import { jsonLines, runCli, type Daemon } from './harness';
import { EXIT } from './output';
import { conn, makeKeys, startC1, startC2, type Keys } from './testing/deployment';
import { orthancMissing, startOrthanc, type Orthanc } from './testing/orthanc';

// `fnn upload --dicomweb` against a real PACS: Debian's Orthanc with its
// DICOMweb plugin, started here on a free localhost port. The instances it
// serves are the same files uploaded from disk into a second deployment
// (same keys), so the two collections must hold the same records.

const TESTDATA = join(__dirname, '..', '..', 'shared', 'src', 'image', 'testdata');
const missing = orthancMissing();
if (missing) console.warn(`dicomweb.e2e.test.ts skipped: ${missing}`);

// MR_small's UIDs; the copies get UIDs of the same length (one digit changed), so every element keeps its length.
const SOP = '1.3.6.1.4.1.5962.1.1.4.1.1.20040826185059.5457';
const SERIES = '1.3.6.1.4.1.5962.1.3.4.1.20040826185059.5457';
const STUDY = '1.3.6.1.4.1.5962.1.2.4.20040826185059.5457';
const withUids = (file: string, sop: string, series = SERIES) => {
  const bytes = readFileSync(join(TESTDATA, file)).toString('latin1');
  return Buffer.from(bytes.replaceAll(SOP, sop).replaceAll(SERIES, series), 'latin1');
};
const SOP_3FRAMES = SOP.replace(/7$/, '8');
const SOP_JPEGLS = SOP.replace(/7$/, '9');
const OTHER_SERIES = SERIES.replace(/7$/, '8');
/** Three instances in two series: one plain, one of 3 frames (RLE), one JPEG-LS in a series of its own. */
const INSTANCES: [string, Buffer][] = [
  [SOP, withUids('MR_small.dcm', SOP)],
  [SOP_3FRAMES, withUids('MR_small_3frames_rle_dcmtk.dcm', SOP_3FRAMES)],
  [SOP_JPEGLS, withUids('MR_small_jpeg_ls_lossless.dcm', SOP_JPEGLS, OTHER_SERIES)],
];
const RECORD_IDS = [SOP, `${SOP_3FRAMES}#frame1`, `${SOP_3FRAMES}#frame2`, `${SOP_3FRAMES}#frame3`, SOP_JPEGLS].sort();

let work: string;
let keys: Keys;
let orthanc: Orthanc;
const daemons: Daemon[] = [];

/** A C1 and C2 of their own (own databases), with the shared keys. */
async function deployment(name: string) {
  const c2 = await startC2(keys, join(work, `${name}-c2.db`));
  const c1 = await startC1(keys, join(work, `${name}-c1.db`), c2.address);
  daemons.push(c1, c2);
  return { flags: conn(c1, c2, keys), db: join(work, `${name}-c1.db`) };
}

/** What C1 holds, opened with the record key: ID, pixels and the metadata sealed with them, by ID. */
function held(dbPath: string) {
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  try {
    const rows = db.prepare('SELECT encrypted_id, sealed_image FROM records').all() as { encrypted_id: Buffer; sealed_image: Buffer }[];
    return rows
      .map((r) => {
        const { image, metadata } = openSealedRecord(keys.recordKey, r.sealed_image);
        return { id: keys.recordKey.decryptId(r.encrypted_id), pixels: Array.from(image.pixels), maxValue: image.maxValue, metadata };
      })
      .sort((a, b) => (a.id < b.id ? -1 : 1));
  } finally {
    db.close();
  }
}

describe.skipIf(missing)('fnn upload --dicomweb (Orthanc)', () => {
  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'fnn-dicomweb-e2e-'));
    keys = await makeKeys(join(work, 'keys'));
    orthanc = await startOrthanc(join(work, 'orthanc'));
    for (const [, bytes] of INSTANCES) expect(await orthanc.store(bytes)).toBe('Success');
  });

  afterAll(async () => {
    await Promise.all(daemons.map((d) => d.stop()));
    await orthanc?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  const pacs = (...args: string[]) => ['upload', '--dicomweb', orthanc.dicomweb, '--dicomweb-user', orthanc.user, ...args];
  const withPassword = (password = orthanc.password) => ({ FNN_DICOMWEB_PASSWORD: password });

  it('imports the same records as the same files uploaded from disk, skips what is stored, and stores nothing new the second time', async () => {
    const disk = await deployment('disk');
    const files = join(work, 'files');
    mkdirSync(files);
    // Any file names: a DICOM record is named by its SOPInstanceUID (--id-from sop, the default), as the PACS's instances are.
    INSTANCES.forEach(([, bytes], i) => writeFileSync(join(files, `scan${i}.dcm`), bytes));
    const fromDisk = await runCli(['upload', files, ...disk.flags, '--no-paper-layout']);
    expect(fromDisk.code, fromDisk.stderr).toBe(0);

    const imported = await deployment('pacs');
    // One series first: 2 instances, 4 records (the 3 frames are UID#frame1..3).
    const first = await runCli([...pacs('--series', SERIES), ...imported.flags, '--no-paper-layout', '--json'], withPassword());
    expect(first.code, first.stderr).toBe(0);
    const firstIds = (jsonLines(first.stdout) as { id: string; status: string }[]).map((l) => `${l.id} ${l.status}`).sort();
    expect(firstIds).toEqual([SOP, `${SOP_3FRAMES}#frame1`, `${SOP_3FRAMES}#frame2`, `${SOP_3FRAMES}#frame3`].map((id) => `${id} stored`));

    // Then everything: the stored instances are not fetched again.
    const rest = await runCli([...pacs('--all'), ...imported.flags], withPassword());
    expect(rest.code, rest.stderr).toBe(0);
    expect(rest.stderr).toMatch(/2 of 3 instances already stored, skipped/);
    expect(rest.stdout.trim().split('\n')).toEqual([
      expect.stringMatching(new RegExp(`^\\[1/1\\] ${SOP_JPEGLS.replaceAll('.', '\\.')}: stored`)),
    ]);

    // Same IDs, same pixels, same metadata (the sealed records, opened) as from disk.
    expect(held(imported.db).map((r) => r.id)).toEqual(RECORD_IDS);
    expect(held(imported.db)).toEqual(held(disk.db));
    const frame2 = held(imported.db).find((r) => r.id === `${SOP_3FRAMES}#frame2`)!;
    expect(frame2.metadata).toMatchObject({
      modality: 'MR',
      sopInstanceUid: SOP_3FRAMES,
      seriesInstanceUid: SERIES,
      studyInstanceUid: STUDY,
    });
    expect(held(imported.db).find((r) => r.id === SOP_JPEGLS)!.metadata).toMatchObject({ seriesInstanceUid: OTHER_SERIES });

    const again = await runCli([...pacs('--all', '--since', '2004-08-26'), ...imported.flags], withPassword());
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/3 of 3 instances already stored, skipped/);
    expect(again.stderr).toMatch(/uploaded 0 of 0 images from 0 instances/);
    expect(again.stdout).toBe('');
    const json = await runCli([...pacs('--all'), ...imported.flags, '--json'], withPassword());
    expect(json.code, json.stderr).toBe(0);
    expect(jsonLines(json.stdout)).toEqual(INSTANCES.map(([sop]) => ({ file: sop, status: 'skipped' })));
    expect(held(imported.db)).toEqual(held(disk.db));
    // C2's replica agrees with C1 group by group: nothing half-written by the resumed imports.
    const check = await runCli(['check', ...imported.flags]);
    expect(check.code, check.stdout + check.stderr).toBe(0);
  });

  it('refuses a wrong password with exit 6 and a hint, never showing the password', async () => {
    const d = await deployment('denied');
    const wrong = 'not-the-password-42';
    const run = await runCli([...pacs('--all'), ...d.flags], withPassword(wrong));
    expect(run.code).toBe(EXIT.refused);
    expect(run.stderr.trim()).toMatch(
      /^fnn: the PACS refused the credentials \(401 Unauthorized\): check --dicomweb-user and FNN_DICOMWEB_PASSWORD$/,
    );
    expect(run.stdout + run.stderr).not.toContain(wrong);
    // No credentials at all: the hint says how to give them.
    const anonymous = await runCli(['upload', '--dicomweb', orthanc.dicomweb, '--all', ...d.flags]);
    expect(anonymous.code).toBe(EXIT.refused);
    expect(anonymous.stderr).toMatch(/401.*--dicomweb-user \(password in FNN_DICOMWEB_PASSWORD\) or --dicomweb-token-file/);
    expect(held(d.db)).toEqual([]);
  });

  it('says when nothing matches (exit 4), the PACS is unreachable (exit 5) or the URL is no DICOMweb root (exit 4)', async () => {
    const d = await deployment('misc');
    const later = await runCli([...pacs('--all', '--since', '2005-01-01'), ...d.flags], withPassword());
    expect(later.code).toBe(EXIT.notFound);
    expect(later.stderr.trim()).toBe('fnn: the PACS has no instances matching --all --since 2005-01-01');
    const unknown = await runCli([...pacs('--study', `${STUDY}1`), ...d.flags], withPassword());
    expect(unknown.code).toBe(EXIT.notFound);
    expect(unknown.stderr).toMatch(/no instances matching --study/);
    const root = await runCli(
      ['upload', '--dicomweb', `${orthanc.rest}/not-dicomweb`, '--all', '--dicomweb-user', orthanc.user, ...d.flags],
      withPassword(),
    );
    expect(root.code).toBe(EXIT.notFound);
    expect(root.stderr).toMatch(/no DICOMweb service at http:\/\/127\.0\.0\.1:\d+\/not-dicomweb \(404\)/);
    const stopped = await startOrthanc(join(work, 'orthanc-stopped'));
    await stopped.stop();
    const down = await runCli(['upload', '--dicomweb', stopped.dicomweb, '--all', ...d.flags]);
    expect(down.code).toBe(EXIT.unavailable);
    expect(down.stderr).toMatch(/^fnn: the PACS at http:\/\/127\.0\.0\.1:\d+\/dicom-web cannot be reached \(ECONNREFUSED\)\n$/);
    expect(held(d.db)).toEqual([]);
  });
});

describe('fnn upload --dicomweb flags', () => {
  // Refused before any key is read or anything is connected: no daemon, no PACS needed.
  const nowhere = ['--c1', '127.0.0.1:9', '--c2', '127.0.0.1:9', '--keys', '/nonexistent', '--insecure'];
  const url = 'http://127.0.0.1:9/dicom-web';
  it.each([
    [['upload', '--dicomweb', url, '--all', 'scan.dcm'], /give no files with it/],
    [['upload', '--study', '1.2.3', 'scan.dcm'], /choose what --dicomweb imports: give --dicomweb URL/],
    [['upload', '--dicomweb', url], /needs one of --study UID\.\.\., --series UID\.\.\. and --all/],
    [['upload', '--dicomweb', url, '--series', '1.2/../3'], /--series must be a DICOM UID/],
    [['upload', '--dicomweb', url, '--all', '--since', 'last week'], /--since must be a date/],
    [['upload', '--dicomweb', url, '--all', '--dicomweb-user', 'alice'], /needs the password in FNN_DICOMWEB_PASSWORD/],
    [['upload', '--dicomweb', 'http://alice:hunter2@127.0.0.1:9/dicom-web', '--all'], /must not hold credentials/],
    [['upload'], /name the images: files or directories, or --dicomweb URL/],
  ])('%j is a usage error (exit 2)', async (args, message) => {
    const run = await runCli([...args, ...nowhere], { FNN_DICOMWEB_PASSWORD: '', FNN_DICOMWEB_TOKEN: '' });
    expect(run.code, run.stderr).toBe(EXIT.usage);
    expect(run.stderr).toMatch(message);
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
    expect(run.stderr).not.toContain('hunter2');
  });
});

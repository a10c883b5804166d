import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonLines, runCli, startDaemon, type Daemon } from './harness';
import { EXIT } from './output';

// Images in, end to end: a batch of DICOM, NIfTI and PNG files, some of them
// unreadable, uploaded with the real `fnn` binary to real daemons.

const TESTDATA = join(__dirname, '..', '..', 'shared', 'src', 'image', 'testdata');
/** The SOP Instance UID of ch2-z106.dcm and its lossless encodings: a.dcm's record ID. */
const CH2_UID = '1.2.826.0.1.3680043.8.498.1';
const DEMO = join(__dirname, '..', '..', 'demo', 'images');
let work: string;
let keys: string;
let c1: Daemon;
let c2: Daemon;

/** A 16 x 16 x 2 UINT8 NIfTI-1 volume, gzipped. */
function niftiGz(): Buffer {
  const buf = Buffer.alloc(352 + 16 * 16 * 2);
  buf.writeInt32LE(348, 0);
  [3, 16, 16, 2, 1, 1, 1, 1].forEach((d, i) => buf.writeInt16LE(d, 40 + 2 * i));
  buf.writeInt16LE(2, 70);
  buf.writeInt16LE(8, 72);
  buf.writeFloatLE(352, 108);
  buf.write('n+1\0', 344, 'latin1');
  for (let i = 352; i < buf.length; i++) buf[i] = (i * 7) % 200;
  return gzipSync(buf);
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'fnn-images-e2e-'));
  keys = join(work, 'keys');
  const gen = await runCli(['keygen', '--out', keys, '--bits', '512', '--json']);
  expect(gen.code, gen.stderr).toBe(0);
  // Plaintext here (--insecure everywhere): this file is about images, cli.e2e.test.ts runs the same commands over TLS.
  c2 = await startDaemon('c2', ['--listen', '127.0.0.1:0', '--keys', keys, '--db', join(work, 'c2.db'), '--insecure']);
  c1 = await startDaemon('c1', ['--listen', '127.0.0.1:0', '--keys', keys, '--c2', c2.address, '--db', join(work, 'c1.db'), '--insecure']);
});

afterAll(async () => {
  await c1?.stop();
  await c2?.stop();
  rmSync(work, { recursive: true, force: true });
});

const conn = () => ['--c1', c1.address, '--c2', c2.address, '--keys', keys, '--insecure'];

describe('fnn upload of DICOM, NIfTI and PNG', () => {
  it('uploads every readable image, names each unreadable file with its reason, and exits 3', async () => {
    const dir = join(work, 'batch');
    mkdirSync(dir);
    copyFileSync(join(TESTDATA, 'ch2-z106_jpegls_dcmtk.dcm'), join(dir, 'a.dcm'));
    writeFileSync(join(dir, 'b.nii.gz'), niftiGz());
    copyFileSync(join(TESTDATA, 'MR_truncated.dcm'), join(dir, 'c.dcm'));
    copyFileSync(join(TESTDATA, 'rtplan.dcm'), join(dir, 'd.dcm'));
    copyFileSync(join(DEMO, 'ch2-z045.png'), join(dir, 'e.png'));
    copyFileSync(join(TESTDATA, 'MR_small.dcm'), join(dir, 'f.dcm')); // 64x64: not the collection's 16x16
    const run = await runCli(['upload', dir, ...conn(), '--json']);
    expect(run.code, run.stderr).toBe(EXIT.invalid);
    const lines = jsonLines(run.stdout) as { id?: string; file?: string; status?: string; error?: string }[];
    const byId = Object.fromEntries(lines.filter((l) => l.id).map((l) => [l.id, l]));
    // A readable DICOM is named by its SOP Instance UID, an unreadable one by its file.
    expect(Object.keys(byId).sort()).toEqual([CH2_UID, 'b.nii.gz#z000', 'b.nii.gz#z001', 'c.dcm', 'd.dcm', 'e.png', 'f.dcm'].sort());
    expect(byId[CH2_UID].file).toBe(join(dir, 'a.dcm'));
    for (const id of [CH2_UID, 'b.nii.gz#z000', 'b.nii.gz#z001', 'e.png']) expect(byId[id].status, id).toBe('stored');
    expect(byId['c.dcm']).toMatchObject({ status: 'failed', error: expect.stringMatching(/c\.dcm: the file is truncated/) });
    expect(byId['d.dcm']).toMatchObject({ status: 'failed', error: expect.stringMatching(/d\.dcm: has no pixel data: not an image/) });
    expect(byId['f.dcm']).toMatchObject({
      status: 'failed',
      error: expect.stringMatching(/f\.dcm: 64x64, but the collection's images are 16x16: pass --fit crop/),
    });
    expect(lines.at(-1)).toMatchObject({ exitCode: EXIT.invalid, error: expect.stringMatching(/3 images were not uploaded/) });
    // No progress bar when stderr is not a terminal.
    expect(run.stderr).not.toMatch(/ETA/);
    const status = jsonLines((await runCli(['status', '--c1', c1.address, '--c2', c2.address, '--insecure', '--json'])).stdout)[0] as {
      c1: { records: number };
    };
    expect(status.c1.records).toBe(4);
  });

  it('the same instance in other encodings and under other names is the same record (--id-from sop); --id-from file keeps the names', async () => {
    const dir = join(work, 'encodings');
    mkdirSync(dir);
    for (const f of ['ch2-z106.dcm', 'ch2-z106_rle_dcmtk.dcm', 'ch2-z106_j2k_gdcm.dcm']) copyFileSync(join(TESTDATA, f), join(dir, f));
    copyFileSync(join(TESTDATA, 'ch2-z106_implicit_dcmtk.dcm'), join(dir, 'IM0001'));
    const run = await runCli(['upload', dir, ...conn(), '--json']);
    expect(run.code, run.stderr).toBe(0);
    const lines = jsonLines(run.stdout) as { id?: string; status?: string; total?: number }[];
    const records = lines.filter((l) => l.id);
    expect(records.map((l) => [l.id, l.status])).toEqual([
      [CH2_UID, 'replaced'],
      [CH2_UID, 'replaced'],
      [CH2_UID, 'replaced'],
      [CH2_UID, 'replaced'],
    ]);
    // Still the 4 records of the first test: a.dcm was this instance already.
    expect(records.at(-1)!.total).toBe(4);
    const human = await runCli(['upload', join(dir, 'IM0001'), ...conn()]);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toContain(`${CH2_UID} (IM0001): replaced (4 records)`);

    const byFile = await runCli(['upload', join(dir, 'ch2-z106_rle_dcmtk.dcm'), ...conn(), '--id-from', 'file', '--json']);
    expect(byFile.code, byFile.stderr).toBe(0);
    expect(jsonLines(byFile.stdout)[0]).toMatchObject({ id: 'ch2-z106_rle_dcmtk.dcm', status: 'stored', total: 5 });
    const gone = await runCli(['delete', 'ch2-z106_rle_dcmtk.dcm', ...conn()]);
    expect(gone.code, gone.stderr).toBe(0);
  });

  it('the PNG of an image uploaded as DICOM finds it at distance 0', async () => {
    const run = await runCli(['query', join(DEMO, 'ch2-z106.png'), ...conn(), '--json']);
    expect(run.code, run.stderr).toBe(0);
    const [result] = jsonLines(run.stdout) as { results: { id: string; distance: string }[] }[];
    expect(result.results[0]).toMatchObject({ id: CH2_UID, distance: '0' });
  });

  it('a NIfTI slice is queried as FILE#z001 and finds itself', async () => {
    writeFileSync(join(work, 'q.nii.gz'), niftiGz());
    const run = await runCli(['query', `${join(work, 'q.nii.gz')}#z001`, ...conn(), '--json']);
    expect(run.code, run.stderr).toBe(0);
    const [result] = jsonLines(run.stdout) as { results: { id: string; distance: string }[] }[];
    expect(result.results[0]).toMatchObject({ id: 'b.nii.gz#z001', distance: '0' });
  });

  it('batch-query over a NIfTI volume queries every slice, named like the uploads, and a PNG beside it', async () => {
    const volume = join(work, 'batch-q.nii.gz');
    writeFileSync(volume, niftiGz());
    const out = join(work, 'batch-out');
    const run = await runCli(['batch-query', volume, join(DEMO, 'ch2-z106.png'), ...conn(), '--out', out, '--json']);
    expect(run.code, run.stderr).toBe(0);
    const lines = jsonLines(run.stdout) as {
      query?: string;
      results?: { id: string; distance: string; image: string }[];
      summary?: object;
    }[];
    const byQuery: Record<string, { id: string; distance: string; image: string }> = Object.fromEntries(
      lines.filter((l) => l.query).map((l) => [l.query, l.results![0]]),
    );
    expect(Object.keys(byQuery).sort()).toEqual([`${volume}#z000`, `${volume}#z001`, join(DEMO, 'ch2-z106.png')].sort());
    expect(byQuery[`${volume}#z000`]).toMatchObject({ id: 'b.nii.gz#z000', distance: '0' });
    expect(byQuery[`${volume}#z001`]).toMatchObject({ id: 'b.nii.gz#z001', distance: '0' });
    expect(byQuery[join(DEMO, 'ch2-z106.png')]).toMatchObject({ id: CH2_UID, distance: '0' });
    // Each slice's neighbour is written under its own name.
    expect(new Set(Object.values(byQuery).map((r) => r.image)).size).toBe(3);
    for (const r of Object.values(byQuery)) expect(existsSync(r.image), r.image).toBe(true);
    expect(lines.at(-1)).toMatchObject({ summary: { answered: 3, total: 3, failures: {} } });
  });
});

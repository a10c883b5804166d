import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodePng } from '@fnn/shared';
import { jsonLines, runCli, type Daemon } from './harness';
import { EXIT } from './output';
import {
  connect,
  counts,
  INSECURE,
  makeKeys,
  randomPixels,
  startC1,
  startC2,
  writeImage,
  type Connections,
  type Keys,
} from './testing/deployment';

// Truncated and garbage image files given to the real `fnn` binary: each is
// refused by name with its exit code, nothing reaches either database, and
// both daemons still answer Status.

const TESTDATA = join(__dirname, '..', '..', 'shared', 'src', 'image', 'testdata');
const W = 4;
const H = 4;
let work: string;
let keys: Keys;
let c1: Daemon;
let c2: Daemon;
let c: Connections;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'fnn-bad-files-'));
  keys = await makeKeys(join(work, 'keys'));
  c2 = await startC2(keys, join(work, 'c2.db'));
  c1 = await startC1(keys, join(work, 'c1.db'), c2.address);
  c = connect(c1.address, c2.address);
  const first = writeImage(join(work, 'first.png'), randomPixels(W * H), W, H);
  const up = await runCli(['upload', first, '--c1', c1.address, '--c2', c2.address, '--keys', keys.dir, INSECURE]);
  expect(up.code, up.stderr).toBe(0);
});

afterAll(async () => {
  c?.close();
  await c1?.stop();
  await c2?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

const png = () => encodePng({ width: W, height: H, maxValue: 255, pixels: randomPixels(W * H) });
const flipped = (b: Buffer, at: number) => {
  const out = Buffer.from(b);
  out[at] ^= 0xff;
  return out;
};
const dicom = () => readFileSync(join(TESTDATA, 'ch2-z106.dcm'));
/** A 4 x 4 x 1 UINT8 NIfTI-1 volume. */
function nifti(): Buffer {
  const buf = Buffer.alloc(352 + W * H);
  buf.writeInt32LE(348, 0);
  [3, W, H, 1, 1, 1, 1, 1].forEach((d, i) => buf.writeInt16LE(d, 40 + 2 * i));
  buf.writeInt16LE(2, 70);
  buf.writeInt16LE(8, 72);
  buf.writeFloatLE(352, 108);
  buf.write('n+1\0', 344, 'latin1');
  return buf;
}
const random = (n: number) => Buffer.from(randomPixels(n).map((v) => v & 0xff));

/** [file name, bytes]: none of them is an image of the collection. */
const BAD_FILES: [string, () => Buffer][] = [
  ['empty.png', () => Buffer.alloc(0)],
  ['signature-only.png', () => png().subarray(0, 8)],
  ['truncated-half.png', () => png().subarray(0, Math.floor(png().length / 2))],
  ['truncated-before-iend.png', () => png().subarray(0, png().length - 12)],
  ['corrupt-ihdr-crc.png', () => flipped(png(), 29)],
  ['corrupt-idat.png', () => flipped(flipped(png(), 45), 46)],
  ['random-bytes.png', () => random(300)],
  ['text.png', () => Buffer.from('this is not an image\n')],
  ['wrong-size-6x6.png', () => encodePng({ width: 6, height: 6, maxValue: 255, pixels: randomPixels(36) })],
  ['one-pixel.png', () => encodePng({ width: 1, height: 1, maxValue: 255, pixels: randomPixels(1) })],
  ['deep-16-bit.png', () => encodePng({ width: W, height: H, maxValue: 65535, pixels: randomPixels(W * H, 300, 65535) })],
  ['random-bytes.dcm', () => random(600)],
  ['preamble-only.dcm', () => Buffer.concat([Buffer.alloc(128), Buffer.from('DICM')])],
  ['truncated-60-percent.dcm', () => dicom().subarray(0, Math.floor(dicom().length * 0.6))],
  ['truncated-header.dcm', () => dicom().subarray(0, 200)],
  ['random-bytes.nii', () => random(400)],
  ['truncated-header.nii', () => nifti().subarray(0, 100)],
  ['truncated-voxels.nii', () => nifti().subarray(0, 352 + 5)],
  ['gzip-of-garbage.nii.gz', () => gzipSync(random(400))],
  ['truncated-gzip.nii.gz', () => gzipSync(nifti()).subarray(0, 30)],
];

const conn = () => ['--c1', c1.address, '--c2', c2.address, '--keys', keys.dir, INSECURE];

describe('fnn upload of a file that is not an image of the collection', () => {
  it.each(BAD_FILES.map(([name, bytes]) => [name, bytes] as const))('%s: refused by name, exit 3, nothing stored', async (name, bytes) => {
    const dir = join(work, `upload-${name}`);
    mkdirSync(dir);
    writeFileSync(join(dir, name), bytes());
    const before = await counts(c);
    const run = await runCli(['upload', join(dir, name), ...conn(), '--json']);
    expect(run.code, `${name}: exit code (stderr: ${run.stderr.trim()})`).toBe(EXIT.invalid);
    const failed = jsonLines(run.stdout).find((l) => l.status === 'failed') as { error?: string } | undefined;
    expect(failed?.error, `${name}: the refusal must name the file`).toContain(name);
    expect(await counts(c), `${name}: a database changed`).toEqual(before);
    expect([c1.child.exitCode, c2.child.exitCode], `${name}: a daemon exited`).toEqual([null, null]);
  });
});

describe('fnn query of a file that is not an image', () => {
  it.each(BAD_FILES.filter(([name]) => !/wrong-size|one-pixel|deep/.test(name)).map(([name, bytes]) => [name, bytes] as const))(
    '%s: refused by name with a usage exit code',
    async (name, bytes) => {
      const path = join(work, `query-${name}`);
      writeFileSync(path, bytes());
      const run = await runCli(['query', path, ...conn()]);
      expect(run.code, `${name}: exit code (stderr: ${run.stderr.trim()})`).toBe(EXIT.usage);
      expect(run.stderr, `${name}: the refusal must name the file`).toContain(name);
    },
  );
});

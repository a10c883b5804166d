import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodePng, plaintextNearest } from '@fnn/shared';
import { jsonLines, runCli, type Daemon } from './harness';
import { EXIT } from './output';
import { cliQuery, conn, heldByC1, makeKeys, randomPixels, startC1, startC2, writeImage, type Keys } from './testing/deployment';

// Fault: C1's database on a real full disk, as the issue found it: an 8 MiB
// tmpfs, filled by `fnn upload` of 64x64 PNGs in batches of 4 (each record
// carries the paper's layout, half a MiB at these keys). The batch that does
// not fit fails with exit 5 and "C1's disk is full (database at PATH)" on its
// FAILED lines, and C1 logs SQLITE_FULL. Afterwards, with at most `fnn
// repair`, `fnn check` finds no differing group, and a fast query ranking
// every record C1 holds is exact: no record stored before is refused, though
// C2 took the failed group's change (pending) before C1 ran out of space.
// Mounting needs root, as CI and this machine run.

const SIZE = 64;
const D = SIZE * SIZE;
const BATCH = 4;
/** Far more than the disk holds (about 12 records): the disk is always full before the last batch. */
const MAX_BATCHES = 12;

let work: string;
let disk: string;
let mounted = false;
let keys: Keys;
let c1: Daemon;
let c2: Daemon;
const c1Db = () => join(disk, 'c1.db');

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'fnn-soak-disk-full-'));
  disk = join(work, 'tmpfs');
  mkdirSync(disk);
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', disk], { stdio: 'pipe' });
    mounted = true;
  } catch (error) {
    throw new Error(`this soak test mounts an 8 MiB tmpfs for C1's database and needs root to: ${(error as Error).message.split('\n')[0]}`);
  }
  keys = await makeKeys(join(work, 'keys'));
  c2 = await startC2(keys, join(work, 'c2.db'));
  c1 = await startC1(keys, c1Db(), c2.address);
});

afterAll(async () => {
  await c1?.stop();
  await c2?.stop();
  if (mounted) execFileSync('umount', [disk]);
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("C1's database on a full tmpfs", () => {
  it('the upload that does not fit fails naming the disk; after at most fnn repair, fnn check agrees and every stored record is served exactly', async () => {
    let failed: Awaited<ReturnType<typeof runCli>> | undefined;
    let batches = 0;
    for (; batches < MAX_BATCHES && !failed; batches++) {
      const dir = join(work, `batch-${batches}`);
      mkdirSync(dir);
      for (let j = 0; j < BATCH; j++) writeImage(join(dir, `b${batches}-${j}.png`), randomPixels(D), SIZE, SIZE);
      const run = await runCli(['upload', dir, ...conn(c1, c2, keys), '--json']);
      if (run.code !== EXIT.ok) failed = run;
    }
    expect(failed, `${MAX_BATCHES} batches of ${BATCH} fitted in 8 MiB: the disk never filled`).toBeDefined();
    expect(batches, 'at least one batch must fit before the disk is full').toBeGreaterThanOrEqual(2);
    expect(failed!.code, `the owner is told to try later (exit 5): ${failed!.stderr}`).toBe(EXIT.unavailable);
    const refusals = jsonLines(failed!.stdout).filter((l) => l.status !== 'stored');
    expect(refusals.length, 'the records that did not fit are reported').toBeGreaterThan(0);
    for (const r of refusals) expect(String(r.error), 'each names the full disk').toContain(`C1's disk is full (database at ${c1Db()})`);
    expect(c1.log(), "C1's log names SQLITE_FULL and the file").toMatch(new RegExp(`"sqlite":"SQLITE_FULL","database":"${c1Db()}"`));

    let checked = await runCli(['check', '--c1', c1.address, '--c2', c2.address, '--insecure', '--json']);
    const firstCheck = checked.code;
    if (checked.code !== EXIT.ok) {
      const repaired = await runCli(['repair', ...conn(c1, c2, keys), '--json']);
      expect(repaired.code, `fnn repair after the disk filled: ${repaired.stderr}`).toBe(EXIT.ok);
      checked = await runCli(['check', '--c1', c1.address, '--c2', c2.address, '--insecure', '--json']);
    }
    expect(checked.code, `fnn check after the disk filled: ${checked.stdout} ${checked.stderr}`).toBe(EXIT.ok);

    const held = heldByC1(c1Db(), keys);
    expect(held.length, 'C1 holds the records of the batches that fitted').toBeGreaterThanOrEqual(BATCH);
    const q = writeImage(join(work, 'q.png'), randomPixels(D), SIZE, SIZE);
    const result = await cliQuery([q, ...conn(c1, c2, keys), '--protocol', 'fast', '--k', String(held.length)]);
    expect(result.code, `a fast query over the ${held.length} records C1 holds: ${result.stderr}`).toBe(0);
    const want = plaintextNearest(held, decodePng(readFileSync(q), 'q').pixels, held.length);
    expect(
      result.result.results!.map((r) => [r.id, r.distance]),
      'the fast query over every stored record is not exact',
    ).toEqual(want.map((w) => [w.id, w.distance.toString()]));
    console.log(
      `C1's disk full at batch ${batches} (${BATCH} images each); ${held.length} records held; fnn check ${firstCheck === EXIT.ok ? 'agreed at once' : `exited ${firstCheck} until fnn repair`}`,
    );
  });
});

import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodePng, plaintextNearest } from '@fnn/shared';
import { jsonLines, runCli, type Daemon } from './harness';
import { EXIT } from './output';
import {
  cliQuery,
  conn,
  heldByC1,
  makeKeys,
  randomPixels,
  runCliStreaming,
  startC1,
  startC2,
  writeImage,
  type Keys,
} from './testing/deployment';

// Fault: C1, and then C2, killed with SIGKILL while `fnn upload` sends group
// changes (each one: C2 takes it pending, C1 commits, C2 commits), 20 times
// each at varied moments, so that some kills fall between C2's pending write
// and C1's commit (C1 killed) or between C1's commit and C2's (C2 killed: the
// commit is lost). After each kill, with no upload run again and no repair,
// once the killed daemon is started again on its file: `fnn check` reports no
// differing group and a fast query ranking every record C1 holds (read from
// its file, opened with the record key; its nearest 100 once it holds more)
// is exact. The next round uploads more.

const KILLS = 20;
const SIZE = 8;
const D = SIZE * SIZE;
const PER_UPLOAD = 8;
/** The most a query may ask for: the collection outgrows it in the C2 rounds. */
const MAX_K = 100;

let work: string;
let keys: Keys;
let c1: Daemon;
let c2: Daemon;
const c1Db = () => join(work, 'c1.db');
const c2Db = () => join(work, 'c2.db');

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'fnn-soak-replica-'));
  keys = await makeKeys(join(work, 'keys'));
  c2 = await startC2(keys, c2Db());
  c1 = await startC1(keys, c1Db(), c2.address);
});

afterAll(async () => {
  await c1?.stop();
  await c2?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** Pending changes in C2's replica file (read-only, beside the running C2). */
function pendingAtC2(): number {
  const db = new Database(c2Db(), { readonly: true, fileMustExist: true });
  try {
    return (db.prepare('SELECT count(*) AS n FROM replica_pending').get() as { n: number }).n;
  } finally {
    db.close();
  }
}

describe.each(['C1', 'C2'] as const)('%s killed in the middle of group changes', (killed) => {
  it(`${KILLS} times: without a rerun or a repair, fnn check finds no difference and a fast query over every record is exact`, async () => {
    const moments: number[] = [];
    const pending: number[] = [];
    for (let round = 0; round < KILLS; round++) {
      const what = `${killed} kill ${round + 1}`;
      const dir = join(work, `upload-${killed}-${round}`);
      mkdirSync(dir);
      for (let j = 0; j < PER_UPLOAD; j++) writeImage(join(dir, `${killed}-r${round}-${j}.png`), randomPixels(D), SIZE, SIZE);
      // Killed after 0..3 records were reported stored, plus a small random delay: C2 then holds the next group pending.
      const afterLines = round % 4;
      const delayMs = Math.floor(Math.random() * 30);
      const target = killed === 'C1' ? c1 : c2;
      let seen = 0;
      let timer: NodeJS.Timeout | undefined;
      const schedule = () => {
        timer ??= setTimeout(() => void target.kill(), delayMs);
      };
      if (afterLines === 0) schedule();
      const run = await runCliStreaming(['upload', dir, ...conn(c1, c2, keys), '--json'], (line) => {
        if (line.startsWith('{') && JSON.parse(line).status === 'stored') seen++;
        if (seen >= afterLines) schedule();
      });
      clearTimeout(timer);
      await target.kill();
      moments.push(jsonLines(run.stdout).filter((l) => l.status === 'stored').length);
      // A change C2 took that C1 never committed (or whose commit never reached C2) stays pending there.
      // Left until the group's next change replaces it, so the count after a kill includes earlier rounds'.
      pending.push(pendingAtC2());

      if (killed === 'C1') c1 = await startC1(keys, c1Db(), c2.address, c1.address);
      else c2 = await startC2(keys, c2Db(), c2.address);
      const checked = await runCli(['check', '--c1', c1.address, '--c2', c2.address, '--insecure', '--json']);
      expect(checked.code, `${what}: fnn check after the kill: ${checked.stdout} ${checked.stderr}`).toBe(EXIT.ok);
      const held = heldByC1(c1Db(), keys);
      if (held.length === 0) continue; // killed before C1 stored anything: nothing to query yet
      const q = writeImage(join(work, `q-${killed}-${round}.png`), randomPixels(D), SIZE, SIZE);
      // Every group is bounded in every fast query (one refused group fails it), so the k nearest prove them all served.
      const k = Math.min(held.length, MAX_K);
      const result = await cliQuery([q, ...conn(c1, c2, keys), '--protocol', 'fast', '--k', String(k)]);
      expect(result.code, `${what}: fast query over the ${held.length} records C1 holds: ${result.stderr}`).toBe(0);
      const want = plaintextNearest(held, decodePng(readFileSync(q), 'q').pixels, k);
      expect(
        result.result.results!.map((r) => [r.id, r.distance]),
        `${what}: the fast query is not exact`,
      ).toEqual(want.map((w) => [w.id, w.distance.toString()]));
    }
    expect(Math.max(...pending), 'no kill left C2 a change pending (taken, not committed): kill at other moments').toBeGreaterThan(0);
    console.log(
      `${killed} killed in group changes ${KILLS} times; records reported stored before each kill: ${moments.join(' ')}; pending changes at C2 after each: ${pending.join(' ')}`,
    );
  });
});

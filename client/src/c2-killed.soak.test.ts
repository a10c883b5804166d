import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type * as wire from '@fnn/proto';
import { decodePng, plaintextNearest } from '@fnn/shared';
import { runCli, type Daemon } from './harness';
import { EXIT } from './output';
import { cliQuery, connect, INSECURE, makeKeys, randomPixels, rpc, startC1, startC2, writeImage, type Keys } from './testing/deployment';

// Fault: C2 dies (SIGKILL) while C1 is in a query session with it, 20 times.
// Each time the doctor's query fails well within its deadline with
// UNAVAILABLE naming C2, C1 keeps answering Status, and once C2 is started
// again on the same port and database the next query is exact.

const KILLS = 20;
const SIZE = 12;
const RECORDS = 16;
const QUERY_TIMEOUT_S = 60;
const PROTOCOLS = ['bf', 'fnn', 'fast'];

let work: string;
let keys: Keys;
let c1: Daemon;
let c2: Daemon;
const stored: { id: string; pixels: Uint16Array }[] = [];

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'fnn-soak-c2-'));
  keys = await makeKeys(join(work, 'keys'));
  c2 = await startC2(keys, join(work, 'c2.db'));
  c1 = await startC1(keys, join(work, 'c1.db'), c2.address);
  const dir = join(work, 'images');
  mkdirSync(dir);
  for (let i = 0; i < RECORDS; i++) {
    const id = `scan-${String(i).padStart(2, '0')}.png`;
    const pixels = randomPixels(SIZE * SIZE);
    writeImage(join(dir, id), pixels, SIZE, SIZE);
    stored.push({ id, pixels });
  }
  const up = await runCli(['upload', dir, '--c1', c1.address, '--c2', c2.address, '--keys', keys.dir, INSECURE, '--json']);
  expect(up.code, up.stderr).toBe(0);
});

afterAll(async () => {
  await c1?.stop();
  await c2?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** Polls C2's Status until it reports an open session (C1 is mid-query), then SIGKILLs it; false if the query ended first. */
async function killC2WhenInSession(queryDone: () => boolean): Promise<boolean> {
  const conn = connect(c1.address, c2.address);
  try {
    while (!queryDone()) {
      const s = await rpc<wire.KeyHolderStatus>((m, o, cb) => conn.retrieval.status({}, m, o, cb), 5000).catch(() => undefined);
      if (s && s.openSessions > 0) {
        await c2.kill();
        return true;
      }
    }
    return false;
  } finally {
    conn.close();
  }
}

describe('C2 killed mid-query', () => {
  it(`${KILLS} times: the query fails with UNAVAILABLE naming C2 within its deadline, C1 keeps serving, and after C2 restarts the next query is exact`, async () => {
    let kills = 0;
    let missed = 0;
    let slowestFailureMs = 0;
    for (let attempt = 0; kills < KILLS; attempt++) {
      expect(missed, `C2 could not be caught in a session ${missed} times: the sessions are too short for this test`).toBeLessThan(KILLS);
      const protocol = PROTOCOLS[attempt % PROTOCOLS.length];
      const q = writeImage(join(work, `q-${attempt}.png`), randomPixels(SIZE * SIZE), SIZE, SIZE);
      const conn = ['--c1', c1.address, '--c2', c2.address, '--keys', keys.dir, INSECURE, '--protocol', protocol];
      let done = false;
      const running = cliQuery([q, ...conn, '--timeout', String(QUERY_TIMEOUT_S)]).finally(() => (done = true));
      const killed = await killC2WhenInSession(() => done);
      const failed = await running;
      const what = `kill ${kills + 1} (${protocol})`;
      if (!killed || failed.code === 0) {
        // The query finished before C2 died: not a kill mid-query. Start C2 again and retry.
        missed++;
        if (killed) c2 = await startC2(keys, join(work, 'c2.db'), c2.address);
        continue;
      }
      kills++;
      slowestFailureMs = Math.max(slowestFailureMs, failed.ms);
      expect(failed.code, `${what}: exit code (stderr: ${failed.stderr.trim()})`).toBe(EXIT.unavailable);
      expect(failed.stderr, `${what}: the failure must say UNAVAILABLE and name C2`).toMatch(/UNAVAILABLE.*C2/);
      expect(failed.ms, `${what}: the query must fail well within its ${QUERY_TIMEOUT_S} s deadline`).toBeLessThan(
        (QUERY_TIMEOUT_S * 1000) / 2,
      );

      const statusConn = connect(c1.address, c2.address);
      try {
        const s = await rpc<wire.DatabaseStatus>((m, o, cb) => statusConn.db.status({}, m, o, cb), 10_000);
        expect(s.records, `${what}: C1's Status while C2 is down`).toBe(BigInt(RECORDS));
        expect(s.c2Reachable, `${what}: C1 must report C2 unreachable`).toBe(false);
      } finally {
        statusConn.close();
      }
      expect(c1.child.exitCode, `${what}: C1 exited`).toBeNull();

      c2 = await startC2(keys, join(work, 'c2.db'), c2.address);
      const next = writeImage(join(work, `next-${attempt}.png`), randomPixels(SIZE * SIZE), SIZE, SIZE);
      const again = await cliQuery([next, ...conn, '--timeout', String(QUERY_TIMEOUT_S)]);
      expect(again.code, `${what}: the first query after C2 restarted: ${again.stderr}`).toBe(0);
      const want = plaintextNearest(stored, decodePng(readFileSync(next), 'q').pixels, 1)[0];
      expect([again.result.results![0].id, again.result.results![0].distance], `${what}: the query after the restart is not exact`).toEqual(
        [want.id, want.distance.toString()],
      );
    }
    console.log(
      `C2 killed mid-query ${kills} times (${missed} attempts finished before the kill); slowest failed query ${slowestFailureMs} ms`,
    );
  }, 900_000);
});

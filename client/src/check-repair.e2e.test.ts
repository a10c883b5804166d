import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type * as wire from '@fnn/proto';
import { decodePng, plaintextNearest } from '@fnn/shared';
import { jsonLines, runCli, type Daemon } from './harness';
import { EXIT } from './output';
import {
  cliQuery,
  conn,
  connect,
  makeKeys,
  ownerGroupUpload,
  randomPixels,
  rpc,
  startC1,
  startC2,
  writeImage,
  type Connections,
  type Keys,
} from './testing/deployment';

// `fnn check` and `fnn repair` with the real binary against real daemons
// (plaintext, as the other fault tests): a replica that agrees is exit 0; a
// group C2 serves unlike C1 (a change C1 never took, committed at C2 on
// purpose) is exit 3 naming the group and counts only; `fnn repair` rewrites
// it from C1's records, a second run has nothing to do, and a fast query is exact.

const SIZE = 8;
let work: string;
let keys: Keys;
let c1: Daemon;
let c2: Daemon;
let clients: Connections;
const stored: { id: string; pixels: Uint16Array }[] = [];

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'fnn-check-e2e-'));
  keys = await makeKeys(join(work, 'keys'));
  c2 = await startC2(keys, join(work, 'c2.db'));
  c1 = await startC1(keys, join(work, 'c1.db'), c2.address);
  clients = connect(c1.address, c2.address);
  const dir = join(work, 'images');
  mkdirSync(dir);
  for (let i = 0; i < 5; i++) {
    const id = `scan-${i}.png`;
    const pixels = randomPixels(SIZE * SIZE);
    writeImage(join(dir, id), pixels, SIZE, SIZE);
    stored.push({ id, pixels });
  }
  const up = await runCli(['upload', dir, ...conn(c1, c2, keys), '--json']);
  expect(up.code, up.stderr).toBe(0);
});

afterAll(async () => {
  clients?.close();
  await c1?.stop();
  await c2?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

const check = () => runCli(['check', '--c1', c1.address, '--c2', c2.address, '--insecure', '--json']);
const repair = () => runCli(['repair', ...conn(c1, c2, keys), '--json']);

describe('fnn check and fnn repair', () => {
  it('check: exit 0 when the replicas agree', async () => {
    const run = await check();
    expect(run.code, run.stderr).toBe(EXIT.ok);
    expect(jsonLines(run.stdout)[0]).toMatchObject({ sameCollection: true, c1Records: 5, c2Records: 5, groups: [], differ: [] });
  });

  it('check: exit 3 naming the group C2 serves unlike C1; repair fixes it, a second repair changes nothing, fast queries are exact', async () => {
    // A new record's change to its group, taken and committed at C2 only: C2 serves a member C1 never stored.
    const ghost = await ownerGroupUpload(clients, keys, 'ghost.png', randomPixels(SIZE * SIZE), SIZE, SIZE);
    const group = ghost.replica.group!.group;
    await rpc<wire.ReplicaReply>((m, o, cb) => clients.replica.putGroup(ghost.replica, m, o, cb));
    const listed = await rpc<wire.GroupList>((m, o, cb) => clients.replica.listGroups({}, m, o, cb));
    const digest = listed.groups.find((g) => g.group === group)!.pendingDigest;
    await rpc<wire.CommitGroupReply>((m, o, cb) =>
      clients.replica.commitGroup({ collectionId: ghost.replica.collectionId, group, digest }, m, o, cb),
    );

    const damaged = await check();
    expect(damaged.code, 'check exits 3 when a group differs').toBe(EXIT.invalid);
    const report = jsonLines(damaged.stdout)[0] as { differ: number[]; c1Records: number; c2Records: number };
    expect(report).toMatchObject({ differ: [group], c1Records: 5, c2Records: 6 });
    expect(damaged.stderr).toMatch(/the replicas differ in 1 group/);
    expect(damaged.stdout + damaged.stderr, 'check prints no record ID').not.toMatch(/scan-|ghost/);

    const first = await repair();
    expect(first.code, first.stderr).toBe(EXIT.ok);
    expect(jsonLines(first.stdout)[0]).toEqual({ rewritten: [group], committed: [] });
    const again = await repair();
    expect(again.code, again.stderr).toBe(EXIT.ok);
    expect(jsonLines(again.stdout)[0], 'the second repair finds nothing to do').toEqual({ rewritten: [], committed: [] });
    expect((await check()).code, 'check agrees after the repair').toBe(EXIT.ok);

    const q = writeImage(join(work, 'q.png'), randomPixels(SIZE * SIZE), SIZE, SIZE);
    const result = await cliQuery([q, ...conn(c1, c2, keys), '--protocol', 'fast', '--k', String(stored.length)]);
    expect(result.code, result.stderr).toBe(0);
    const want = plaintextNearest(stored, decodePng(readFileSync(q), 'q').pixels, stored.length);
    expect(result.result.results!.map((r) => [r.id, r.distance])).toEqual(want.map((w) => [w.id, w.distance.toString()]));
  });

  it("check: exit 7 naming a group whose columns are damaged in C2's file; repair rewrites it from C1", async () => {
    const file = new Database(join(work, 'c2.db'));
    try {
      const row = file.prepare('SELECT pixels FROM replica_groups WHERE grp = 0').get() as { pixels: Buffer };
      row.pixels[5] ^= 0xff;
      file.prepare('UPDATE replica_groups SET pixels = ? WHERE grp = 0').run(row.pixels);
    } finally {
      file.close();
    }
    const damaged = await check();
    expect(damaged.code, 'check exits 7 on damage at rest').toBe(EXIT.dataLoss);
    expect(jsonLines(damaged.stdout)[0]).toMatchObject({
      damaged: { c1: [], c2: [{ record: false, group: 0, columns: ['pixels'] }] },
      differ: [0],
    });
    const fixed = await repair();
    expect(fixed.code, fixed.stderr).toBe(EXIT.ok);
    expect(jsonLines(fixed.stdout)[0]).toEqual({ rewritten: [0], committed: [] });
    expect((await check()).code, 'check agrees after the repair').toBe(EXIT.ok);
    const q = writeImage(join(work, 'q2.png'), randomPixels(SIZE * SIZE), SIZE, SIZE);
    const result = await cliQuery([q, ...conn(c1, c2, keys), '--protocol', 'fast', '--k', String(stored.length)]);
    expect(result.code, result.stderr).toBe(0);
    const want = plaintextNearest(stored, decodePng(readFileSync(q), 'q2').pixels, stored.length);
    expect(result.result.results!.map((r) => [r.id, r.distance])).toEqual(want.map((w) => [w.id, w.distance.toString()]));
  });
});

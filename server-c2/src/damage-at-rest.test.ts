import { status as Code } from '@grpc/grpc-js';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type * as wire from '@fnn/proto';
import { recordingLogger } from '@fnn/server-common/testing';
import { ReplicaStore } from './replica-store';
import { expectCode, G, startC2Fixture, type C2Fixture } from './testing/fixtures';

// Damage at rest in C2's replica, on the real daemon: bytes flipped in a
// group's packed columns through a second SQLite connection to the file. A
// session reading the damaged column ends with DATA_LOSS naming the group,
// C2 logs one error line, verify() lists exactly the damaged groups, and a
// session over the restored bytes is answered. (The same
// damage through C1, as the doctor sees it: server-c1/src/damage-at-rest.test.ts.)

const RECORDS = G + 2;
const FLIPPED = 40;

let f: C2Fixture;
const log = recordingLogger();
let file: Database.Database;
/** A second store on C2's file: the group digests C1 would send, and verify(). */
let store: ReplicaStore;

beforeAll(async () => {
  f = await startC2Fixture(RECORDS, undefined, log);
  file = new Database(f.dbPath);
  store = new ReplicaStore(f.dbPath, f.pk1);
});

afterAll(async () => {
  store?.close();
  file?.close();
  await f?.stop();
});

function damage(column: string, group: number): () => void {
  const { blob } = file.prepare(`SELECT ${column} AS blob FROM replica_groups WHERE grp = ?`).get(group) as { blob: Buffer };
  const out = Buffer.from(blob);
  for (let i = 0; i < FLIPPED; i++) out[Math.floor((i * out.length) / FLIPPED)] ^= 0xff;
  file.prepare(`UPDATE replica_groups SET ${column} = ? WHERE grp = ?`).run(out, group);
  return () => file.prepare(`UPDATE replica_groups SET ${column} = ? WHERE grp = ?`).run(blob, group);
}

/** C1's fast open over both groups, as C1 lays them out (candidates by slot, digests as C2 holds them). */
async function fastOpen(): Promise<wire.C1Message> {
  const layouts = [0, 1].map((group) => ({
    group,
    members: Array.from({ length: G }, (_, slot) => (group * G + slot < RECORDS ? group * G + slot : -1)),
    digest: store.source().digest(group)!,
  }));
  return f.messages.fastOpen('s', await f.depositedShare(), layouts);
}

describe('C2 finds damage at rest in its replica', () => {
  it('finds nothing in an undamaged replica, and answers a fast open', async () => {
    expect(store.verify()).toEqual([]);
    const { replies, error } = await f.rawSession([await fastOpen()]);
    expect(error, `an undamaged replica: ${error?.details}`).toBeUndefined();
    expect(replies.length).toBe(1);
  });

  it("ends a session reading a group's damaged columns with DATA_LOSS naming the group, logs it, and verify() lists exactly it", async () => {
    // The session's opening reads every group's coarse columns (§3.5a): the damage there is read at once.
    const restore = damage('coarse', 1);
    try {
      const { replies, error } = await f.rawSession([await fastOpen()]);
      expect(error, 'the session must fail').toBeDefined();
      expectCode(error!, Code.DATA_LOSS, 'a damaged coarse column');
      expect(error!.details).toBe("C2's replica is damaged at group 1: column coarse does not match its checksum");
      expect(replies.length, 'nothing answered from the damaged group').toBe(0);
      const lines = log.lines.filter((l) => l.level === 'error' && l.message === 'data loss');
      expect(lines.length, 'one error line for the operator').toBe(1);
      expect(lines[0].fields).toMatchObject({ rpc: 'Session', database: f.dbPath, damaged: 'group 1', column: 'coarse' });
      expect(store.verify()).toEqual([{ kind: 'group', group: 1, columns: ['coarse'] }]);
    } finally {
      restore();
    }
    expect(store.verify()).toEqual([]);
    const { error } = await f.rawSession([await fastOpen()]);
    expect(error, `restored: ${error?.details}`).toBeUndefined();
  });

  it('lists every damaged group and column, by group', () => {
    const restores = [damage('pixels', 1), damage('pixels', 0), damage('embedding', 0)];
    try {
      expect(store.verify()).toEqual([
        { kind: 'group', group: 0, columns: ['pixels', 'embedding'] },
        { kind: 'group', group: 1, columns: ['pixels'] },
      ]);
    } finally {
      for (const restore of restores) restore();
    }
    expect(store.verify()).toEqual([]);
  });
});

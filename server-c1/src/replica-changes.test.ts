import { randomBytes } from 'node:crypto';
import { status as Code, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type * as wire from '@fnn/proto';
import { compareReplicas, silentLogger, type GroupOutcome, type OwnerLink, type PlaintextRecord } from '@fnn/shared';
import {
  databaseStatus,
  expectCode,
  FAST,
  forget,
  G,
  grpcError,
  listGroups,
  query,
  randomImage,
  remember,
  SHAPE,
  shareTicketOf,
  startFixture,
  type Deployment,
  type Fixture,
} from './testing/fixtures';

// A group change is applied at both servers or at neither as far as queries
// can tell (docs/ARCHITECTURE.md, "Replica changes"): a fault injected at
// each point of the owner's change (C1 failing after C2 took it, C1 losing
// its reply after it committed, C2 unreachable at the commit, C1's disk
// full) leaves every record C1 holds answered by an exact fast query, and
// the comparison `fnn check` prints reporting no difference. `fnn repair`
// (CollectionWriter.repair) fixes a replica damaged on purpose and finds
// nothing to do the second time. A C2 bound to another collection refuses
// the change and the session.

let f: Fixture;

beforeAll(async () => {
  f = await startFixture({ empty: true });
});

afterAll(async () => {
  await f?.stop();
});

const grpcFailure = (code: Code, details: string) => Object.assign(new Error(details), { code, details }) as ServiceError;

/** What `fnn check` prints, from both daemons' ListGroups. */
async function comparison(d: Deployment = f.main) {
  return compareReplicas(await listGroups(d.db), await f.replicaGroups(d));
}

/** `fnn check` finds no group differing; `settled`: none pending either. */
async function expectNoDifference(what: string, d: Deployment = f.main, settled = false) {
  const c = await comparison(d);
  expect(c.sameCollection, `${what}: one collection`).toBe(true);
  expect(
    c.groups.filter((g) => g.state === 'differs'),
    `${what}: fnn check must find no differing group`,
  ).toEqual([]);
  if (settled) expect(c.groups, `${what}: and nothing pending`).toEqual([]);
  return c;
}

/** Every record C1 holds, ranked by one exact fast query (k = all of them), and each one's own image finds it. */
async function expectEveryRecordAnswered(what: string, d: Deployment = f.main) {
  expect(Number((await databaseStatus(d.db)).records), `${what}: C1 holds the reference collection`).toBe(d.collection.length);
  await f.expectExactNeighbours(randomImage(), FAST, d.collection.length, `${what}: a fast query over every record`, d);
  const last = d.collection[d.collection.length - 1];
  await f.expectExactNeighbours(last.pixels, FAST, 1, `${what}: the newest record by its own image`, d);
}

/** The owner's upload over a link with one step replaced; its outcomes. */
async function uploadOver(link: OwnerLink, records: PlaintextRecord[], d: Deployment = f.main): Promise<GroupOutcome[]> {
  const outcomes: GroupOutcome[] = [];
  await f.writerOver(link, d.layouts).upload(
    records.map((r) => ({ id: r.id, image: { ...SHAPE, pixels: r.pixels } })),
    (o) => outcomes.push(o),
  );
  return outcomes;
}

describe('a group change that fails part way', () => {
  it('C1 failing after C2 took the change (a replacement and a new record): C2 keeps serving the old groups, fast queries stay exact, fnn check finds nothing', async () => {
    const link = f.ownerLink(f.main, { c1: true, c2: true });
    link.upload = async () => {
      throw grpcFailure(Code.INTERNAL, 'C1 failed');
    };
    const replaced = f.main.collection[4];
    const outcomes = await uploadOver(link, [
      { id: replaced.id, pixels: randomImage() },
      { id: 'never-at-c1', pixels: randomImage() },
    ]);
    expect(outcomes.every((o) => !o.ok)).toBe(true);
    expect(link.sent.replicaGroups.length, 'a change per group').toBeGreaterThanOrEqual(1);
    expect(link.sent.replicaReplies.length, 'C2 took every change').toBe(link.sent.replicaGroups.length);
    expect(link.sent.commits, 'nothing is committed at C2').toEqual([]);
    const listed = (await f.replicaGroups()).groups;
    for (const r of link.sent.replicaGroups)
      expect(listed.find((g) => g.group === r.group!.group)?.pending, 'C2 holds the change pending, beside the group it serves').toBe(true);
    // The replaced record still has its old image at C1: that is what the query must find.
    await f.expectExactNeighbours(replaced.pixels, FAST, 1, 'the replaced record by its image at C1');
    await expectNoDifference('after C1 failed');
    await expectEveryRecordAnswered('after C1 failed');
  });

  it('C1 committing and its reply lost (C1 killed after its commit): the next fast query serves the new group at C2 too', async () => {
    const link = f.ownerLink(f.main, { c1: true, c2: true });
    const upload = link.upload;
    link.upload = async (req) => {
      await upload(req);
      throw grpcFailure(Code.UNAVAILABLE, 'C1 went away');
    };
    const record = { id: 'reply-lost', pixels: randomImage() };
    const outcomes = await uploadOver(link, [record]);
    expect(
      outcomes.map((o) => o.ok),
      'the owner saw the upload fail',
    ).toEqual([false]);
    remember(f.main, [record]);
    const group = link.sent.uploads[0].group!.group;
    const before = await expectNoDifference('C1 holds the change, C2 holds it pending');
    expect(before.groups, 'fnn check shows the group pending at C2').toEqual([
      { group, state: 'pending', c1Members: expect.any(Number) as number },
    ]);
    await expectEveryRecordAnswered('after the reply was lost');
    await expectNoDifference('after the next query', f.main, true);
  });

  it('C2 unreachable at the commit: the upload stands, and the next fast query serves it', async () => {
    const link = f.ownerLink(f.main, { c1: true, c2: true });
    link.commitReplicaGroup = async () => {
      throw grpcFailure(Code.UNAVAILABLE, 'C2: unreachable');
    };
    const record = { id: 'commit-lost', pixels: randomImage() };
    const outcomes = await uploadOver(link, [record]);
    expect(
      outcomes.map((o) => o.ok),
      'C1 holds the records: the upload succeeded',
    ).toEqual([true]);
    remember(f.main, [record]);
    expect((await comparison()).groups.map((g) => g.state)).toEqual(['pending']);
    await expectEveryRecordAnswered('after the commit was lost');
    await expectNoDifference('after the next query', f.main, true);
  });

  it('a delete C1 fails after C2 took the re-encrypted groups: the record is still answered; the delete run again removes it everywhere', async () => {
    const victim = f.main.collection[1];
    const link = f.ownerLink(f.main, { c1: true, c2: true });
    link.delete = async () => {
      throw grpcFailure(Code.INTERNAL, 'C1 failed');
    };
    await expect(f.writerOver(link, f.main.layouts).delete([victim.id])).rejects.toThrow('C1 failed');
    await expectNoDifference('after the failed delete');
    await expectEveryRecordAnswered('after the failed delete');
    await f.ownerDelete(f.main, [victim.id]);
    forget(f.main, [victim.id]);
    await expectNoDifference('after the delete ran again', f.main, true);
    await expectEveryRecordAnswered('after the delete ran again');
    await f.ownerUpload(f.main, [victim]);
    remember(f.main, [victim]);
  });

  it('C1 on a full disk: the refused upload leaves every stored record answered by a fast query, and no difference', async () => {
    const small = await f.startSmallPair('full', 60, silentLogger);
    let failure: unknown;
    for (let i = 0; i < 40 && failure === undefined; i++) {
      const r = { id: `full-${i}`, pixels: randomImage() };
      try {
        await f.ownerUpload(small, [r]);
        remember(small, [r]);
      } catch (e) {
        failure = e;
      }
    }
    expectCode(failure as ServiceError, Code.RESOURCE_EXHAUSTED, 'the upload that does not fit');
    expect(small.collection.length, 'some records fit before the disk filled').toBeGreaterThanOrEqual(2);
    await expectNoDifference('after the disk filled', small);
    await expectEveryRecordAnswered('after the disk filled', small);
  });
});

describe('fnn repair', () => {
  it('rewrites a group whose replica was overwritten with an older version, and a second run changes nothing', async () => {
    // Group 0 as the base upload first set it: an older version than C1's.
    const old = f.baseBatch.replicaGroups[0];
    expect(old.group!.group).toBe(0);
    await f.putGroup(old);
    const staged = (await f.replicaGroups()).groups.find((g) => g.group === 0)!;
    expect((await f.commitGroup({ collectionId: old.collectionId, group: 0, digest: staged.pendingDigest })).agrees).toBe(true);
    const damaged = await comparison();
    expect(damaged.groups, 'fnn check names group 0 as differing').toEqual([
      { group: 0, state: 'differs', c1Members: G, c2Members: old.members.length },
    ]);
    const error = await grpcError(query(f.main.db, await f.fastRequest(randomImage())), 'a fast query over the damaged replica');
    expectCode(error, Code.FAILED_PRECONDITION, 'a fast query over the damaged replica');
    expect(error.details).toMatch(/replicas of group 0 differ/);

    const link = f.ownerLink(f.main, { c1: true, c2: true });
    const first = await f.writerOver(link, f.main.layouts).repair();
    expect(first, 'the first repair rewrites group 0 only').toEqual({ rewritten: [0], committed: [] });
    expect(link.sent.uploads.length + link.sent.deletes.length, 'repair never writes to C1').toBe(0);
    await expectNoDifference('after the repair', f.main, true);
    await expectEveryRecordAnswered('after the repair');

    const again = f.ownerLink(f.main, { c1: true, c2: true });
    expect(await f.writerOver(again, f.main.layouts).repair(), 'the second repair finds nothing').toEqual({ rewritten: [], committed: [] });
    expect(again.sent.replicaGroups.length + again.sent.commits.length, 'and sends nothing').toBe(0);
  });

  it('commits a pending change C1 holds, and an interrupted rewrite is finished by the next run', async () => {
    // Interrupted: the rewritten group reached C2 pending, the commit never left.
    const old = f.baseBatch.replicaGroups[0];
    await f.putGroup(old);
    const staged = (await f.replicaGroups()).groups.find((g) => g.group === 0)!;
    await f.commitGroup({ collectionId: old.collectionId, group: 0, digest: staged.pendingDigest });
    const link = f.ownerLink(f.main, { c1: true, c2: true });
    link.commitReplicaGroup = async () => {
      throw grpcFailure(Code.UNAVAILABLE, 'C2: interrupted');
    };
    await expect(f.writerOver(link, f.main.layouts).repair()).rejects.toThrow('interrupted');
    expect(
      (await comparison()).groups.map((g) => g.state),
      'the rewritten group waits at C2 as C1 holds it',
    ).toEqual(['pending']);
    const next = f.ownerLink(f.main, { c1: true, c2: true });
    expect(await f.writerOver(next, f.main.layouts).repair()).toEqual({ rewritten: [], committed: [0] });
    await expectNoDifference('after the second run', f.main, true);
    await expectEveryRecordAnswered('after the second run');
  });
});

describe('the collection id', () => {
  it('C2 refuses a change of another collection with FAILED_PRECONDITION, changing nothing', async () => {
    const before = await f.replicaGroups();
    const change: wire.ReplicaGroup = { ...f.baseBatch.replicaGroups[0], collectionId: randomBytes(16) };
    const error = await grpcError(f.putGroup(change), 'a replica change of another collection');
    expectCode(error, Code.FAILED_PRECONDITION, 'a replica change of another collection');
    expect(error.details).toBe("C2's replica belongs to another collection");
    const commit = await grpcError(
      f.commitGroup({ collectionId: randomBytes(16), group: 0, digest: before.groups[0].digest }),
      'a commit of another collection',
    );
    expectCode(commit, Code.FAILED_PRECONDITION, 'a commit of another collection');
    expect(await f.replicaGroups(), "C2's replica is as it was").toEqual(before);
  });

  it("a second C1 on a fresh database cannot change the real C2's replica, and the real deployment keeps answering", async () => {
    const before = await f.replicaGroups();
    // f.empty: another C1, on a fresh database, whose --c2 is the real C2.
    const error = await f.ownerUpload(f.empty, [{ id: 'intruder', pixels: randomImage() }]).then(
      () => undefined,
      (e: ServiceError) => e,
    );
    expect(error, "the second C1's upload must be refused").toBeDefined();
    expectCode(error!, Code.FAILED_PRECONDITION, "the second C1's upload");
    expect(error!.details).toMatch(/C2's replica belongs to another collection/);
    expect(await f.replicaGroups(), "C2's replica is as it was").toEqual(before);
    await expectEveryRecordAnswered('the real deployment, after the refused change');
  });

  it('C2 refuses a session of another collection', async () => {
    const ticket = shareTicketOf(await f.fastRequest(randomImage()));
    const groups = (await listGroups(f.main.db)).groups.map((g) => ({
      group: g.group,
      members: new Array<number>(G).fill(-1),
      digest: g.digest,
    }));
    const { error } = await f.rawSession([f.messages.fastOpen('s', ticket, groups, f.pk1, randomBytes(16))]);
    expect(error, 'C2 must end the session with an error').toBeDefined();
    expectCode(error!, Code.FAILED_PRECONDITION, 'a session of another collection');
    expect(error!.details).toMatch(/C2's replica belongs to another collection/);
  });
});

import { status as Code } from '@grpc/grpc-js';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type * as wire from '@fnn/proto';
import type { ProtocolName } from '@fnn/shared';
import { recordingLogger } from '@fnn/server-common/testing';
import { BF, expectCode, FAST, FNN, G, grpcError, query, randomImage, remember, startFixture, type Fixture } from './testing/fixtures';

// Damage at rest, on the real daemons: bytes flipped in C1's database (and in
// C2's replica) through a second SQLite connection to the file, as a failing
// disk or a careless copy would leave them; SQLite's integrity check passes
// them. Every query that reads a damaged blob fails with DATA_LOSS naming the
// record (position in upload order, group, slot) or the group, never its ID;
// C1 logs one error line; the store's verify() lists exactly the damaged rows;
// a query that reads nothing damaged is still exact, and so is every query
// once the bytes are back.

/** Two groups: one full, one with all but one slot taken. */
const RECORDS = 2 * G - 1;
/** As many as the operator flipped (spread over the blob, fewer if it is shorter). */
const FLIPPED = 40;

let f: Fixture;
const log = recordingLogger();
let pair: Awaited<ReturnType<Fixture['startPair']>>;
let c1File: Database.Database;
let c2File: Database.Database;

beforeAll(async () => {
  f = await startFixture();
  pair = await f.startPair('damage', log);
  const images = Array.from({ length: RECORDS }, (_, i) => ({ id: `damage-${i}`, pixels: randomImage() }));
  await f.ownerUpload(pair, images);
  remember(pair, images);
  c1File = new Database(pair.dbPath);
  c2File = new Database(pair.c2Path);
});

afterAll(async () => {
  c1File?.close();
  c2File?.close();
  await f?.stop();
});

/** The blob with FLIPPED of its bytes inverted, spread over its length. */
function flipped(blob: Buffer): Buffer {
  const out = Buffer.from(blob);
  const n = Math.min(FLIPPED, out.length);
  for (let i = 0; i < n; i++) out[Math.floor((i * out.length) / n)] ^= 0xff;
  return out;
}

/** Flips bytes of one blob in the file, behind the daemon's back; returns what puts them back. */
function damage(file: Database.Database, table: string, column: string, where: string, key: number): () => void {
  const { blob } = file.prepare(`SELECT ${column} AS blob FROM ${table} WHERE ${where} = ?`).get(key) as { blob: Buffer };
  file.prepare(`UPDATE ${table} SET ${column} = ? WHERE ${where} = ?`).run(flipped(blob), key);
  return () => file.prepare(`UPDATE ${table} SET ${column} = ? WHERE ${where} = ?`).run(blob, key);
}

/** Where C1 keeps a record: its seq, its position in upload order (1-based), its group and slot. */
function placeOf(id: string) {
  const rows = c1File.prepare('SELECT seq, grp, slot, lookup_tag FROM records ORDER BY seq').all() as {
    seq: number;
    grp: number;
    slot: number;
    lookup_tag: Buffer;
  }[];
  const at = rows.findIndex((r) => r.lookup_tag.equals(f.tagOf(id)));
  if (at < 0) throw new Error(`${id} is not in C1's file`);
  const { seq, grp, slot, lookup_tag } = rows[at];
  return { seq, position: at + 1, group: grp, slot, lookupTag: lookup_tag };
}

const recordMessage = (p: ReturnType<typeof placeOf>, column: string) =>
  `C1's database is damaged at record ${p.position} in upload order (group ${p.group}, slot ${p.slot}): column ${column} does not match its checksum`;

/** The query fails with DATA_LOSS and exactly this message; nothing of the record's ID is in it. */
async function expectDataLoss(request: Promise<wire.QueryRequest>, message: string, what: string): Promise<void> {
  const error = await grpcError(query(pair.db, await request), what);
  expectCode(error, Code.DATA_LOSS, what);
  expect(error.details, `${what}: the message names the damaged place`).toBe(message);
  expect(/damage-\d/.test(error.details), `${what}: never the record's ID`).toBe(false);
}

function dataLossLines() {
  return log.lines.filter((l) => l.level === 'error' && l.message === 'data loss');
}

const exactAll = async (what: string) => {
  for (const protocol of [FAST, FNN, BF] as ProtocolName[])
    await f.expectExactNeighbours(randomImage(), protocol, 2, `${what} (${protocol})`, pair);
};

describe('C1 and C2 find damage at rest', () => {
  it("finds nothing in an undamaged collection, which SQLite's integrity check passes; every protocol is exact", async () => {
    expect(pair.store.verify(), 'verify() of an undamaged database').toEqual([]);
    await exactAll('undamaged');
  });

  // Each case: the blob, and a query that must read it (a self-query reads the record's own blobs).
  const recordCases: [string, ProtocolName, boolean][] = [
    ['pixels', BF, false],
    ['pixels', FNN, true],
    ['sum', FNN, false],
    ['spread', FNN, false],
    ['encrypted_id', FAST, true],
    ['sealed_image', FAST, true],
  ];

  it.each(recordCases)(
    "refuses a query reading a record's damaged %s (%s) with DATA_LOSS naming its position, logs it, and verify() lists exactly that record",
    async (column, protocol, selfQuery) => {
      const target = pair.collection[G + 1]; // in the second group
      const place = placeOf(target.id);
      const restore = damage(c1File, 'records', column, 'seq', place.seq);
      expect(pair.store.integrityCheck(), 'SQLite sees nothing wrong').toBe('ok');
      const linesBefore = dataLossLines().length;
      try {
        const pixels = selfQuery ? target.pixels : randomImage();
        await expectDataLoss(f.requestFor(pixels, protocol, 1, pair), recordMessage(place, column), `${column} damaged, ${protocol}`);
        const lines = dataLossLines().slice(linesBefore);
        expect(lines.length, 'one error line for the operator').toBe(1);
        expect(lines[0].fields).toMatchObject({
          rpc: 'Query',
          database: pair.dbPath,
          damaged: `record ${place.position} in upload order (group ${place.group}, slot ${place.slot})`,
          column,
        });
        expect(JSON.stringify(lines[0]).includes(target.id), 'the log never names the ID').toBe(false);
        expect(pair.store.verify(), 'verify() lists the one damaged record and column').toEqual([
          { kind: 'record', group: place.group, slot: place.slot, position: place.position, lookupTag: place.lookupTag, columns: [column] },
        ]);
        // A query that reads nothing damaged is answered, exactly: the fast protocol never reads the paper's
        // layout, and a query whose one result is another record reads no other record's ID or sealed image.
        const unaffected = ['pixels', 'sum', 'spread'].includes(column) ? FAST : FNN;
        const other = pair.collection[0];
        await f.expectExactNeighbours(other.pixels, unaffected, 1, `${column} damaged, ${unaffected} does not read it`, pair);
      } finally {
        restore();
      }
      expect(pair.store.verify(), 'nothing damaged once the bytes are back').toEqual([]);
      await f.expectExactNeighbours(target.pixels, protocol, 2, `${column} restored, ${protocol}`, pair);
    },
  );

  it.each(['pixels', 'embedding', 'constants'])(
    "refuses a fast query reading a group's damaged packed %s with DATA_LOSS naming the group; verify() lists it; fnn is still exact",
    async (column) => {
      const target = pair.collection[0];
      const { group } = placeOf(target.id);
      const restore = damage(c1File, 'packed_groups', column, 'grp', group);
      try {
        await expectDataLoss(
          f.requestFor(target.pixels, FAST, 1, pair),
          `C1's database is damaged at group ${group}: column ${column} does not match its checksum`,
          `packed ${column} damaged`,
        );
        expect(dataLossLines().at(-1)?.fields, 'the log line names the group').toMatchObject({ damaged: `group ${group}`, column });
        expect(pair.store.verify()).toEqual([{ kind: 'group', group, columns: [column] }]);
        await f.expectExactNeighbours(target.pixels, FNN, 2, `packed ${column} damaged, fnn does not read it`, pair);
      } finally {
        restore();
      }
      await f.expectExactNeighbours(target.pixels, FAST, 2, `packed ${column} restored`, pair);
    },
  );

  it('lists exactly the damaged records and groups when several are damaged, records in upload order first', () => {
    const [first, second] = [placeOf(pair.collection[1].id), placeOf(pair.collection[G].id)];
    const restores = [
      damage(c1File, 'records', 'sealed_image', 'seq', second.seq),
      damage(c1File, 'records', 'sum', 'seq', second.seq),
      damage(c1File, 'records', 'pixels', 'seq', first.seq),
      damage(c1File, 'packed_groups', 'embedding', 'grp', 1),
    ];
    const record = (p: typeof first, columns: string[]) => ({
      kind: 'record',
      group: p.group,
      slot: p.slot,
      position: p.position,
      lookupTag: p.lookupTag,
      columns,
    });
    try {
      expect(pair.store.verify()).toEqual([
        ...[record(first, ['pixels']), record(second, ['sealed_image', 'sum'])].sort((x, y) => x.position - y.position),
        { kind: 'group', group: 1, columns: ['embedding'] },
      ]);
    } finally {
      for (const restore of restores) restore();
    }
    expect(pair.store.verify()).toEqual([]);
  });

  it("refuses a fast query over a group damaged in C2's replica with DATA_LOSS naming the group (C2's word, through C1); fnn is still exact", async () => {
    const target = pair.collection[0];
    const { group } = placeOf(target.id);
    const restore = damage(c2File, 'replica_groups', 'embedding', 'grp', group);
    try {
      await expectDataLoss(
        f.requestFor(target.pixels, FAST, 1, pair),
        `C2: C2's replica is damaged at group ${group}: column embedding does not match its checksum`,
        "C2's replica damaged",
      );
      await f.expectExactNeighbours(target.pixels, FNN, 2, "C2's replica damaged, fnn does not read it", pair);
    } finally {
      restore();
    }
    await f.expectExactNeighbours(target.pixels, FAST, 2, "C2's replica restored", pair);
  });
});

import { status as Code, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PlaintextRecord } from '@fnn/shared';
import { recordingLogger } from '@fnn/server-common/testing';
import { BF, D, databaseStatus, expectCode, FNN, randomImage, remember, startFixture, type Fixture } from './testing/fixtures';

// C1 on a full disk, without a tmpfs: its database is capped at a few pages
// (SQLite's max_page_count), and the owner uploads one record at a time until
// C1 refuses. The owner must get RESOURCE_EXHAUSTED naming the file, C1's log
// one error line naming SQLITE_FULL and the file, and the records stored
// before must be whole and answer queries exactly.

/** Enough for a few records at the test size, far fewer than MAX_UPLOADS. */
const MAX_PAGES = 60;
const MAX_UPLOADS = 40;

let f: Fixture;
const log = recordingLogger();
let small: Awaited<ReturnType<Fixture['startSmallPair']>>;

beforeAll(async () => {
  f = await startFixture();
  small = await f.startSmallPair('small', MAX_PAGES, log);
});

afterAll(async () => {
  await f?.stop();
});

describe('C1 on a full disk', () => {
  it('refuses the upload that does not fit with RESOURCE_EXHAUSTED, logs SQLITE_FULL once, and keeps the records stored before', async () => {
    let failure: unknown;
    let refused: PlaintextRecord | undefined;
    for (let i = 0; i < MAX_UPLOADS && failure === undefined; i++) {
      const r = { id: `small-${i}`, pixels: randomImage() };
      try {
        await f.ownerUpload(small, [r]);
        remember(small, [r]);
      } catch (e) {
        failure = e;
        refused = r;
      }
    }
    expect(failure, `${MAX_UPLOADS} uploads fitted in ${MAX_PAGES} pages: the disk never filled`).toBeDefined();
    expect(small.collection.length, 'at least two records must fit before the disk is full').toBeGreaterThanOrEqual(2);
    const error = failure as ServiceError;
    expectCode(error, Code.RESOURCE_EXHAUSTED, 'an upload on a full disk');
    expect(error.details, 'the owner is told which disk is full').toBe(`C1's disk is full (database at ${small.dbPath})`);

    const diskFull = log.lines.filter((l) => l.level === 'error' && l.message === 'disk full');
    expect(diskFull.length, 'C1 logs one error line for the full disk').toBe(1);
    expect(diskFull[0].fields, 'the line names SQLITE_FULL and the file').toMatchObject({
      rpc: 'Upload',
      sqlite: 'SQLITE_FULL',
      database: small.dbPath,
    });
    const logged = JSON.stringify(log.lines);
    expect(logged.includes(refused!.id), 'the log must not name the record').toBe(false);

    // Nothing half-stored: the refused record is absent, every other one whole.
    expect(Number((await databaseStatus(small.db)).records), 'C1 holds exactly the records stored before').toBe(small.collection.length);
    expect(small.store.integrityCheck(), "C1's database is intact").toBe('ok');
    await f.expectExactNeighbours(randomImage(D), FNN, 2, 'an fnn query after the disk filled', small);
    await f.expectExactNeighbours(randomImage(D), BF, 1, 'a bf query after the disk filled', small);
  });
});

import { status as Code } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { startC2 } from '@fnn/server-c2';
import {
  COLLECTION_SIZE,
  D,
  databaseStatus,
  expectCode,
  FAST,
  grpcError,
  paperRequest,
  portOf,
  query,
  randomImage,
  useFixture,
  type Fixture,
  FNN,
} from './testing/fixtures';

// C1 while its C2 is down, and after C2 returns on the same port and
// database: queries fail with UNAVAILABLE naming C2, Status keeps answering,
// and the first queries after the restart are exact.

let f: Fixture;

useFixture({}, (started) => (f = started));

// ----- C2 down and back (last: it restarts C2) -----

describe('C1 without C2', () => {
  it('fails a query with UNAVAILABLE naming C2, keeps Status answering, and recovers when C2 returns on the same port', async () => {
    const port = portOf(f.c2.address);
    // Deposited before C2 goes down: the share is lost with C2's memory.
    const fastBeforeRestart = await f.fastRequest(randomImage(D));
    await f.c2.stop();

    // Both wait for C2 for the link's connect timeout: concurrently, so the suite waits once.
    const [error, fastError] = await Promise.all([
      grpcError(query(f.main.db, paperRequest(await f.wireQuery(randomImage(D)))), 'a query while C2 is down'),
      grpcError(query(f.main.db, fastBeforeRestart), 'a FAST query while C2 is down'),
    ]);
    expectCode(error, Code.UNAVAILABLE, 'a query while C2 is down');
    expect(error.details, 'the UNAVAILABLE message must name C2').toMatch(/C2/);
    expectCode(fastError, Code.UNAVAILABLE, 'a FAST query while C2 is down');
    expect(fastError.details, 'the UNAVAILABLE message must name C2').toMatch(/C2/);

    const s = await databaseStatus(f.main.db);
    expect(s.c2Reachable, 'Status must report C2 unreachable while it is down').toBe(false);
    expect(s.records, 'Status must still report the collection while C2 is down').toBe(BigInt(COLLECTION_SIZE));

    f.c2 = await startC2(f.c2Config(`127.0.0.1:${port}`));
    expect(portOf(f.c2.address), 'the new C2 must listen on the same port').toBe(port);
    await f.expectExactNeighbours(randomImage(D), FNN, 1, 'the first query after C2 restarted');
    expect((await f.keyHolderStatus()).replicaRecords, "C2's replica must survive the restart").toBe(BigInt(COLLECTION_SIZE));
    await f.expectExactNeighbours(randomImage(D), FAST, 2, 'a FAST query after C2 restarted');
    const lost = await grpcError(query(f.main.db, fastBeforeRestart), 'a FAST query whose share was deposited before the restart');
    expectCode(lost, Code.NOT_FOUND, 'a share deposited before C2 restarted');
    expect((await databaseStatus(f.main.db)).c2Reachable, 'Status must report C2 reachable again').toBe(true);
  });
});

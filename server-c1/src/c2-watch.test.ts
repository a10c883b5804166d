import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { credentials } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as wire from '@fnn/proto';
import { startC2 } from '@fnn/server-c2';
import {
  generateKeyPair,
  INSECURE,
  localC1Crypto,
  localC2Crypto,
  silentLogger,
  type PublicKey,
  type RunningDaemon,
  type SecretKey,
} from '@fnn/shared';
import { localMultiExp, recordingLogger, rpc, TEST_KEY_BITS } from '@fnn/server-common/testing';
import { startC1 } from './main';
import { RecordStore } from './storage';

// What C1 tells its operator about its C2 at start: one line naming C2's
// address and the problem when C2 is unreachable or holds other keys, C1
// serving all the same, and one line when C2 answers on C1's keys (retried
// in the background). Every wait is on C1's log, none on a clock.

type Pair = { publicKey: PublicKey; secretKey: SecretKey };
let pk2: Pair; // C2's key: C1's records are under it
let pk1: Pair; // C1's own: C2's replica is under it
let other: Pair;
let root: string;
let files = 0;
const running: RunningDaemon[] = [];

/** Quick retries: the test waits for C2's "reachable" line, not for the production backoff. */
const FAST_RETRY = { firstRetryMs: 20, maxRetryMs: 200 };

beforeAll(async () => {
  [pk2, pk1, other] = await Promise.all([generateKeyPair(TEST_KEY_BITS), generateKeyPair(TEST_KEY_BITS), generateKeyPair(TEST_KEY_BITS)]);
  root = mkdtempSync(join(tmpdir(), 'fnn-c2-watch-'));
});

afterAll(async () => {
  await Promise.all(running.splice(0).map((d) => d.stop()));
  if (root) rmSync(root, { recursive: true, force: true });
});

/** A port nothing listens on (it was free a moment ago). */
const deadAddress = () =>
  new Promise<string>((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = (server.address() as AddressInfo) ?? {};
      server.close(() => resolve(`127.0.0.1:${port}`));
    });
  });

async function c2(listen: string, keys: { sk2: SecretKey; pk1: PublicKey }): Promise<RunningDaemon> {
  const d = await startC2({
    listen,
    dbPath: join(root, `c2-${++files}.db`),
    crypto: localC2Crypto(keys.sk2),
    fast: { sk2: keys.sk2, pk1: keys.pk1, multiExp: localMultiExp },
    log: silentLogger,
    transport: INSECURE,
  });
  running.push(d);
  return d;
}

/** C1 on a fresh file, or on `store` (already open at `dbPath`). */
async function c1(c2Address: string, log = recordingLogger(), opened?: { store: RecordStore; dbPath: string }) {
  const d = await startC1({
    listen: '127.0.0.1:0',
    c2Address,
    dbPath: opened?.dbPath ?? join(root, `c1-${++files}.db`),
    store: opened?.store,
    crypto: localC1Crypto(pk2.publicKey),
    fast: { pk2: pk2.publicKey, sk1: pk1.secretKey, multiExp: localMultiExp },
    log,
    transport: INSECURE,
    c2Retry: FAST_RETRY,
  });
  running.push(d);
  return { daemon: d, log };
}

const rightKeys = () => ({ sk2: pk2.secretKey, pk1: pk1.publicKey });
const linesAbout = (log: ReturnType<typeof recordingLogger>, address: string) =>
  log.lines.filter((l) => l.message.startsWith(`C2 at ${address} `));

describe('C1 at start, about its C2', () => {
  it('logs that C2 is unreachable naming its address, serves anyway, and logs once when C2 comes up', async () => {
    const address = await deadAddress();
    const { daemon, log } = await c1(address);
    const warning = await log.line((l) => l.message.startsWith(`C2 at ${address} unreachable`));
    expect(warning.level, 'an unreachable C2 is a warning').toBe('warn');
    expect(warning.fields, 'the line names C2 and the problem').toMatchObject({ c2: address, problem: 'unreachable (UNAVAILABLE)' });

    const db = new wire.DatabaseClient(daemon.address, credentials.createInsecure());
    try {
      const s = await rpc<wire.DatabaseStatus>((m, o, cb) => db.status({}, m, o, cb));
      expect(s.c2Reachable, 'C1 serves, and says C2 is not reachable').toBe(false);
    } finally {
      db.close();
    }

    await c2(address, rightKeys());
    const reachable = await log.line((l) => l.message === `C2 at ${address} reachable`);
    expect(reachable.level, 'C2 found is an info line').toBe('info');
    expect(
      linesAbout(log, address).map((l) => l.level),
      'one warning while C2 was down (retries do not repeat it), then one line when it came up',
    ).toEqual(['warn', 'info']);
  });

  it("logs an error naming both fingerprints when C2 holds another key, or another key of C1's", async () => {
    const otherC2 = await c2('127.0.0.1:0', { sk2: other.secretKey, pk1: pk1.publicKey });
    const otherPk1 = await c2('127.0.0.1:0', { sk2: pk2.secretKey, pk1: other.publicKey });
    const [a, b] = await Promise.all([c1(otherC2.address), c1(otherPk1.address)]);
    const wrongKey = await a.log.line((l) => l.message.startsWith(`C2 at ${otherC2.address} holds`));
    expect(wrongKey.level, 'C2 on another key is an error').toBe('error');
    expect(wrongKey.message).toContain(
      `holds another key (${other.publicKey.fingerprint()}; C1's records are under ${pk2.publicKey.fingerprint()})`,
    );
    const wrongPk1 = await b.log.line((l) => l.message.startsWith(`C2 at ${otherPk1.address} holds`));
    expect(wrongPk1.level, "C2 on another key of C1's is an error").toBe('error');
    expect(wrongPk1.message).toContain(
      `holds another key of C1 (${other.publicKey.fingerprint()}; C1's own is ${pk1.publicKey.fingerprint()})`,
    );
    // Both keep retrying (quietly: the problem has not changed) until they stop.
    await Promise.all([a.daemon.stop(), b.daemon.stop()]);
    running.splice(running.indexOf(a.daemon), 1);
    running.splice(running.indexOf(b.daemon), 1);
    expect(linesAbout(a.log, otherC2.address).length, 'one line for C2 on another key').toBe(1);
    expect(linesAbout(b.log, otherPk1.address).length, "one line for C2 on another key of C1's").toBe(1);
  });

  it("logs an error naming both collection ids when C2's replica belongs to another collection", async () => {
    const otherCollection = await c2('127.0.0.1:0', rightKeys());
    // C2's replica bound to a collection by its first change (an emptied group is the smallest change).
    const replica = new wire.ReplicaClient(otherCollection.address, credentials.createInsecure());
    const theirs = randomBytes(16);
    try {
      await rpc<wire.ReplicaReply>((m, o, cb) =>
        replica.putGroup(
          {
            keyFingerprint: pk2.publicKey.fingerprint(),
            pk1Fingerprint: pk1.publicKey.fingerprint(),
            width: 8,
            height: 8,
            maxValue: 255,
            group: { group: 0, baseVersion: Buffer.alloc(0), version: randomBytes(16), columns: undefined },
            members: [],
            collectionId: theirs,
          },
          m,
          o,
          cb,
        ),
      );
    } finally {
      replica.close();
    }
    // C1's collection, fixed as its first AllocateSlots fixes it.
    const dbPath = join(root, `c1-${++files}.db`);
    const store = new RecordStore(dbPath, pk2.publicKey);
    const ours = store.fixCollectionId();
    const { log } = await c1(otherCollection.address, recordingLogger(), { store, dbPath });
    const line = await log.line((l) => l.message.startsWith(`C2 at ${otherCollection.address} holds`));
    expect(line.level, 'C2 of another collection is an error').toBe('error');
    expect(line.message).toContain(`holds the replica of another collection (${theirs.toString('hex')}; C1's is ${ours.toString('hex')})`);

    // A C1 that has no collection yet takes any C2: its first upload binds it.
    const fresh = await c1(otherCollection.address);
    await fresh.log.line((l) => l.message === `C2 at ${otherCollection.address} reachable`);
  });

  it('logs that C2 is reachable at start when it answers on C1 keys', async () => {
    const right = await c2('127.0.0.1:0', rightKeys());
    const { log } = await c1(right.address);
    await log.line((l) => l.message === `C2 at ${right.address} reachable`);
    expect(
      linesAbout(log, right.address).map((l) => l.level),
      'no warning, one info line',
    ).toEqual(['info']);
  });
});

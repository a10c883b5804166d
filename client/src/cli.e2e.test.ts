import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodePng, encodePng, plaintextNearest, type GroupOutcome, type OwnerLink } from '@fnn/shared';
import { connectC1, connectReplica } from './connect';
import { jsonLines, runCli, startDaemon, type Daemon } from './harness';
import { EXIT } from './output';
import { grpcOwnerLink, openCollectionWriter } from './owner-upload';
import { transportFrom } from './tls-files';

// The whole system as a hospital runs it: the `fnn` binary, both daemons on
// ephemeral localhost ports over mutual TLS (the owner's certificate for every
// command, by FNN_TLS_DIR), small keys and images so it stays quick.

const SIZE = 6;
let work: string;
let keys: string;
let certs: string;
let c1: Daemon;
let c2: Daemon;
const stored: { id: string; pixels: Uint16Array }[] = [];

function writeImage(path: string, pixels: Uint16Array, width = SIZE, height = SIZE) {
  writeFileSync(path, encodePng({ width, height, maxValue: 255, pixels }));
}

const randomPixels = (n = SIZE * SIZE) => Uint16Array.from({ length: n }, () => Math.floor(Math.random() * 256));

const as = (party: string) => ({ FNN_TLS_DIR: join(certs, party) });
/** The owner's credentials, for the harness to wait until a daemon's health says SERVING. */
const readyAs = () => transportFrom({ tlsDir: join(certs, 'owner') }, ['owner']);

/** The owner runs every command unless a test says otherwise. */
async function fnn(...args: string[]) {
  return runCli(args, as('owner'));
}

async function doctor(...args: string[]) {
  return runCli(args, as('doctor'));
}

const conn = () => ['--c1', c1.address, '--c2', c2.address, '--keys', keys];

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'fnn-e2e-'));
  keys = join(work, 'keys');
  certs = join(work, 'certs');
  const gen = await fnn('keygen', '--out', keys, '--bits', '512', '--json');
  expect(gen.code, gen.stderr).toBe(0);
  const issued = await fnn('certs', '--out', certs, '--json');
  expect(issued.code, issued.stderr).toBe(0);
  c2 = await startDaemon('c2', ['--listen', '127.0.0.1:0', '--keys', keys, '--db', join(work, 'c2.db')], as('c2'), readyAs());
  c1 = await startDaemon(
    'c1',
    ['--listen', '127.0.0.1:0', '--keys', keys, '--c2', c2.address, '--db', join(work, 'c1.db')],
    as('c1'),
    readyAs(),
  );
  mkdirSync(join(work, 'images'));
  const base = randomPixels();
  const images = [randomPixels(), base, randomPixels(), Uint16Array.from(base), randomPixels(), randomPixels()];
  images.forEach((pixels, i) => {
    const id = `scan-${i}.png`;
    writeImage(join(work, 'images', id), pixels);
    stored.push({ id, pixels });
  });
});

afterAll(async () => {
  await c1?.stop();
  await c2?.stop();
  rmSync(work, { recursive: true, force: true });
});

describe('fnn keygen', () => {
  it('writes one directory per party, the secret files with mode 0600, and refuses to overwrite keys', async () => {
    expect(statSync(join(keys, 'c2', 'c2-secret.json')).mode & 0o777).toBe(0o600);
    expect(statSync(join(keys, 'owner', 'record.key')).mode & 0o777).toBe(0o600);
    expect(statSync(join(keys, 'c1', 'c1-secret.json')).mode & 0o777).toBe(0o600);
    const again = await fnn('keygen', '--out', keys, '--bits', '512');
    expect(again.code).toBe(EXIT.usage);
    expect(again.stderr).toMatch(/refusing to overwrite/);
  });
});

describe('upload, query, batch query, status', () => {
  it('uploads a directory, one record per file', async () => {
    const run = await fnn('upload', join(work, 'images'), '--c1', c1.address, '--c2', c2.address, '--keys', keys, '--json');
    expect(run.code, run.stderr).toBe(0);
    expect(jsonLines(run.stdout).map((l) => l.status)).toEqual(Array(stored.length).fill('stored'));
  });

  it('status reports both daemons, the records, image size and key size', async () => {
    const run = await fnn('status', '--c1', c1.address, '--c2', c2.address, '--json');
    expect(run.code, run.stderr).toBe(0);
    const [s] = jsonLines(run.stdout) as [
      { c1: Record<string, unknown>; c2: Record<string, unknown>; sameKey: boolean; problems: string[] },
    ];
    expect(s.c1).toMatchObject({ up: true, records: stored.length, width: SIZE, height: SIZE, keyBits: 512, seesC2: true });
    expect(s.c2).toMatchObject({ up: true, keyBits: 512, replicaRecords: stored.length });
    expect(s.sameKey).toBe(true);
    expect(s.problems, 'a healthy deployment has no problem to report').toEqual([]);
  });

  it.each(['fast', 'fnn', 'bf'])(
    'query --protocol %s returns the exact nearest neighbour, its distance and its image',
    async (protocol) => {
      const query = randomPixels();
      writeImage(join(work, `q-${protocol}.png`), query);
      const out = join(work, `out-${protocol}`);
      const run = await doctor('query', join(work, `q-${protocol}.png`), ...conn(), '--protocol', protocol, '--out', out, '--json');
      expect(run.code, run.stderr).toBe(0);
      const [result] = jsonLines(run.stdout) as [
        {
          results: { id: string; distance: string; image: string }[];
          protocol: string;
          total: number;
          levels?: { level: string; groupsVisited: number; groupsPruned: number }[];
        },
      ];
      const [want] = plaintextNearest(stored, query, 1);
      expect(result.protocol).toBe(protocol);
      expect(result.total).toBe(stored.length);
      // The fast protocol reports its cascade's stages (§3.5a); the paper's protocols have none.
      if (protocol === 'fast')
        expect(
          result.levels?.map((l) => l.level),
          'the stages of a fast query',
        ).toEqual(['coarse', 'fine', 'distance']);
      else expect(result.levels, `${protocol} has no cascade`).toBeUndefined();
      expect(result.results[0].id).toBe(want.id);
      expect(result.results[0].distance).toBe(want.distance.toString());
      const written = decodePng(readFileSync(result.results[0].image), 'neighbour');
      expect(Array.from(written.pixels)).toEqual(Array.from(stored[want.index].pixels));
      // The sheet shows the query beside its neighbour, captioned with ID and distances.
      const sheet = readFileSync((result as unknown as { sheet: string }).sheet, 'utf8');
      expect(sheet).toContain(`1. ${want.id}<br>`);
      expect(sheet).toContain(`squared distance ${want.distance}, RMS `);
      expect(sheet.match(/<img src="data:image\/png;base64,/g)?.length).toBe(2);
    },
  );

  it.each(['fast', 'fnn', 'bf'])(
    'query --k 3 --protocol %s ranks ties by upload order, as the plaintext reference does',
    async (protocol) => {
      const query = stored[1].pixels; // stored twice: at 1 and at 3
      writeImage(join(work, 'q-tie.png'), query);
      const run = await fnn('query', join(work, 'q-tie.png'), ...conn(), '--k', '3', '--protocol', protocol, '--json');
      expect(run.code, run.stderr).toBe(0);
      const [result] = jsonLines(run.stdout) as [{ results: { id: string; distance: string }[] }];
      const want = plaintextNearest(stored, query, 3);
      expect(result.results.map((r) => [r.id, r.distance])).toEqual(want.map((w) => [w.id, w.distance.toString()]));
      expect(result.results.slice(0, 2).map((r) => r.id)).toEqual(['scan-1.png', 'scan-3.png']);
    },
  );

  it('logs one request id per query at C1 and at C2 (the same id), and no pixel of the query', async () => {
    const query = randomPixels();
    writeImage(join(work, 'q-logged.png'), query);
    const before = { c1: c1.log().length, c2: c2.log().length };
    const run = await doctor('query', join(work, 'q-logged.png'), ...conn(), '--protocol', 'fast', '--json');
    expect(run.code, run.stderr).toBe(0);
    const lines = (log: string) =>
      log
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as { msg?: string; requestId?: string });
    const c1Lines = lines(c1.log().slice(before.c1));
    const done = c1Lines.find((l) => l.msg === 'query done');
    // C2 closes the session as C1 answers the doctor: its line may follow the reply by a moment.
    const c2Lines = () => lines(c2.log().slice(before.c2));
    for (let waited = 0; waited < 5000 && !c2Lines().some((l) => l.msg === 'session done'); waited += 20)
      await new Promise((resolve) => setTimeout(resolve, 20));
    expect(done?.requestId, `C1 logs the query with its request id: ${JSON.stringify(c1Lines)}`).toMatch(/^[0-9a-f]{16}$/);
    expect(
      c2Lines()
        .filter((l) => l.msg === 'session done')
        .map((l) => l.requestId),
      'C2 logs the protocol session of that query under the same id',
    ).toContain(done!.requestId);
    const pixels = Array.from(query).join(',');
    expect(c1.log() + c2.log(), 'no query pixels in the logs').not.toContain(pixels.slice(0, 40));
  });

  it('batch-query answers every query over one stream, each exactly', async () => {
    const queries = [randomPixels(), randomPixels(), stored[4].pixels];
    const paths = queries.map((q, i) => {
      const p = join(work, `batch-${i}.png`);
      writeImage(p, q);
      return p;
    });
    const run = await doctor('batch-query', ...paths, ...conn(), '--json');
    expect(run.code, run.stderr).toBe(0);
    const results = jsonLines(run.stdout) as { query: string; results: { id: string; distance: string }[] }[];
    const summary = results.pop() as unknown as { summary: Record<string, unknown> };
    expect(summary.summary, 'the last line is the summary').toMatchObject({ answered: 3, total: 3, failures: {} });
    expect(results.map((r) => r.query).sort()).toEqual([...paths].sort());
    for (const r of results) {
      const [want] = plaintextNearest(stored, queries[paths.indexOf(r.query)], 1);
      expect([r.results[0].id, r.results[0].distance], r.query).toEqual([want.id, want.distance.toString()]);
    }
  });

  it('batch-query asks a fast query again while C2 serves a change C1 does not hold yet, and answers exactly once it lands', async () => {
    const owner = transportFrom({ tlsDir: join(certs, 'owner') }, ['owner']);
    const c1Client = connectC1(c1.address, owner);
    const replica = connectReplica(c2.address, owner);
    // The owner's writer with its C1 step held back, and C2 told at once to serve the change (as an owner
    // committing before C1 would): C2 serves the group's new version, C1 the old one. Replacing a record
    // changes its group (a new record might open a group C1 does not list yet).
    const link = grpcOwnerLink(c1Client, replica);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let replicaStored!: () => void;
    const atC2 = new Promise<void>((r) => (replicaStored = r));
    const held: OwnerLink = {
      ...link,
      putReplicaGroup: async (req) => {
        const reply = await link.putReplicaGroup(req);
        const pending = (await link.listReplicaGroups()).groups.find((g) => g.group === req.group!.group)!;
        await link.commitReplicaGroup({ collectionId: req.collectionId, group: pending.group, digest: pending.pendingDigest });
        replicaStored();
        return reply;
      },
      upload: async (req) => {
        await gate;
        return link.upload(req);
      },
    };
    const owned = openCollectionWriter(held, keys, ['packed', 'paper']);
    const replaced = stored.findIndex((r) => r.id === 'scan-5.png');
    const added = { id: stored[replaced].id, pixels: randomPixels() };
    const outcomes: GroupOutcome[] = [];
    try {
      const uploading = owned.writer.upload(
        [{ id: added.id, image: { width: SIZE, height: SIZE, maxValue: 255, pixels: added.pixels } }],
        (o) => outcomes.push(o),
      );
      await atC2;
      const queries = [randomPixels(), added.pixels];
      const paths = queries.map((q, i) => {
        const p = join(work, `retry-${i}.png`);
        writeImage(p, q);
        return p;
      });
      const logBefore = c1.log().length;
      const batch = doctor('batch-query', ...paths, ...conn(), '--json');
      // The first attempt is refused (C1 logs FAILED_PRECONDITION, code 9); then the upload may land.
      const refused = /"rpc":"BatchQuery"[^\n]*"code":9/;
      for (const until = Date.now() + 60_000; !refused.test(c1.log().slice(logBefore)) && Date.now() < until;)
        await new Promise((r) => setTimeout(r, 50));
      expect(c1.log().slice(logBefore), 'C1 refused the batch while the replicas differed').toMatch(refused);
      release();
      await uploading;
      expect(outcomes.map((o) => o.ok && o.replaced.has(added.id))).toEqual([true]);
      stored[replaced] = added;
      const run = await batch;
      expect(run.code, run.stderr).toBe(0);
      const results = jsonLines(run.stdout) as { query: string; results: { id: string; distance: string }[] }[];
      const summary = results.pop() as unknown as { summary: Record<string, unknown> };
      expect(summary.summary).toMatchObject({ answered: 2, total: 2, failures: {} });
      for (const r of results) {
        const [want] = plaintextNearest(stored, queries[paths.indexOf(r.query)], 1);
        expect([r.results[0].id, r.results[0].distance], r.query).toEqual([want.id, want.distance.toString()]);
      }
    } finally {
      release();
      c1Client.close();
      replica.close();
      await owned.close();
    }
  });

  it.each(['fast', 'fnn'])(
    'batch-query --protocol %s answers the good queries and counts a query of another size as INVALID_ARGUMENT',
    async (protocol) => {
      const good = [randomPixels(), randomPixels()].map((pixels, i) => {
        const path = join(work, `mixed-${protocol}-${i}.png`);
        writeImage(path, pixels);
        return { path, pixels };
      });
      // The CLI refuses it before encrypting it: the collection's size comes with its Status.
      const odd = join(work, `mixed-${protocol}-odd.png`);
      writeImage(odd, randomPixels(SIZE * (SIZE + 1)), SIZE, SIZE + 1);
      const run = await fnn('batch-query', good[0].path, odd, good[1].path, ...conn(), '--protocol', protocol, '--json');
      expect(run.code, run.stderr).toBe(EXIT.invalid);
      const lines = jsonLines(run.stdout) as Record<string, unknown>[];
      const answered = lines.filter((l) => Array.isArray(l.results)) as { query: string; results: { id: string }[]; elapsedMs: number }[];
      expect(answered.map((r) => r.query).sort()).toEqual(good.map((g) => g.path).sort());
      for (const r of answered)
        expect(r.results[0].id).toBe(plaintextNearest(stored, good.find((g) => g.path === r.query)!.pixels, 1)[0].id);
      expect(lines.find((l) => l.query === odd)).toMatchObject({
        code: 'INVALID_ARGUMENT',
        error: expect.stringMatching(/odd\.png: 6x7, but the collection's images are 6x6/),
      });
      const { summary } = lines.find((l) => l.summary) as {
        summary: { answered: number; total: number; failures: object; medianMs: number; maxMs: number; elapsedMs: number };
      };
      expect(summary).toMatchObject({ answered: 2, total: 3, failures: { INVALID_ARGUMENT: 1 } });
      const latencies = answered.map((r) => r.elapsedMs).sort((a, b) => a - b);
      expect([summary.medianMs, summary.maxMs]).toEqual([Math.round((latencies[0] + latencies[1]) / 2), latencies[1]]);
      expect(summary.elapsedMs).toBeGreaterThanOrEqual(summary.maxMs);
      expect(lines.at(-1)).toMatchObject({ exitCode: EXIT.invalid, error: '1 of 3 queries failed' });
      // Without --json the summary is one line on stderr.
      const human = await fnn('batch-query', good[0].path, odd, ...conn(), '--protocol', protocol);
      expect(human.code).toBe(EXIT.invalid);
      expect(human.stderr).toMatch(
        /1 of 2 queries answered; failed: INVALID_ARGUMENT 1; latency median [\d.]+ s, max [\d.]+ s; total [\d.]+ s/,
      );
    },
  );

  it('query draws no progress when stderr is not a terminal', async () => {
    const query = join(work, 'q-quiet.png');
    writeImage(query, randomPixels());
    const run = await fnn('query', query, ...conn(), '--protocol', 'fnn');
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toBe('');
    expect(run.stdout).toMatch(/q-quiet\.png: fnn, \d+ records/);
  });
});

describe('bad input', () => {
  it('an image of another size is refused by name before it is encrypted, and nothing is stored', async () => {
    const odd = join(work, 'odd.png');
    writeImage(odd, randomPixels(SIZE * (SIZE + 1)), SIZE, SIZE + 1);
    const run = await fnn('upload', odd, '--c1', c1.address, '--c2', c2.address, '--keys', keys);
    expect(run.code).toBe(EXIT.invalid);
    expect(run.stdout + run.stderr).toMatch(/odd\.png: 6x7, but the collection's images are 6x6/);
    const status = jsonLines((await fnn('status', '--c1', c1.address, '--c2', c2.address, '--json')).stdout)[0] as {
      c1: { records: number };
    };
    expect(status.c1.records).toBe(stored.length);
  });

  it('a file that is not a PNG is refused by name, with a usage exit code', async () => {
    const junk = join(work, 'junk.png');
    writeFileSync(junk, 'not an image');
    const run = await fnn('query', junk, ...conn());
    expect(run.code).toBe(EXIT.usage);
    expect(run.stderr).toMatch(/junk\.png/);
  });

  it('deleting an unknown ID is NOT_FOUND and deletes nothing', async () => {
    const run = await fnn('delete', 'scan-0.png', 'no-such-scan', '--c1', c1.address, '--c2', c2.address, '--keys', keys);
    expect(run.code).toBe(EXIT.notFound);
    // C1 names the unknown record by its place in the request; the CLI names the ID it sent there.
    expect(run.stderr).toBe(
      'fnn: "no-such-scan" is not in the collection, so nothing was deleted (NOT_FOUND). Record IDs are the uploaded file names\n',
    );
    const status = jsonLines((await fnn('status', '--c1', c1.address, '--c2', c2.address, '--json')).stdout)[0] as {
      c1: { records: number };
    };
    expect(status.c1.records).toBe(stored.length);
  });

  it('a missing address is a usage error that names the flag and the variable', async () => {
    const run = await runCli(['status', '--insecure'], { FNN_C1: '', FNN_C2: '' });
    expect(run.code).toBe(EXIT.usage);
    expect(run.stderr).toMatch(/--c1.*FNN_C1/);
  });
});

describe('delete', () => {
  it('removes the record: it is no longer found and the others still are', async () => {
    const run = await fnn('delete', 'scan-5.png', '--c1', c1.address, '--c2', c2.address, '--keys', keys, '--json');
    expect(run.code, run.stderr).toBe(0);
    const removed = stored.pop()!;
    writeImage(join(work, 'q-removed.png'), removed.pixels);
    for (const protocol of ['fast', 'fnn']) {
      const q = await fnn('query', join(work, 'q-removed.png'), ...conn(), '--protocol', protocol, '--json');
      expect(q.code, q.stderr).toBe(0);
      const [result] = jsonLines(q.stdout) as [{ results: { id: string; distance: string }[]; total: number }];
      expect(result.total).toBe(stored.length);
      expect(result.results[0].id).not.toBe(removed.id);
      expect(result.results[0].id).toBe(plaintextNearest(stored, removed.pixels, 1)[0].id);
    }
  });
});

describe('certificates and roles', () => {
  it("fnn certs writes the CA's and each party's private key with mode 0600 and refuses to overwrite", async () => {
    expect(statSync(join(certs, 'ca-key.pem')).mode & 0o777).toBe(0o600);
    for (const party of ['c1', 'c2', 'owner', 'doctor']) expect(statSync(join(certs, party, 'key.pem')).mode & 0o777, party).toBe(0o600);
    const again = await fnn('certs', '--out', certs);
    expect(again.code).toBe(EXIT.usage);
    expect(again.stderr).toMatch(/refusing to overwrite/);
  });

  it("refuses a doctor's upload (PERMISSION_DENIED, exit 6) and stores nothing", async () => {
    const before = jsonLines((await fnn('status', '--c1', c1.address, '--c2', c2.address, '--json')).stdout)[0] as {
      c1: { records: number };
    };
    writeImage(join(work, 'by-doctor.png'), randomPixels());
    const one = await doctor('upload', join(work, 'by-doctor.png'), ...conn());
    expect(one.code, one.stderr).toBe(EXIT.refused);
    expect(one.stderr).toMatch(/PERMISSION_DENIED/);
    const after = jsonLines((await fnn('status', '--c1', c1.address, '--c2', c2.address, '--json')).stdout)[0] as {
      c1: { records: number };
    };
    expect(after.c1.records).toBe(before.c1.records);
  });

  it("a doctor's delete says only the owner may delete (exit 6), and deletes nothing", async () => {
    const run = await doctor('delete', 'scan-0.png', '--c1', c1.address, '--c2', c2.address, '--keys', keys);
    expect(run.code).toBe(EXIT.refused);
    expect(run.stderr).toBe(
      "fnn: only the owner may delete records: the daemons refused this certificate (PERMISSION_DENIED). Use the owner's --tls-dir\n",
    );
    const status = jsonLines((await fnn('status', '--c1', c1.address, '--c2', c2.address, '--json')).stdout)[0] as {
      c1: { records: number };
    };
    expect(status.c1.records).toBe(stored.length);
  });

  it('daemons of another deployment: their certificate is not from your CA (exit 5)', async () => {
    const other = join(work, 'other-certs');
    expect((await fnn('certs', '--out', other)).code).toBe(0);
    const run = await runCli(['status', '--c1', c1.address, '--c2', c2.address], { FNN_TLS_DIR: join(other, 'owner') });
    expect(run.code).toBe(EXIT.unavailable);
    expect(run.stdout).toContain(
      `C1 ${c1.address}: DOWN (UNAVAILABLE: C1's certificate at ${c1.address} is not from your CA (ca.pem of --tls-dir)`,
    );
    expect(run.stdout).toContain(`C2 ${c2.address}: DOWN (UNAVAILABLE: C2's certificate at ${c2.address} is not from your CA`);
  });

  it('--insecure against TLS daemons says to pass --tls-dir instead (exit 5)', async () => {
    const run = await runCli(['status', '--c1', c1.address, '--c2', c2.address, '--insecure']);
    expect(run.code).toBe(EXIT.unavailable);
    expect(run.stdout).toContain(
      `C1 ${c1.address}: DOWN (UNAVAILABLE: C1 at ${c1.address} did not answer in plaintext (--insecure): it probably runs TLS. Pass --tls-dir DIR instead of --insecure)`,
    );
  });

  it('a daemon refuses to start with a TLS private key that others can read', async () => {
    const loose = join(work, 'loose-c2');
    cpSync(join(certs, 'c2'), loose, { recursive: true });
    chmodSync(join(loose, 'key.pem'), 0o644);
    const run = await runCli(['c2', '--listen', '127.0.0.1:0', '--keys', keys, '--db', join(work, 'loose.db'), '--tls-dir', loose]);
    expect(run.code).toBe(EXIT.usage);
    expect(run.stderr).toMatch(/key\.pem has mode 644; a secret key must be 0600/);
  });

  it('a command without a certificate or --insecure says how to connect', async () => {
    const run = await runCli(['status', '--c1', c1.address, '--c2', c2.address]);
    expect(run.code).toBe(EXIT.usage);
    expect(run.stderr).toMatch(/--tls-dir.*--insecure/);
  });
});

describe('fnn status: the link and the replicas', () => {
  /** A port nothing listens on (it was free a moment ago). */
  const deadAddress = () =>
    new Promise<string>((resolve, reject) => {
      const server = createServer();
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const { port } = server.address() as AddressInfo;
        server.close(() => resolve(`127.0.0.1:${port}`));
      });
    });

  it('exits 5 naming the link when C1 cannot reach its C2, though both daemons are up', async () => {
    const nowhere = await deadAddress();
    const lost = await startDaemon(
      'c1',
      ['--listen', '127.0.0.1:0', '--keys', keys, '--c2', nowhere, '--db', join(work, 'c1-lost.db')],
      as('c1'),
      readyAs(),
    );
    try {
      const run = await fnn('status', '--c1', lost.address, '--c2', c2.address);
      expect(run.code, `status must exit ${EXIT.unavailable}: ${run.stderr}`).toBe(EXIT.unavailable);
      expect(run.stdout).toMatch(/C2 NOT reachable from C1/);
      expect(run.stderr).toMatch(/^WARNING: the link from C1 to C2 is down/m);
      // Its empty collection differs from C2's replica too: reported, but the link decides the exit code.
      expect(run.stderr).toMatch(/^WARNING: C1 holds 0 records and C2's replica \d+: the replicas differ/m);
      expect(run.stderr).toMatch(/^fnn: the link from C1 to C2 is down.*\(and 1 more\)$/m);
    } finally {
      await lost.stop();
    }
  });

  it('exits 3 when C1 and C2 hold different numbers of records', async () => {
    // A C1 on a fresh database before the real C2: the replica there holds the collection, this C1 nothing.
    const fresh = await startDaemon(
      'c1',
      ['--listen', '127.0.0.1:0', '--keys', keys, '--c2', c2.address, '--db', join(work, 'c1-fresh.db')],
      as('c1'),
      readyAs(),
    );
    try {
      const run = await fnn('status', '--c1', fresh.address, '--c2', c2.address, '--json');
      expect(run.code, `status must exit ${EXIT.invalid}: ${run.stderr}`).toBe(EXIT.invalid);
      const [s] = jsonLines(run.stdout) as [{ c1: { records: number; seesC2: boolean }; problems: string[] }];
      expect(s.c1).toMatchObject({ records: 0, seesC2: true });
      expect(s.problems).toEqual([
        `C1 holds 0 records and C2's replica ${stored.length}: the replicas differ, the fast protocol refuses until an upload or delete is run again`,
      ]);
      expect(run.stderr).toMatch(/^fnn: C1 holds 0 records and C2's replica \d+: the replicas differ/m);
    } finally {
      await fresh.stop();
    }
  });
});

describe('C2 down', () => {
  it('a query fails with UNAVAILABLE naming C2, C1 keeps serving, and the next query after C2 returns succeeds', async () => {
    const c2Address = c2.address;
    await c2.stop();
    const query = join(work, 'q-down.png');
    writeImage(query, randomPixels());
    const failed = await fnn('query', query, ...conn());
    expect(failed.code).toBe(EXIT.unavailable);
    expect(failed.stderr).toBe(
      `fnn: UNAVAILABLE: C2 at ${c2Address} cannot be reached (connection refused). Is \`fnn c2\` running there?\n`,
    );
    const status = await fnn('status', '--c1', c1.address, '--c2', c2Address, '--json');
    const [s] = jsonLines(status.stdout) as [{ c1: { up: boolean; seesC2: boolean }; c2: { up: boolean } }];
    expect(s.c1).toMatchObject({ up: true, seesC2: false });
    expect(s.c2.up).toBe(false);
    expect(status.code, `status with C2 down must exit ${EXIT.unavailable}: ${status.stderr}`).toBe(EXIT.unavailable);
    expect(status.stderr).toMatch(new RegExp(`^fnn: C2 ${c2Address} is down \\(and 1 more\\)$`, 'm'));
    c2 = await startDaemon('c2', ['--listen', c2Address, '--keys', keys, '--db', join(work, 'c2.db')], as('c2'), readyAs());
    const again = await fnn('query', query, ...conn(), '--json');
    expect(again.code, again.stderr).toBe(0);
    expect(existsSync(join(work, 'c1.db'))).toBe(true);
  });
});

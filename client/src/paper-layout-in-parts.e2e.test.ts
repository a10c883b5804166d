import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodePng, MESSAGE_LIMIT_ENV, plaintextNearest, valuesPerMessage } from '@fnn/shared';
import { jsonLines, runCli, type Daemon } from './harness';
import { status as Code } from '@grpc/grpc-js';
import type * as wire from '@fnn/proto';
import {
  conn,
  connect,
  freshDir,
  grpcError,
  makeKeys,
  randomPixels,
  rpc,
  startC1,
  startC2,
  writeImage,
  type Keys,
} from './testing/deployment';

// The paper's layout through the real daemons and CLI, with every program's
// gRPC message limit lowered so far that neither the upload nor the retrieval
// fits one message. The upload of a group (its records' E(x_1) .. E(x_d) and
// its distance column) goes to C1 in parts (Database.UploadInParts); the
// paper protocols' retrieval (docs/PROTOCOLS.md §2.7) goes in chunks: k = 5
// results of 8x8 at 1024 bits are 5 x 64 x 256 bytes = 80 KiB of E(m + r),
// the limit 48 KiB. fnn and bf must still return exactly the plaintext
// nearest neighbours, their images too. (The same at 256x256 with 2048-bit
// keys, heavy: the manual command in docs/BENCHMARKS.md.)

const W = 8;
const H = 8;
const D = W * H;
const K = 5;
const LIMIT = 48 * 1024;
const env = { [MESSAGE_LIMIT_ENV]: String(LIMIT) };

let work: string;
let keys: Keys;
let c1: Daemon;
let c2: Daemon;
const images = new Map<string, Uint16Array>();

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'fnn-retrieval-chunks-'));
  keys = await makeKeys(join(work, 'keys'), 1024);
  c2 = await startC2(keys, join(work, 'c2.db'), '127.0.0.1:0', env);
  c1 = await startC1(keys, join(work, 'c1.db'), c2.address, '127.0.0.1:0', env);
  // One `fnn upload` of all: each group's upload is far above the lowered limit.
  const dir = freshDir(join(work, 'images'));
  const files = Array.from({ length: 7 }, (_, i) => {
    const pixels = randomPixels(D);
    images.set(`scan-${i}.png`, pixels);
    return writeImage(join(dir, `scan-${i}.png`), pixels, W, H);
  });
  const up = await runCli(['upload', ...files, ...conn(c1, c2, keys), '--json'], env);
  expect(up.code, up.stderr).toBe(0);
});

afterAll(async () => {
  await c1?.stop();
  await c2?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

const logLines = (d: Daemon, rpc: string) =>
  d
    .log()
    .split('\n')
    .filter((l) => l.includes(`"rpc":"${rpc}"`))
    .map((l) => JSON.parse(l) as { parts?: number; msg: string });

describe("the paper's layout in parts below a small message limit", () => {
  it('the daemons hold the lowered limit: a message above it is refused by C1 and by C2', async () => {
    const c = connect(c1.address, c2.address);
    try {
      const big = Buffer.alloc(LIMIT, 1);
      const share = await grpcError(
        rpc<wire.ShareTicket>((m, o, cb) => c.retrieval.putShare({ distance: [big], bound: [], coarse: [] }, m, o, cb)),
        'PutShare',
      );
      expect(Code[share.code], share.details).toBe('RESOURCE_EXHAUSTED');
      const slots = await grpcError(
        rpc<wire.SlotAssignments>((m, o, cb) => c.db.allocateSlots({ lookupTags: [big], width: W, height: H, maxValue: 255 }, m, o, cb)),
        'AllocateSlots',
      );
      expect(Code[slots.code], slots.details).toBe('RESOURCE_EXHAUSTED');
    } finally {
      c.close();
    }
  });

  it('the upload went to C1 in parts, one stream per group, each a head and several parts of values', () => {
    // Above half the limit an upload goes in parts: one record's E(x_1) .. E(x_d) and the group's distance column are.
    expect(2 * D * keys.pk.cipherBytes, 'bytes of the smallest group upload').toBeGreaterThan(LIMIT / 2);
    const inParts = logLines(c1, 'UploadInParts');
    expect(inParts.length, 'the upload in parts').toBeGreaterThanOrEqual(1);
    expect(logLines(c1, 'Upload'), 'no group uploaded in one message').toEqual([]);
    for (const line of inParts) {
      expect(line.msg).toBe('ok');
      expect(line.parts, 'a head and several parts of values').toBeGreaterThan(2);
    }
  });

  it('would not fit one message: the old single RetrievalSubmission of k images is above the limit', () => {
    expect(K * D * keys.pk.cipherBytes, "k results' E(m + r) in bytes").toBeGreaterThan(LIMIT);
    expect(valuesPerMessage(keys.pk.cipherBytes, LIMIT), 'a chunk holds fewer ciphertexts than one query answer').toBeLessThan(K * D);
  });

  it.each(['fnn', 'bf'])('fnn query --protocol %s --k 5 returns exactly the plaintext neighbours and their images', async (protocol) => {
    const query = randomPixels(D);
    const qfile = writeImage(join(work, `query-${protocol}.png`), query, W, H);
    const out = join(work, `out-${protocol}`);
    const run = await runCli(
      ['query', qfile, ...conn(c1, c2, keys), '--protocol', protocol, '--k', String(K), '--out', out, '--json'],
      env,
    );
    expect(run.code, run.stderr).toBe(0);
    const [result] = jsonLines(run.stdout) as { results: { id: string; distance: string; image: string }[] }[];
    const expected = plaintextNearest(
      [...images].map(([id, pixels]) => ({ id, pixels })),
      query,
      K,
    );
    expect(
      result.results.map((r) => [r.id, r.distance]),
      'the plaintext ranking',
    ).toEqual(expected.map((e) => [e.id, String(e.distance)]));
    for (const r of result.results)
      expect(Array.from(decodePng(readFileSync(r.image), r.image).pixels), `${r.id}: the retrieved image`).toEqual(
        Array.from(images.get(r.id)!),
      );
    // C2 took the retrieval in several chunks and gave it back in several parts.
    const retrieve = logLines(c2, 'Retrieve').at(-1);
    expect(retrieve, "C2's log line of the Retrieve").toBeDefined();
    expect(retrieve!.parts, 'Retrieve answered in more than one part').toBeGreaterThan(1);
  });
});

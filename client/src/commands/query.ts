import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Metadata } from '@grpc/grpc-js';
import * as wire from '@fnn/proto';
import {
  encodePng,
  encryptQuery,
  residueFromBytes,
  squaredDistance,
  unblindRetrieved,
  WireCodec,
  type GrayImage,
  type PublicKey,
  type RecordKey,
} from '@fnn/shared';
import { call, checkAddress, connectC1, connectC2 } from '../connect';
import { createCrypto } from '../crypto-workers';
import { expandImagePaths, readImage } from '../image-files';
import { loadPublicKey, loadRecordKey } from '../key-files';
import { CliError, classify, type Output } from '../output';

export interface QueryOptions {
  c1: string;
  c2: string;
  keys: string;
  protocol: string;
  k: string;
  out?: string;
  timeout: string;
}

export interface QueryResult {
  query: string;
  results: { id: string; distance: string; image: string | null }[];
  protocol: string;
  rejected: number;
  total: number;
  elapsedMs: number;
}

const PROTOCOLS: Record<string, wire.Protocol> = { fnn: wire.Protocol.PROTOCOL_FNN, bf: wire.Protocol.PROTOCOL_BF };

/** What every query needs: keys, connections, the encryption pool. */
function prepare(options: QueryOptions) {
  const c1 = checkAddress(options.c1, '--c1', 'FNN_C1');
  const c2 = checkAddress(options.c2, '--c2', 'FNN_C2');
  const protocol = PROTOCOLS[options.protocol];
  if (protocol === undefined) throw new CliError('usage', `--protocol must be one of ${Object.keys(PROTOCOLS).join(', ')}`);
  const k = Number(options.k);
  if (!Number.isInteger(k) || k < 1 || k > 100) throw new CliError('usage', '--k must be an integer from 1 to 100');
  const timeoutMs = Number(options.timeout) * 1000;
  if (!(timeoutMs > 0)) throw new CliError('usage', '--timeout must be a positive number of seconds');
  const publicKey = loadPublicKey(options.keys);
  const recordKey = loadRecordKey(options.keys);
  const crypto = createCrypto(publicKey);
  return {
    protocol,
    k,
    timeoutMs,
    publicKey,
    recordKey,
    crypto,
    codec: new WireCodec(publicKey.cipherBytes),
    c1: connectC1(c1),
    c2: connectC2(c2),
    close: async () => {
      await crypto.close();
    },
  };
}
type Prepared = ReturnType<typeof prepare>;

async function buildRequest(ctx: Prepared, path: string, image: GrayImage): Promise<wire.QueryRequest> {
  const encrypted = await encryptQuery((v) => ctx.crypto.pool.encrypt(v), image.pixels);
  return {
    tag: path,
    query: ctx.codec.queryToWire(encrypted, ctx.publicKey.fingerprint(), image.width, image.height),
    protocol: ctx.protocol,
    k: ctx.k,
  };
}

/** Step 7 at the doctor: fetch m + r from C2, remove r, decrypt the IDs, measure, write PNGs. */
async function complete(
  ctx: Prepared,
  reply: wire.QueryReply,
  image: GrayImage,
  started: number,
  outDir: string | undefined,
): Promise<QueryResult> {
  const retrieved = await call(ctx.c2.retrieve.bind(ctx.c2), { ticket: reply.retrievalTicket }, ctx.timeoutMs);
  if (retrieved.images.length !== reply.results.length)
    throw new CliError('failure', 'C1 and C2 disagree on the number of results');
  const results = reply.results.map((r, rank) => {
    const pixels = unblindRetrieved(
      ctx.publicKey.n,
      retrieved.images[rank].values.map(residueFromBytes),
      r.blinding.map(residueFromBytes),
      65535,
    );
    const id = decryptId(ctx.recordKey, r.encryptedId);
    const neighbour = Uint16Array.from(pixels);
    const distance = squaredDistance(image.pixels, neighbour);
    let written: string | null = null;
    if (outDir) {
      mkdirSync(outDir, { recursive: true });
      const maxValue = neighbour.some((v) => v > 255) ? 65535 : 255;
      written = join(outDir, `${stem(reply.tag)}.nn${rank + 1}.${safeName(id)}.png`);
      writeFileSync(written, encodePng({ width: image.width, height: image.height, maxValue, pixels: neighbour }));
    }
    return { id, distance: distance.toString(), image: written };
  });
  return {
    query: reply.tag,
    results,
    protocol: wire.Protocol[reply.protocol].replace('PROTOCOL_', '').toLowerCase(),
    rejected: Number(reply.rejected),
    total: Number(reply.total),
    elapsedMs: Date.now() - started,
  };
}

function decryptId(recordKey: RecordKey, blob: Uint8Array): string {
  try {
    return recordKey.decryptId(Buffer.from(blob));
  } catch {
    throw new CliError('usage', 'a result identifier does not decrypt: is record.key the owner\'s?');
  }
}

function human(r: QueryResult): string {
  const lines = [`${r.query}: ${r.protocol}, ${r.total} records, ${r.rejected} rejected by the bound, ${(r.elapsedMs / 1000).toFixed(1)} s`];
  r.results.forEach((x, i) => lines.push(`  ${i + 1}. ${x.id}  distance ${x.distance}${x.image ? `  -> ${x.image}` : ''}`));
  return lines.join('\n');
}

export async function query(out: Output, path: string, options: QueryOptions): Promise<void> {
  const ctx = prepare(options);
  try {
    const started = Date.now();
    const image = readImage(path);
    const request = await buildRequest(ctx, path, image);
    const reply = await call(ctx.c1.query.bind(ctx.c1), request, ctx.timeoutMs, randomBytes(8).toString('hex'));
    const result = await complete(ctx, reply, image, started, options.out);
    out.result(result, human(result));
  } finally {
    ctx.c1.close();
    ctx.c2.close();
    await ctx.close();
  }
}

/** Many queries over one bidirectional stream; each result printed as it arrives. */
export async function batchQuery(out: Output, paths: string[], options: QueryOptions): Promise<void> {
  const files = expandImagePaths(paths);
  const ctx = prepare(options);
  const started = Date.now();
  const images = new Map<string, GrayImage>();
  let done = 0;
  let failed = 0;
  try {
    const stream = ctx.c1.batchQuery(new Metadata(), { deadline: new Date(Date.now() + ctx.timeoutMs) });
    const finished = new Promise<void>((resolve, reject) => {
      const pending: Promise<void>[] = [];
      stream.on('data', (reply: wire.QueryReply) => {
        pending.push(
          (async () => {
            const image = images.get(reply.tag);
            if (!image) throw new CliError('failure', 'C1 answered a query that was not asked');
            if (reply.errorCode) throw new CliError('invalid', `${reply.errorCode}: ${reply.errorMessage}`);
            const result = await complete(ctx, reply, image, started, options.out);
            done++;
            out.result(result, human(result));
          })().catch((error) => {
            failed++;
            const { reason } = classify(error);
            out.result({ query: reply.tag, error: reason }, `${reply.tag}: FAILED: ${reason}`);
          }),
        );
      });
      stream.on('error', reject);
      stream.on('end', () => void Promise.all(pending).then(() => resolve()));
    });
    for (const file of files) {
      const image = readImage(file);
      images.set(file, image);
      stream.write(await buildRequest(ctx, file, image));
    }
    stream.end();
    await finished;
    out.note(`${done} of ${files.length} queries answered in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    if (done + failed < files.length) throw new CliError('failure', 'C1 closed the stream before answering every query');
    if (failed > 0) throw new CliError('invalid', `${failed} of ${files.length} queries failed`);
  } finally {
    ctx.c1.close();
    ctx.c2.close();
    await ctx.close();
  }
}

const stem = (path: string) => basename(path, extname(path));
const safeName = (id: string) => id.replace(/[^\w.-]+/g, '_').slice(0, 100);

import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import * as wire from '@fnn/proto';
import {
  encodePng,
  encryptQuery,
  openSealedImage,
  packingParams,
  residueFromBytes,
  residueToBytes,
  shareQuery,
  type PackingParams,
  squaredDistance,
  unblindRetrieved,
  WireCodec,
  type GrayImage,
  type PublicKey,
  type RecordKey,
  type Transport,
} from '@fnn/shared';
import { call, checkAddress, connectC1, connectC2 } from '../connect';
import { createCrypto } from '../crypto-workers';
import { BatchTally, failureCode, humanSummary } from '../batch-summary';
import { batchImages, parseImageOptions, readQueryImage, type ImageFlags } from '../image-files';
import { loadPublicKey, loadRecordKey } from '../key-files';
import { writeSheet } from '../sheet';
import { CliError, classify, type Output } from '../output';
import { queryProgressBar } from '../progress';
import { queryWithProgress } from '../query-stream';

export interface QueryOptions extends ImageFlags {
  c1: string;
  c2: string;
  keys: string;
  protocol: string;
  k: string;
  out?: string;
  timeout: string;
  transport: Transport;
}

export interface QueryResult {
  query: string;
  results: { id: string; distance: string; image: string | null }[];
  /** With --out: the HTML page showing the query beside its neighbours. */
  sheet: string | null;
  protocol: string;
  rejected: number;
  total: number;
  /** C1's lower-bound stage (fnn, fast); absent for bf. */
  lowerBoundMs?: number;
  elapsedMs: number;
}

const PROTOCOLS: Record<string, wire.Protocol> = {
  fast: wire.Protocol.PROTOCOL_FAST,
  fnn: wire.Protocol.PROTOCOL_FNN,
  bf: wire.Protocol.PROTOCOL_BF,
};

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
    c1: connectC1(c1, options.transport),
    c2: connectC2(c2, options.transport),
    /** The collection's packing (fast protocol), fetched once from C1. */
    packing: undefined as PackingParams | undefined,
    close: async () => {
      await crypto.close();
    },
  };
}
type Prepared = ReturnType<typeof prepare>;

async function buildRequest(ctx: Prepared, path: string, image: GrayImage): Promise<wire.QueryRequest> {
  const base = { tag: path, protocol: ctx.protocol, k: ctx.k, fast: undefined };
  if (ctx.protocol === wire.Protocol.PROTOCOL_FAST) return { ...base, ...(await buildFastRequest(ctx, image)) };
  const encrypted = await encryptQuery((v) => ctx.crypto.pool.encrypt(v), image.pixels);
  return { ...base, query: ctx.codec.queryToWire(encrypted, ctx.publicKey.fingerprint(), image.width, image.height) };
}

/**
 * The fast protocol's query: the image split into two additive shares, u for
 * C1 (in the request) and v deposited at C2 (the request names its ticket),
 * plus two constants encrypted under C2's key. Neither share alone says
 * anything about the image (statistical hiding, 40 bits).
 */
async function buildFastRequest(ctx: Prepared, image: GrayImage): Promise<Pick<wire.QueryRequest, 'query' | 'fast'>> {
  if (!ctx.packing) {
    const status = await call(ctx.c1.status.bind(ctx.c1), {}, 30_000);
    if (!status.width) throw new CliError('invalid', 'the collection is empty');
    if (status.keyFingerprint !== ctx.publicKey.fingerprint()) throw new CliError('usage', 'C1 holds records under another key than public-key.json');
    ctx.packing = packingParams(status.keyBits, status.width, status.height, status.maxValue);
  }
  const p = ctx.packing;
  if (image.width !== p.width || image.height !== p.height)
    throw new CliError('invalid', `query is ${image.width}x${image.height}, the collection's images are ${p.width}x${p.height}`);
  const shares = await shareQuery(image.pixels, p, (v) => ctx.crypto.pool.encrypt(v));
  const { ticket } = await call(
    ctx.c2.putShare.bind(ctx.c2),
    { distance: shares.forC2.distance.map(residueToBytes), bound: shares.forC2.bound.map(residueToBytes) },
    30_000,
    undefined,
    'C2',
  );
  return {
    query: { keyFingerprint: ctx.publicKey.fingerprint(), width: image.width, height: image.height, negatedPixels: [], negatedSum: Buffer.alloc(0), negatedSpread: Buffer.alloc(0), spread: Buffer.alloc(0) },
    fast: {
      distanceShare: shares.forC1.shares.distance.map(residueToBytes),
      boundShare: shares.forC1.shares.bound.map(residueToBytes),
      distanceConstant: ctx.codec.cipher(shares.forC1.distanceConstant),
      boundConstant: ctx.codec.cipher(shares.forC1.boundConstant),
      shareTicket: ticket,
    },
  };
}

/** The neighbours' pixels: sealed under k (fast), or m + r from C2 minus C1's r (the paper's step 7). */
async function neighbourImages(ctx: Prepared, reply: wire.QueryReply): Promise<GrayImage[]> {
  if (reply.protocol === wire.Protocol.PROTOCOL_FAST)
    return reply.results.map((r) => {
      try {
        return openSealedImage(ctx.recordKey, r.sealedImage);
      } catch (e) {
        throw new CliError('usage', (e as Error).message);
      }
    });
  const retrieved = await call(ctx.c2.retrieve.bind(ctx.c2), { ticket: reply.retrievalTicket }, ctx.timeoutMs, undefined, 'C2');
  if (retrieved.images.length !== reply.results.length)
    throw new CliError('failure', 'C1 and C2 disagree on the number of results');
  return reply.results.map((r, rank) => {
    const pixels = unblindRetrieved(ctx.publicKey.n, retrieved.images[rank].values.map(residueFromBytes), r.blinding.map(residueFromBytes), 65535);
    return { width: 0, height: 0, maxValue: pixels.some((v) => v > 255) ? 65535 : 255, pixels: Uint16Array.from(pixels) };
  });
}

/** Step 7 at the doctor: fetch m + r from C2, remove r, decrypt the IDs, measure, write PNGs. */
async function complete(
  ctx: Prepared,
  reply: wire.QueryReply,
  image: GrayImage,
  started: number,
  outDir: string | undefined,
): Promise<QueryResult> {
  const images = await neighbourImages(ctx, reply);
  const results = reply.results.map((r, rank) => {
    const id = decryptId(ctx.recordKey, r.encryptedId);
    const neighbour = images[rank].pixels;
    if (neighbour.length !== image.pixels.length) throw new CliError('failure', 'a result image has another size than the query');
    const distance = squaredDistance(image.pixels, neighbour);
    let written: string | null = null;
    if (outDir) {
      mkdirSync(outDir, { recursive: true });
      written = join(outDir, `${stem(reply.tag)}.nn${rank + 1}.${safeName(id)}.png`);
      writeFileSync(written, encodePng({ width: image.width, height: image.height, maxValue: images[rank].maxValue, pixels: neighbour }));
    }
    return { id, distance: distance.toString(), image: written };
  });
  const sheet = outDir
    ? writeSheet(
        outDir,
        stem(reply.tag),
        basename(reply.tag),
        image,
        results.map((r, rank) => ({ id: r.id, distance: r.distance, image: { ...image, maxValue: images[rank].maxValue, pixels: images[rank].pixels } })),
      )
    : null;
  return {
    query: reply.tag,
    results,
    sheet,
    protocol: wire.Protocol[reply.protocol].replace('PROTOCOL_', '').toLowerCase(),
    rejected: Number(reply.rejected),
    total: Number(reply.total),
    ...(reply.protocol === wire.Protocol.PROTOCOL_BF ? {} : { lowerBoundMs: Number(reply.lowerBoundMs) }),
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
  if (r.sheet) lines.push(`  sheet: ${r.sheet}`);
  return lines.join('\n');
}

/** How often a fast query is asked again when C1 or C2 find a group changed under it (waits about 0.25, 0.5, 1, 2, 4 s, jittered so queries that collided do not collide again). */
export const FAST_RETRIES = 5;

/**
 * A fast query compares both replicas' groups (their digests); while an upload
 * or delete is between C2 and C1, or a group changes during the query, it is
 * refused with FAILED_PRECONDITION. That passes once the upload completes, so
 * the query is asked again (a new share each time: the ticket is single-use).
 * Replicas that stay different are still refused after the retries.
 */
async function withFastRetry(ctx: Prepared, ask: () => Promise<wire.QueryReply>): Promise<wire.QueryReply> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await ask();
    } catch (error) {
      if (!askAgain(ctx, (error as Partial<ServiceError>).code === status.FAILED_PRECONDITION, attempt)) throw error;
      await fastRetryPause(attempt);
    }
  }
}

/** A refusal worth asking again: a fast query that found a group changed, with retries left. */
const askAgain = (ctx: Prepared, changed: boolean, attempt: number) =>
  ctx.protocol === wire.Protocol.PROTOCOL_FAST && changed && attempt < FAST_RETRIES;

const fastRetryPause = (attempt: number) => new Promise((r) => setTimeout(r, 250 * 2 ** attempt * (0.5 + Math.random())));

export async function query(out: Output, path: string, options: QueryOptions): Promise<void> {
  const ctx = prepare(options);
  try {
    const started = Date.now();
    const image = await readQueryImage(path, parseImageOptions(options));
    // Only counts come back while C1 searches; drawn on a terminal, never with --json.
    const bar = queryProgressBar(ctx.protocol === wire.Protocol.PROTOCOL_FAST ? 'groups' : 'records', !out.json);
    let reply: wire.QueryReply;
    try {
      reply = await withFastRetry(ctx, async () =>
        queryWithProgress(ctx.c1, await buildRequest(ctx, path, image), ctx.timeoutMs, randomBytes(8).toString('hex'), (p) => bar.show(p)),
      );
    } finally {
      bar.stop();
    }
    const result = await complete(ctx, reply, image, started, options.out);
    out.result(result, human(result));
  } finally {
    ctx.c1.close();
    ctx.c2.close();
    await ctx.close();
  }
}

/**
 * Many queries over one bidirectional stream; each result printed as it
 * arrives, then a summary: answered of total, failures per gRPC code, median
 * and max latency, total time. A query that cannot be read or built fails
 * alone; the others go on. A fast query refused because a group changed under
 * it (an upload between C2 and C1) is asked again on the same stream, as
 * `fnn query` does; the stream ends once every query is settled.
 */
export async function batchQuery(out: Output, paths: string[], options: QueryOptions): Promise<void> {
  const imageOptions = parseImageOptions(options);
  const ctx = prepare(options);
  const started = Date.now();
  const tally = new BatchTally(started);
  const asked = new Map<string, { image: GrayImage; started: number }>();
  const failed = (name: string, code: string, reason: string) => {
    tally.failed(code);
    out.result({ query: name, error: reason, code }, `${name}: FAILED: ${reason}`);
  };
  try {
    const stream = ctx.c1.batchQuery(new Metadata(), { deadline: new Date(Date.now() + ctx.timeoutMs) });
    // Queries asked and not yet settled (answered, or failed for good); the
    // stream is ended when the input is read and none is left.
    let outstanding = 0;
    let inputRead = false;
    const settled = () => {
      if (--outstanding === 0 && inputRead) stream.end();
    };
    const attempts = new Map<string, number>();
    const finished = new Promise<void>((resolve, reject) => {
      const pending: Promise<void>[] = [];
      stream.on('data', (reply: wire.QueryReply) => {
        pending.push(
          (async () => {
            const query = asked.get(reply.tag);
            if (!query) throw new CliError('failure', 'C1 answered a query that was not asked');
            const attempt = attempts.get(reply.tag) ?? 0;
            if (reply.errorCode && askAgain(ctx, reply.errorCode === status[status.FAILED_PRECONDITION], attempt)) {
              attempts.set(reply.tag, attempt + 1);
              await fastRetryPause(attempt);
              try {
                stream.write(await buildRequest(ctx, reply.tag, query.image)); // a new share: tickets are single-use
                return;
              } catch (error) {
                settled();
                return failed(reply.tag, failureCode(error), classify(error).reason);
              }
            }
            settled();
            if (reply.errorCode) return failed(reply.tag, reply.errorCode, `${reply.errorCode}: ${reply.errorMessage}`);
            const result = await complete(ctx, reply, query.image, query.started, options.out);
            tally.answered(result.elapsedMs);
            out.result(result, human(result));
          })().catch((error) => failed(reply.tag, failureCode(error), classify(error).reason)),
        );
      });
      stream.on('error', reject);
      stream.on('end', () => void Promise.all(pending).then(() => resolve()));
    });
    try {
      for await (const query of batchImages(paths, imageOptions)) {
        tally.ask();
        if ('error' in query) {
          failed(query.name, failureCode(query.error), classify(query.error).reason);
          continue;
        }
        const queryStarted = Date.now();
        try {
          const request = await buildRequest(ctx, query.name, query.image);
          asked.set(query.name, { image: query.image, started: queryStarted });
          outstanding++;
          stream.write(request);
        } catch (error) {
          failed(query.name, failureCode(error), classify(error).reason);
        }
      }
    } catch (error) {
      stream.cancel(); // a path that does not exist ends the batch, and the stream with it
      finished.catch(() => {});
      throw error;
    }
    inputRead = true;
    if (outstanding === 0) stream.end();
    await finished;
    const summary = tally.summary(Date.now());
    if (out.json) out.result({ summary }, '');
    else out.note(humanSummary(summary));
    if (summary.answered + tally.failedCount < summary.total) throw new CliError('failure', 'C1 closed the stream before answering every query');
    if (tally.failedCount > 0) throw new CliError('invalid', `${tally.failedCount} of ${summary.total} queries failed`);
  } finally {
    ctx.c1.close();
    ctx.c2.close();
    await ctx.close();
  }
}

/** The file-name stem of a query's outputs: `scan.png` -> scan, `vol.nii.gz#z012` -> vol.z012 (slices must not collide). */
function stem(tag: string): string {
  const name = basename(tag);
  const hash = name.lastIndexOf('#');
  const [file, label] = hash > 0 && !existsSync(tag) ? [name.slice(0, hash), name.slice(hash + 1)] : [name, ''];
  const base = file.replace(/\.nii\.gz$/i, '').replace(/\.[^.]*$/, '') || file;
  return label ? `${base}.${safeName(label)}` : base;
}
const safeName = (id: string) => id.replace(/[^\w.-]+/g, '_').slice(0, 100);

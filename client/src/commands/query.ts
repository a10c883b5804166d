import { writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { Metadata, status } from '@grpc/grpc-js';
import * as wire from '@fnn/proto';
import { encodePng, metadataLine, presentMetadata, type DoctorAnswer, type GrayImage, type RecordMetadata } from '@fnn/shared';
import { openDoctorSession, parseK, parseProtocol, type DoctorSessionOptions } from '../doctor-session';
import { BatchTally, failureCode, humanSummary } from '../batch-summary';
import { batchImages, parseImageOptions, readQueryImage } from '../image-files';
import { writeSheet } from '../sheet';
import { CliError, classify, type Output } from '../output';
import { queryProgressBar } from '../progress';
import { neighbourFileName, prepareOutDir, queryStem } from '../result-files';

export interface QueryOptions extends DoctorSessionOptions {
  protocol: string;
  k: string;
  out?: string;
}

/** One neighbour as printed: `metadata` and `rmsPerPixel` are read by other tools, keep their names. */
export interface QueryResultEntry {
  id: string;
  /** The squared Euclidean distance D, exact (a decimal string: it may pass 2^53 in other units). */
  distance: string;
  /** sqrt(D / d): the root-mean-square difference per pixel, in the collection's units (Hounsfield units for CT). */
  rmsPerPixel: number;
  /** The PNG written with --out. */
  image: string | null;
  /** What the owner sealed with the record, only the fields present ({} for none). */
  metadata: RecordMetadata;
}

export interface QueryResult {
  query: string;
  results: QueryResultEntry[];
  /** With --out: the HTML page showing the query beside its neighbours. */
  sheet: string | null;
  protocol: string;
  rejected: number;
  total: number;
  /** C1's lower-bound stage (fnn, fast); absent for bf. */
  lowerBoundMs?: number;
  /** The fast protocol's stages (coarse, fine, distance; PROTOCOLS.md §3.5a): groups visited and pruned at each, and its time. */
  levels?: DoctorAnswer['levels'];
  elapsedMs: number;
}

/** What every query needs: the doctor's session and a client for the chosen protocol and k. */
function prepare(options: QueryOptions) {
  const protocol = parseProtocol(options.protocol);
  const k = parseK(options.k);
  // Before any key is read or image encrypted: a --out that cannot be written costs nothing.
  const session = openDoctorSession(options);
  try {
    if (options.out !== undefined) prepareOutDir(options.out);
  } catch (error) {
    void session.close();
    throw error;
  }
  return { ...session, doctor: session.doctor(protocol, k) };
}

/** The doctor's answer as the CLI prints it, with the neighbours written as PNG and a sheet under `outDir`. */
function complete(answer: DoctorAnswer, image: GrayImage, started: number, outDir: string | undefined, offset: number): QueryResult {
  const results = answer.neighbours.map((n, rank): QueryResultEntry => {
    let written: string | null = null;
    if (outDir) {
      written = join(outDir, neighbourFileName(answer.tag, rank + 1, n.id));
      writeFileSync(written, encodePng({ width: image.width, height: image.height, maxValue: n.image.maxValue, pixels: n.image.pixels }));
    }
    return {
      id: n.id,
      distance: n.distance.toString(),
      rmsPerPixel: rmsPerPixel(n.distance, image.pixels.length),
      image: written,
      metadata: presentMetadata(n.metadata),
    };
  });
  const sheet = outDir
    ? writeSheet(
        outDir,
        queryStem(answer.tag),
        basename(answer.tag),
        image,
        answer.neighbours.map((n, i) => ({
          id: n.id,
          distance: results[i].distance,
          rmsPerPixel: results[i].rmsPerPixel,
          metadata: results[i].metadata,
          image: { ...image, maxValue: n.image.maxValue, pixels: n.image.pixels },
        })),
        offset,
      )
    : null;
  return {
    query: answer.tag,
    results,
    sheet,
    protocol: answer.protocol,
    rejected: answer.bound?.rejected ?? 0,
    total: answer.total,
    ...(answer.bound ? { lowerBoundMs: answer.bound.ms } : {}),
    ...(answer.levels ? { levels: answer.levels } : {}),
    elapsedMs: Date.now() - started,
  };
}

/**
 * sqrt(D / d): what D says per pixel, in the units the collection's values are
 * in. The offset cancels in every difference, so these are the file's own
 * units (after its rescale): Hounsfield units for CT, gray levels for a PNG.
 */
export function rmsPerPixel(distance: bigint, pixels: number): number {
  return Math.sqrt(Number(distance) / pixels);
}

/** Three significant digits, and no exponent below 10^6. */
const rmsText = (rms: number) => (rms === 0 ? '0' : rms >= 100 ? rms.toFixed(0) : rms.toPrecision(3));

/** The human lines of one answer; a protocol without a bound (bf) says nothing of one. */
export function human(r: QueryResult): string {
  const bound = r.lowerBoundMs === undefined ? '' : `, ${r.rejected} rejected by the bound`;
  const lines = [`${r.query}: ${r.protocol}, ${r.total} records${bound}, ${(r.elapsedMs / 1000).toFixed(1)} s`];
  if (r.levels)
    lines.push(`  stages: ${r.levels.map((l) => `${l.level} ${l.groupsVisited} groups (${l.groupsPruned} pruned)`).join(', ')}`);
  r.results.forEach((x, i) => {
    lines.push(`  ${i + 1}. ${x.id}  distance ${x.distance} (RMS ${rmsText(x.rmsPerPixel)} per pixel)${x.image ? `  -> ${x.image}` : ''}`);
    const about = metadataLine(x.metadata);
    if (about) lines.push(`     ${about}`);
  });
  if (r.sheet) lines.push(`  sheet: ${r.sheet}`);
  return lines.join('\n');
}

export async function query(out: Output, path: string, options: QueryOptions): Promise<void> {
  const ctx = prepare(options);
  try {
    const started = Date.now();
    const imageOptions = await ctx.imageOptions();
    const image = await readQueryImage(path, imageOptions);
    // Only counts come back while C1 searches; drawn on a terminal, never with --json.
    const bar = queryProgressBar(ctx.doctor.protocol.progressUnit, !out.json);
    let answer: DoctorAnswer;
    try {
      answer = await ctx.doctor.query(path, image, (p) => bar.show(p));
    } finally {
      bar.stop();
    }
    const result = complete(answer, image, started, options.out, imageOptions.rule.offset);
    out.result(result, human(result));
  } finally {
    await ctx.close();
  }
}

/** Queries of one batch outstanding at once (asked and not yet settled). */
export const BATCH_WINDOW = 8;

/**
 * Many queries over one bidirectional stream; each result printed as it
 * arrives, then a summary: answered of total, failures per gRPC code, median
 * and max latency, total time. A query that cannot be read or built fails
 * alone; the others go on. A query refused in a way its protocol calls passing
 * (a fast query that found a group changed under it) is asked again on the
 * same stream, as `fnn query` does; the stream ends once every query is settled.
 */
export async function batchQuery(out: Output, paths: string[], options: QueryOptions): Promise<void> {
  parseImageOptions(options); // a malformed flag is reported before anything is connected
  const ctx = prepare(options);
  const started = Date.now();
  const tally = new BatchTally(started);
  const asked = new Map<string, { image: GrayImage; started: number }>();
  const failed = (name: string, code: string, reason: string) => {
    tally.failed(code);
    out.result({ query: name, error: reason, code }, `${name}: FAILED: ${reason}`);
  };
  try {
    const imageOptions = await ctx.imageOptions();
    const stream = ctx.c1.batchQuery(new Metadata(), { deadline: new Date(Date.now() + ctx.timeoutMs) });
    // Queries asked and not yet settled (answered, or failed for good); the
    // stream is ended when the input is read and none is left.
    let outstanding = 0;
    let inputRead = false;
    let slotFreed: (() => void) | undefined;
    const settled = () => {
      outstanding--;
      slotFreed?.();
      if (outstanding === 0 && inputRead) stream.end();
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
            const failure = reply.answer?.$case === 'failure' ? reply.answer.value : undefined;
            if (failure && ctx.doctor.askAgain(status[failure.code as keyof typeof status] as number | undefined, attempt)) {
              attempts.set(reply.tag, attempt + 1);
              await ctx.doctor.pause(attempt);
              try {
                stream.write(await ctx.doctor.request(reply.tag, query.image)); // a new query: a fast share's ticket is single-use
                return;
              } catch (error) {
                settled();
                return failed(reply.tag, failureCode(error), classify(error).reason);
              }
            }
            settled();
            if (failure) return failed(reply.tag, failure.code, `${failure.code}: ${failure.message}`);
            const result = complete(
              await ctx.doctor.open(reply, query.image),
              query.image,
              query.started,
              options.out,
              imageOptions.rule.offset,
            );
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
        // At most BATCH_WINDOW queries outstanding: each one's share waits at C2
        // until C1 reaches it, and C2 bounds what one caller may hold there.
        while (outstanding >= BATCH_WINDOW) await Promise.race([new Promise<void>((r) => (slotFreed = r)), finished]);
        const queryStarted = Date.now();
        try {
          const request = await ctx.doctor.request(query.name, query.image);
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
    if (summary.answered + tally.failedCount < summary.total)
      throw new CliError('failure', 'C1 closed the stream before answering every query');
    if (tally.failedCount > 0) throw new CliError('invalid', `${tally.failedCount} of ${summary.total} queries failed`);
  } finally {
    await ctx.close();
  }
}

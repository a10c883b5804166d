import { fastProtocol, type PlaintextRecord } from '@fnn/shared';
import { jsonLines, runCli } from '../harness';
import { readImage } from '../image-files';
import { squaredDistance } from './scale-collection';
import type { Collection } from './point';
import { peakRss, resetPeakRss, storedBytes, type Stored } from './scale-resources';
import { median, medianStages, stagesOf, type Stage } from './stages';

// One point of `npm run bench:scale`, after its upload: what the daemons
// store and hold, the plaintext floor, and the held-out queries over the
// real CLI and daemons, each answer checked. A wrong answer makes the point an
// error: its times are no measurement of an exact search.

export interface ScaleQuery {
  file: string;
  kind: string;
  ms: number;
  exact: boolean;
  stages: Stage[];
}

export interface ScalePoint {
  size: number;
  n: number;
  /** The images added for this n (`probe` of them first, alone, to measure the rate). */
  upload: { images: number; seconds: number; imagesPerSecond: number; probe: number };
  plaintextMs: number;
  queries: ScaleQuery[];
  /** Median query time; absent when the point failed. */
  medianMs?: number;
  /** Per stage, the medians over the queries. */
  stages: (Stage & { queries: number })[];
  stored: { c1: Stored; c2: Stored };
  bytesPerImage: { c1: number; c2: number };
  /**
   * VmHWM of each daemon, bytes: during this point's upload, and during its
   * queries (the peak is reset before each). `separated` false: /proc would
   * not reset it, so both are the peak since the daemons started.
   */
  peakRss: { upload: { c1: number; c2: number }; query: { c1: number; c2: number }; separated: boolean };
  /** Why the point is not a measurement (a wrong answer, a failed query). */
  error?: string;
}

/**
 * Whether the protocol's nearest neighbour is the plaintext one: the same
 * distance, and the returned ID's own image at that distance (a tie between
 * distinct images may name either).
 */
export function isExactAnswer(
  got: { id: string; distance: string } | undefined,
  want: { distance: bigint },
  distanceOf: (id: string) => bigint | undefined,
): boolean {
  return got !== undefined && got.distance === want.distance.toString() && distanceOf(got.id) === want.distance;
}

export interface QueryFile {
  path: string;
  kind: string;
}

export interface MeasureOptions {
  keys: string;
  queryTimeoutSeconds: number;
  log: (line: string) => void;
}

function distanceIn(stored: readonly PlaintextRecord[], pixels: Uint16Array): (id: string) => bigint | undefined {
  return (id) => {
    const record = stored.find((r) => r.id === id);
    return record ? BigInt(squaredDistance(record.pixels, pixels)) : undefined;
  };
}

/** Everything measured at a point once its records are stored. */
export async function measurePoint(
  collection: Collection,
  n: number,
  upload: ScalePoint['upload'],
  queries: QueryFile[],
  o: MeasureOptions,
): Promise<ScalePoint> {
  const daemons = collection.daemons();
  const pids = { c1: daemons.c1.pid, c2: daemons.c2.pid };
  const uploadRss = { c1: peakRss(pids.c1), c2: peakRss(pids.c2) };
  const separated = resetPeakRss(pids.c1) && resetPeakRss(pids.c2);
  const stored = { c1: storedBytes(daemons.c1.db), c2: storedBytes(daemons.c2.db) };
  const plaintext = collection.plaintext(queries.map((q) => q.path));
  const point: ScalePoint = {
    size: collection.size,
    n,
    upload,
    plaintextMs: plaintext.ms,
    queries: [],
    stages: [],
    stored,
    bytesPerImage: { c1: stored.c1.bytes / n, c2: stored.c2.bytes / n },
    peakRss: { upload: uploadRss, query: { c1: 0, c2: 0 }, separated },
  };
  const conn = ['--c1', daemons.c1.address, '--c2', daemons.c2.address, '--keys', o.keys, '--insecure'];
  for (const [i, q] of queries.entries()) {
    const run = await runCli([
      'query',
      q.path,
      '--protocol',
      fastProtocol.name,
      ...conn,
      '--json',
      '--timeout',
      String(o.queryTimeoutSeconds),
    ]);
    const [reply] = jsonLines(run.stdout);
    if (run.code !== 0 || !reply || reply.error) {
      point.error = `query ${i + 1} failed (exit ${run.code}): ${run.stderr.trim().split('\n').pop() || 'no message'}`;
      break;
    }
    const first = (reply.results as { id: string; distance: string }[] | undefined)?.[0];
    const exact = isExactAnswer(first, plaintext.answers.get(q.path)!, distanceIn(collection.stored, readImage(q.path).pixels));
    let stages: Stage[];
    try {
      stages = stagesOf(reply);
    } catch (error) {
      point.error = `query ${i + 1}: ${(error as Error).message}`;
      break;
    }
    point.queries.push({ file: q.path.split('/').pop()!, kind: q.kind, ms: Number(reply.elapsedMs), exact, stages });
    o.log(
      `  query ${i + 1}/${queries.length} (${q.kind}): ${(Number(reply.elapsedMs) / 1000).toFixed(2)} s, ${exact ? 'exact' : 'NOT EXACT'}`,
    );
    if (!exact) {
      point.error = `query ${i + 1} (${q.kind}): the answer is not the plaintext nearest neighbour`;
      break;
    }
  }
  point.peakRss.query = { c1: peakRss(pids.c1), c2: peakRss(pids.c2) };
  // So that the next point's upload figure is its upload's alone.
  if (separated) point.peakRss.separated = resetPeakRss(pids.c1) && resetPeakRss(pids.c2);
  if (!point.error) {
    point.medianMs = median(point.queries.map((q) => q.ms));
    point.stages = medianStages(point.queries.map((q) => q.stages));
  }
  return point;
}

// A query's time split by stage, read from what `fnn query --json` prints of
// the reply's stats (QueryReply.stats). A list of named stages, so a new level
// of a bound cascade shows up in the report without an edit here:
//
//   stages: [{ name, ms, groups?, records?, rejected?, pruned? }, ...]
//   levels: [{ level, ms, groupsVisited?, recordsVisited?, groupsPruned? }, ...]
//           (SearchStats.levels of a bound cascade, as DoctorAnswer carries it)
//   lowerBoundMs, rejected, total      today's stats (one bound stage)
//
// Whatever the named stages do not account for of the query's time at the
// client (the distance stage, retrieval, the doctor's encryption and
// decryption) is the last stage, "remainder".

export interface Stage {
  name: string;
  ms: number;
  /** Groups the stage looked at, where the stats say it. */
  groups?: number;
  /** Records the stage looked at, where the stats say it. */
  records?: number;
  /** Records the stage ruled out. */
  rejected?: number;
  /** Groups the stage ruled out. */
  pruned?: number;
}

export const REMAINDER = 'remainder';

const COUNTS = ['groups', 'records', 'rejected', 'pruned'] as const;

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0;
const isMs = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0;

function namedStage(raw: unknown, at: number): Stage {
  const entry = raw as Record<string, unknown> | null;
  if (typeof entry !== 'object' || entry === null || typeof entry.name !== 'string' || entry.name === '' || !isMs(entry.ms))
    throw new Error(`stage ${at} of the reply has no name or no time in ms`);
  if (entry.name === REMAINDER) throw new Error(`stage ${at} of the reply is named "${REMAINDER}", which the report keeps for the rest`);
  const stage: Stage = { name: entry.name, ms: entry.ms };
  for (const key of COUNTS) {
    if (entry[key] === undefined) continue;
    if (!isCount(entry[key])) throw new Error(`stage "${entry.name}" of the reply has a ${key} count that is not a whole number`);
    stage[key] = entry[key];
  }
  return stage;
}

/** A level of SearchStats (its own names) as a stage; anything else is left for namedStage to refuse. */
function fromLevel(raw: unknown): unknown {
  if (typeof raw !== 'object' || raw === null) return raw;
  const l = raw as Record<string, unknown>;
  return { name: l.level, ms: l.ms, groups: l.groupsVisited, records: l.recordsVisited, pruned: l.groupsPruned };
}

/**
 * The stages of one query's reply, the remainder last. A reply whose stages
 * take longer than the query itself is refused: a report built on it would
 * show time that was never spent.
 */
export function stagesOf(reply: Record<string, unknown>): Stage[] {
  const elapsed = reply.elapsedMs;
  if (!isMs(elapsed)) throw new Error('the reply has no elapsedMs');
  const total = isCount(reply.total) ? reply.total : undefined;
  const rejected = isCount(reply.rejected) ? reply.rejected : undefined;
  let named: Stage[];
  if (Array.isArray(reply.stages)) named = reply.stages.map(namedStage);
  else if (Array.isArray(reply.levels)) named = reply.levels.map((l, i) => namedStage(fromLevel(l), i));
  else if (isMs(reply.lowerBoundMs)) named = [{ name: 'bound', ms: reply.lowerBoundMs, records: total, rejected }];
  else named = [];
  const names = named.map((s) => s.name);
  const twice = names.find((n, i) => names.indexOf(n) !== i);
  if (twice) throw new Error(`the reply names stage "${twice}" twice`);
  const spent = named.reduce((sum, s) => sum + s.ms, 0);
  if (spent > elapsed) throw new Error(`the reply's stages take ${spent} ms of a ${elapsed} ms query`);
  // With today's stats the remainder holds the distance stage, over the records no bound rejected;
  // where the stats name their stages (a distance level among them), it is only the doctor's side and the result.
  const listed = Array.isArray(reply.stages) || Array.isArray(reply.levels);
  const remaining = listed ? undefined : total !== undefined && rejected !== undefined ? total - rejected : total;
  const remainder: Stage = { name: REMAINDER, ms: elapsed - spent, ...(remaining !== undefined ? { records: remaining } : {}) };
  return [...named.map(dropUndefined), remainder];
}

function dropUndefined(s: Stage): Stage {
  const out: Stage = { name: s.name, ms: s.ms };
  for (const key of COUNTS) if (s[key] !== undefined) out[key] = s[key];
  return out;
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) throw new RangeError('median of nothing');
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/**
 * Per stage, the median over the queries of its time and of each count (each
 * figure its own median, so the stages need not add up to the median query
 * time). Stages in the order they first appear, the remainder last; a stage
 * only some queries reached is the median over those, with `queries` saying
 * how many.
 */
export function medianStages(perQuery: readonly Stage[][]): (Stage & { queries: number })[] {
  const names: string[] = [];
  for (const stages of perQuery) for (const s of stages) if (s.name !== REMAINDER && !names.includes(s.name)) names.push(s.name);
  if (perQuery.some((stages) => stages.some((s) => s.name === REMAINDER))) names.push(REMAINDER);
  return names.map((name) => {
    const found = perQuery.flatMap((stages) => stages.filter((s) => s.name === name));
    const out: Stage & { queries: number } = { name, ms: median(found.map((s) => s.ms)), queries: found.length };
    for (const key of COUNTS) {
      const values = found.flatMap((s) => (s[key] === undefined ? [] : [s[key]]));
      if (values.length) out[key] = median(values);
    }
    return out;
  });
}

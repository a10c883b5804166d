// How far a running query is, for a doctor watching a long one. Only phase
// names and counts: C1 learns them anyway (it does the work and its reply
// reports the records rejected), so sending them earlier reveals nothing new.
// Never a distance, a bound, a candidate number or an ID.

/** In order; a protocol skips the phases it has not (bf only computes distances). */
export const QUERY_PHASES = ['lower-bounds', 'candidates', 'distances'] as const;
export type QueryPhase = (typeof QUERY_PHASES)[number];

export interface QueryProgress {
  phase: QueryPhase;
  /** fnn: records; fast: groups of records. */
  done: number;
  total: number;
  /** Records rejected by the lower bound so far. */
  rejected: number;
}

export type ProgressListener = (progress: QueryProgress) => void;

/**
 * At most one event per `intervalMs`, except that the first event of each
 * phase and a phase's last (done === total) always pass: a protocol may report
 * every record, and a stream of thousands of events would cost more than the
 * query's own messages.
 */
export function throttleProgress(listener: ProgressListener, intervalMs: number, now: () => number = Date.now): ProgressListener {
  let lastPhase: QueryPhase | undefined;
  let lastSent = -Infinity;
  return (progress) => {
    const t = now();
    if (progress.phase !== lastPhase || progress.done >= progress.total || t - lastSent >= intervalMs) {
      lastPhase = progress.phase;
      lastSent = t;
      listener(progress);
    }
  };
}

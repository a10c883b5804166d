/**
 * Runs the tasks given to it at most `max` at a time, in the order given. A
 * finished task hands its place straight to the next waiting one, so a task
 * arriving meanwhile cannot slip past the queue or push the count over `max`.
 */
export function concurrencyLimit(max: number): <T>(task: () => Promise<T>) => Promise<T> {
  if (!Number.isInteger(max) || max < 1) throw new RangeError('a concurrency limit is a positive integer');
  let active = 0;
  const waiting: (() => void)[] = [];
  return async <T>(task: () => Promise<T>): Promise<T> => {
    if (active < max) active++;
    else await new Promise<void>((resolve) => waiting.push(resolve)); // the place is handed over, still counted
    try {
      return await task();
    } finally {
      const next = waiting.shift();
      if (next) next();
      else active--;
    }
  };
}

/** fn over every item, at most `max` at a time; results in the items' order. */
export function mapConcurrent<T, R>(items: readonly T[], max: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const limit = concurrencyLimit(max);
  return Promise.all(items.map((item, i) => limit(() => fn(item, i))));
}

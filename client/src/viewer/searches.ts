import { randomBytes } from 'node:crypto';
import type { QueryProgress } from '@fnn/shared';
import { classify, CliError } from '../output';

// The viewer's searches: each runs in this process (the doctor's keys never
// leave it) and reports to the page over server-sent events. Everything is
// bounded: searches running at once (each holds an encryption batch and a C1
// query), searches waiting, finished results kept (each holds k images), and
// event listeners per search and in all.

export interface SearchLimits {
  running: number;
  waiting: number;
  kept: number;
  listenersPerSearch: number;
  listeners: number;
}

export const SEARCH_LIMITS: SearchLimits = { running: 2, waiting: 16, kept: 32, listenersPerSearch: 4, listeners: 64 };

export type SearchEvent =
  | { type: 'queued'; ahead: number }
  | { type: 'progress'; progress: QueryProgress }
  | { type: 'result'; result: object }
  | { type: 'failure'; error: string; exitCode: number };

type Listener = (event: SearchEvent) => void;

export interface Search<R extends object> {
  id: string;
  state: 'waiting' | 'running' | 'done' | 'failed';
  result?: R;
  /** The last event of each kind that is still news: a listener that comes late gets these first. */
  latest: SearchEvent[];
  listeners: Set<Listener>;
}

export class Searches<R extends object> {
  private readonly all = new Map<string, Search<R>>();
  private readonly queue: { search: Search<R>; run: (onProgress: (p: QueryProgress) => void) => Promise<R> }[] = [];
  private running = 0;
  private listenerCount = 0;
  private closed = false;
  private idle: (() => void) | undefined;

  constructor(private readonly limits: SearchLimits = SEARCH_LIMITS) {}

  /** Queue a search; refused (unavailable: try later) when too many wait or nothing finished can make room. */
  start(run: (onProgress: (p: QueryProgress) => void) => Promise<R>): Search<R> {
    if (this.closed) throw new CliError('unavailable', 'the viewer is shutting down');
    const unfinished = [...this.all.values()].filter((s) => s.state === 'waiting' || s.state === 'running').length;
    if (unfinished >= this.limits.waiting)
      throw new CliError('unavailable', `${unfinished} searches are already under way or waiting; try again when one has finished`);
    this.makeRoom();
    const search: Search<R> = { id: randomBytes(12).toString('hex'), state: 'waiting', latest: [], listeners: new Set() };
    this.all.set(search.id, search);
    this.queue.push({ search, run });
    this.emit(search, { type: 'queued', ahead: this.running + this.queue.length - 1 });
    this.next();
    return search;
  }

  get(id: string): Search<R> | undefined {
    return this.all.get(id);
  }

  /** Listen to a search: what it already said, then what it says; undefined when the bound is reached. */
  listen(search: Search<R>, listener: Listener): (() => void) | undefined {
    if (search.listeners.size >= this.limits.listenersPerSearch || this.listenerCount >= this.limits.listeners) return undefined;
    for (const event of search.latest) listener(event);
    search.listeners.add(listener);
    this.listenerCount++;
    return () => {
      if (search.listeners.delete(listener)) this.listenerCount--;
    };
  }

  /** Refuses new searches and fails the waiting ones at once; resolves when the running ones have settled. */
  async close(): Promise<void> {
    this.closed = true;
    for (const { search } of this.queue.splice(0)) this.fail(search, new CliError('unavailable', 'the viewer is shutting down'));
    if (this.running > 0) await new Promise<void>((resolve) => (this.idle = resolve));
  }

  /** Finished searches are forgotten oldest first once `kept` are held. */
  private makeRoom() {
    for (const [id, s] of this.all) {
      if (this.all.size < this.limits.kept) break;
      if (s.state === 'done' || s.state === 'failed') {
        this.all.delete(id);
        this.listenerCount -= s.listeners.size;
        s.listeners.clear();
      }
    }
    if (this.all.size >= this.limits.kept)
      throw new CliError('unavailable', 'too many searches are under way; try again when one has finished');
  }

  private next() {
    while (this.running < this.limits.running && this.queue.length > 0) {
      const { search, run } = this.queue.shift()!;
      this.running++;
      search.state = 'running';
      this.queue.forEach((q, i) => this.emit(q.search, { type: 'queued', ahead: this.running + i }));
      void run((progress) => this.emit(search, { type: 'progress', progress }))
        .then(
          (result) => {
            search.state = 'done';
            search.result = result;
            this.emit(search, { type: 'result', result });
          },
          (error) => this.fail(search, error),
        )
        .finally(() => {
          this.running--;
          this.next();
          if (this.running === 0) this.idle?.();
        });
    }
  }

  private fail(search: Search<R>, error: unknown) {
    search.state = 'failed';
    const { code, reason } = classify(error);
    this.emit(search, { type: 'failure', error: reason, exitCode: code });
  }

  private emit(search: Search<R>, event: SearchEvent) {
    // Late listeners need only the newest of each kind: one progress line, the outcome.
    search.latest = [...search.latest.filter((e) => e.type !== event.type && (event.type !== 'progress' || e.type !== 'queued')), event];
    for (const l of search.listeners) l(event);
  }
}

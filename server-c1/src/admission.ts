import { status as Code } from '@grpc/grpc-js';
import { invalidInput, resourceExhausted } from '@fnn/shared';

// C1's admission control: every query (Query, QueryWithProgress, each query
// of a BatchQuery) waits here for a place before it runs. A query costs both
// cores for seconds; unlimited, a burst of one doctor's queries shared the
// CPU with another doctor's, which then took 8.6x its time alone (issue 12).
// At most `running` queries run in all and `runningPerCaller` of one caller
// (its verified certificate, `callerOf`); the waiting ones are admitted round
// robin across callers, so a burst waits behind its own caller's slots, not in
// front of another caller's query. Without TLS no caller is known
// (`UNKNOWN_CALLER`): those queries are capped in all only. Waiting is bounded in entries (per caller
// and in all: beyond, RESOURCE_EXHAUSTED) and in time (the call's deadline:
// DEADLINE_EXCEEDED). docs/SECURITY.md states the defaults and the factor.

export interface AdmissionLimits {
  /** Queries running at once, from all callers. */
  running: number;
  /** Queries of one caller running at once. */
  runningPerCaller: number;
  /** Queries waiting for a place, from all callers; the next is refused with RESOURCE_EXHAUSTED. */
  queued: number;
  /** Queries of one caller waiting; its next is refused with RESOURCE_EXHAUSTED. */
  queuedPerCaller: number;
}

/**
 * Four at once keep two cores busy across the rounds with C2 (BATCH_CONCURRENCY
 * is two for one stream); two per caller leave a burst at most half of them. A
 * queue of 16 per caller covers `fnn batch-query`'s window of 8 from a few terminals.
 */
export const DEFAULT_ADMISSION_LIMITS: AdmissionLimits = { running: 4, runningPerCaller: 2, queued: 64, queuedPerCaller: 16 };

/** What the queue holds now, per caller and in all. */
export interface AdmissionState {
  running: number;
  queued: number;
  callers: Map<string, { running: number; queued: number }>;
}

/** A query that left the queue unadmitted: its deadline passed or its caller hung up. Forwarded as DEADLINE_EXCEEDED by toStatus. */
export class AdmissionTimeout extends Error {
  readonly code = Code.DEADLINE_EXCEEDED;
}

export interface AdmitOptions {
  /** When the call's deadline passes (ms since the epoch; Infinity: none). */
  deadline?: number;
  /** Aborted when the caller hangs up. */
  signal?: AbortSignal;
}

interface Waiter {
  admit(): void;
  leave(error: Error): void;
}

/** Whose queries these are when C1 cannot tell (no TLS, no certificate): they are capped in all only, as one caller. */
export const UNKNOWN_CALLER = '';

/** setTimeout's longest delay; a later deadline waits without a timer. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export class AdmissionQueue {
  private total = 0;
  private readonly runningBy = new Map<string, number>();
  /** Callers with waiting queries, in turn order: the next place goes to the first that may run, who then goes last. */
  private readonly waiting = new Map<string, Waiter[]>();
  private queuedCount = 0;
  private readonly listeners = new Set<() => void>();

  constructor(readonly limits: AdmissionLimits = DEFAULT_ADMISSION_LIMITS) {
    for (const [name, value] of Object.entries(limits))
      if (!Number.isInteger(value) || value < 1) throw invalidInput(`admission limit ${name} must be a positive integer, not ${value}`);
  }

  /** `work` once admitted, its place released when it settles. */
  async run<T>(caller: string, work: () => Promise<T>, options: AdmitOptions = {}): Promise<T> {
    await this.admit(caller, options);
    try {
      return await work();
    } finally {
      this.release(caller);
    }
  }

  /** Resolves once `caller` may run a query (call release after it); rejects when the queue is full, or at the deadline. */
  admit(caller: string, { deadline = Infinity, signal }: AdmitOptions = {}): Promise<void> {
    // No one waits while a place is free to them (dispatch admits them): a caller with room runs at once.
    if (this.total < this.limits.running && this.hasRoom(caller)) {
      this.start(caller);
      return Promise.resolve();
    }
    const mine = this.waiting.get(caller)?.length ?? 0;
    if (caller !== UNKNOWN_CALLER && mine >= this.limits.queuedPerCaller)
      return Promise.reject(
        resourceExhausted(`C1 has ${mine} queries of this caller waiting, at most ${this.limits.queuedPerCaller}; try later`),
      );
    if (this.queuedCount >= this.limits.queued)
      return Promise.reject(resourceExhausted(`C1 has ${this.queuedCount} queries waiting, at most ${this.limits.queued}; try later`));
    if (signal?.aborted) return Promise.reject(new AdmissionTimeout('the caller left before its query was admitted'));
    return new Promise<void>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const onAbort = () => waiter.leave(new AdmissionTimeout('the caller left before its query was admitted'));
      const settle = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      const waiter: Waiter = {
        admit: () => {
          settle();
          resolve();
        },
        leave: (error) => {
          settle();
          this.remove(caller, waiter);
          reject(error);
        },
      };
      const delay = deadline - Date.now();
      if (delay <= 0) return reject(new AdmissionTimeout('the deadline passed before the query was admitted'));
      if (delay <= MAX_TIMER_MS)
        timer = setTimeout(
          () =>
            waiter.leave(
              new AdmissionTimeout(
                `no place at C1 before the deadline (${this.total} queries running, at most ${this.limits.running}; ` +
                  `${this.runningOf(caller)} of this caller, at most ${this.limits.runningPerCaller})`,
              ),
            ),
          delay,
        );
      signal?.addEventListener('abort', onAbort);
      const queue = this.waiting.get(caller);
      if (queue) queue.push(waiter);
      else this.waiting.set(caller, [waiter]);
      this.queuedCount++;
      this.changed();
    });
  }

  /** A query of `caller` ended: its place goes to the next caller in turn that may run. */
  release(caller: string): void {
    const n = this.runningOf(caller);
    if (n === 0) throw new Error(`release without admit for a caller`);
    if (n === 1) this.runningBy.delete(caller);
    else this.runningBy.set(caller, n - 1);
    this.total--;
    this.dispatch();
    this.changed();
  }

  state(): AdmissionState {
    const callers = new Map<string, { running: number; queued: number }>();
    for (const [caller, running] of this.runningBy) callers.set(caller, { running, queued: 0 });
    for (const [caller, queue] of this.waiting) callers.set(caller, { running: this.runningOf(caller), queued: queue.length });
    return { running: this.total, queued: this.queuedCount, callers };
  }

  /** Resolves once `holds` is true of the state (checked now and after every change): for tests and status, no polling. */
  until(holds: (state: AdmissionState) => boolean): Promise<void> {
    if (holds(this.state())) return Promise.resolve();
    return new Promise((resolve) => {
      const check = () => {
        if (!holds(this.state())) return;
        this.listeners.delete(check);
        resolve();
      };
      this.listeners.add(check);
    });
  }

  private runningOf(caller: string): number {
    return this.runningBy.get(caller) ?? 0;
  }

  /** Whether one more query of `caller` stays within its per-caller cap (an unknown caller has only the cap in all). */
  private hasRoom(caller: string): boolean {
    return caller === UNKNOWN_CALLER || this.runningOf(caller) < this.limits.runningPerCaller;
  }

  private start(caller: string): void {
    this.total++;
    this.runningBy.set(caller, this.runningOf(caller) + 1);
    this.changed();
  }

  /** Round robin: the first caller in turn with room gets the place and goes to the back of the turn. */
  private dispatch(): void {
    while (this.total < this.limits.running) {
      const next = [...this.waiting.keys()].find((c) => this.hasRoom(c));
      if (next === undefined) return;
      const queue = this.waiting.get(next)!;
      const waiter = queue.shift()!;
      this.waiting.delete(next);
      if (queue.length > 0) this.waiting.set(next, queue);
      this.queuedCount--;
      this.start(next);
      waiter.admit();
    }
  }

  private remove(caller: string, waiter: Waiter): void {
    const queue = this.waiting.get(caller);
    const at = queue?.indexOf(waiter) ?? -1;
    if (!queue || at < 0) return;
    queue.splice(at, 1);
    if (queue.length === 0) this.waiting.delete(caller);
    this.queuedCount--;
    this.changed();
  }

  private changed(): void {
    for (const listener of [...this.listeners]) listener();
  }
}

import { randomBytes } from 'node:crypto';
import { notFound, resourceExhausted } from '../errors';

/** A bound on what a store holds: entries and bytes. */
export interface Bound {
  entries: number;
  bytes: number;
}

/** What a store may hold from one caller, and in all. Without `perCaller` the store is capped in all only. */
export interface TicketLimits {
  perCaller?: Bound;
  total: Bound;
}

export interface TicketStoreOptions<T> {
  /** The bytes a value holds, for the byte bounds; by default the bytes of its bigints. */
  sizeOf?: (value: T) => number;
  limits?: TicketLimits;
  ttlMs?: number;
  now?: () => number;
}

const MiB = 1024 * 1024;

/** Generous for honest use (a 512x512 query share is a few MiB, taken within seconds); docs/SECURITY.md states them. */
export const DEFAULT_TICKET_LIMITS: TicketLimits = {
  perCaller: { entries: 200, bytes: 64 * MiB },
  total: { entries: 1000, bytes: 512 * MiB },
};

/** Whose entries these are when the store does not know the caller (it is then capped in all only). */
const ANYONE = '';

/**
 * V8's heap cost of a bigint: its 64-bit digits plus a 16-byte header. A value
 * is measured by what it really holds, not by how it arrived: a share value
 * sent in 64 bytes that fits one digit costs 24 bytes.
 */
export function bigintBytes(v: bigint): number {
  const magnitude = v < 0n ? -v : v;
  const digits = magnitude === 0n ? 1 : Math.ceil(magnitude.toString(16).length / 16);
  return 16 + 8 * digits;
}

/** The bytes of every bigint in a value made of bigints, arrays and plain objects (a share, a result's images). */
export function bigintContentBytes(value: unknown): number {
  if (typeof value === 'bigint') return bigintBytes(value);
  if (Array.isArray(value)) return value.reduce((sum: number, v) => sum + bigintContentBytes(v), 0);
  if (value !== null && typeof value === 'object') return Object.values(value).reduce((sum: number, v) => sum + bigintContentBytes(v), 0);
  return 0;
}

interface Item<T> {
  value: T;
  expires: number;
  caller: string;
  bytes: number;
}

/**
 * Space held for a value that arrives in parts (a paper retrieval, chunk by
 * chunk): it counts against the bounds from the start, so a value that cannot
 * fit is refused before any part is worked on, and it has no ticket until filled.
 */
export interface Reservation<T> {
  /** The bytes held. */
  readonly bytes: number;
  /** The complete value under a new one-time ticket, in the space held (it must not need more). */
  fill(value: T): string;
  /** Gives the space back: the value will not be completed. Idempotent; a filled reservation is not released. */
  release(): void;
}

/**
 * C2's short-lived holding area: values wait under a random one-time ticket
 * (a result for the doctor, or the doctor's query share for a session) until
 * they are taken or expire. Bounded in entries and bytes, per caller and in
 * all; a full store refuses the newcomer (RESOURCE_EXHAUSTED) and never evicts
 * a held value, so one caller's flood cannot cancel another's pending query.
 */
export class TicketStore<T> {
  private readonly items = new Map<string, Item<T>>();
  private readonly callers = new Map<string, Bound>();
  private held: Bound = { entries: 0, bytes: 0 };
  private readonly sizeOf: (value: T) => number;
  private readonly limits: TicketLimits;
  private readonly ttlMs: number;
  private readonly now: () => number;

  constructor(
    private readonly what: string,
    options: TicketStoreOptions<T> = {},
  ) {
    this.sizeOf = options.sizeOf ?? bigintContentBytes;
    this.limits = options.limits ?? DEFAULT_TICKET_LIMITS;
    this.ttlMs = options.ttlMs ?? 10 * 60_000;
    this.now = options.now ?? Date.now;
  }

  get size(): number {
    this.sweep();
    return this.items.size;
  }

  /** The bytes held in all (by the store's measure). */
  get bytes(): number {
    this.sweep();
    return this.held.bytes;
  }

  /** What one caller holds. */
  heldBy(caller: string): Bound {
    this.sweep();
    return { ...(this.callers.get(caller) ?? { entries: 0, bytes: 0 }) };
  }

  /** Holds `value` for `caller` (the verified certificate's identity; omitted when the store cannot know it). */
  put(value: T, caller: string = ANYONE): string {
    this.sweep();
    const bytes = this.sizeOf(value);
    this.admit(caller, bytes);
    return this.hold(value, caller, bytes);
  }

  /**
   * Holds `bytes` for a value still to come (see Reservation). A reservation
   * does not expire: its owner (a session at C2) releases it when it ends unfilled.
   */
  reserve(bytes: number, caller: string = ANYONE): Reservation<T> {
    if (!Number.isInteger(bytes) || bytes < 0) throw new RangeError('a reservation needs a byte count');
    this.sweep();
    this.admit(caller, bytes);
    this.count(caller, 1, bytes);
    let state: 'held' | 'filled' | 'released' = 'held';
    return {
      bytes,
      fill: (value) => {
        if (state !== 'held') throw new Error(`a ${this.what} reservation is filled twice or after its release`);
        if (this.sizeOf(value) > bytes) throw new Error(`a ${this.what} needs more than the space reserved for it`);
        state = 'filled';
        // The held space passes to the ticket: counted once, released when taken or expired.
        this.count(caller, -1, -bytes);
        return this.hold(value, caller, bytes);
      },
      release: () => {
        if (state !== 'held') return;
        state = 'released';
        this.count(caller, -1, -bytes);
      },
    };
  }

  /** Refuses a newcomer that would exceed a bound; never evicts. */
  private admit(caller: string, bytes: number): void {
    const { perCaller, total } = this.limits;
    // Counts only: how much is held says nothing about any value.
    if (perCaller && caller !== ANYONE) {
      const mine = this.callers.get(caller) ?? { entries: 0, bytes: 0 };
      if (mine.entries + 1 > perCaller.entries || mine.bytes + bytes > perCaller.bytes)
        throw resourceExhausted(
          `C2 already holds ${mine.entries} ${this.what}s (${mine.bytes} bytes) from this caller, at most ${perCaller.entries} (${perCaller.bytes} bytes); use or let them expire and try later`,
        );
    }
    if (this.held.entries + 1 > total.entries || this.held.bytes + bytes > total.bytes)
      throw resourceExhausted(
        `C2 holds ${this.held.entries} ${this.what}s (${this.held.bytes} bytes), at most ${total.entries} (${total.bytes} bytes); try later`,
      );
  }

  private hold(value: T, caller: string, bytes: number): string {
    const ticket = randomBytes(16).toString('hex');
    this.items.set(ticket, { value, expires: this.now() + this.ttlMs, caller, bytes });
    this.count(caller, 1, bytes);
    return ticket;
  }

  /** One use only: the value is gone after this. */
  take(ticket: string): T {
    this.sweep();
    const item = this.items.get(ticket);
    if (!item) throw notFound(`${this.what} unknown, already used or expired; run the query again`);
    this.release(ticket, item);
    return item.value;
  }

  private release(ticket: string, item: Item<T>): void {
    this.items.delete(ticket);
    this.count(item.caller, -1, -item.bytes);
  }

  private count(caller: string, entries: number, bytes: number): void {
    this.held = { entries: this.held.entries + entries, bytes: this.held.bytes + bytes };
    const mine = this.callers.get(caller) ?? { entries: 0, bytes: 0 };
    const next = { entries: mine.entries + entries, bytes: mine.bytes + bytes };
    if (next.entries === 0) this.callers.delete(caller);
    else this.callers.set(caller, next);
  }

  private sweep(): void {
    const t = this.now();
    for (const [ticket, item] of this.items) if (item.expires <= t) this.release(ticket, item);
  }
}

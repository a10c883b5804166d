import { randomBytes } from 'node:crypto';
import { notFound } from '../errors';

/**
 * C2's short-lived holding area: values wait under a random one-time ticket
 * (a result for the doctor, or the doctor's query share for a session) until
 * they are taken or expire. Bounded, so a client that never comes back costs
 * no memory for long.
 */
export class TicketStore<T> {
  private readonly items = new Map<string, { value: T; expires: number }>();

  constructor(
    private readonly what: string,
    private readonly ttlMs = 10 * 60_000,
    private readonly capacity = 1000,
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    this.sweep();
    return this.items.size;
  }

  put(value: T): string {
    this.sweep();
    if (this.items.size >= this.capacity) {
      const oldest = this.items.keys().next().value;
      if (oldest !== undefined) this.items.delete(oldest);
    }
    const ticket = randomBytes(16).toString('hex');
    this.items.set(ticket, { value, expires: this.now() + this.ttlMs });
    return ticket;
  }

  /** One use only: the value is gone after this. */
  take(ticket: string): T {
    this.sweep();
    const item = this.items.get(ticket);
    if (!item) throw notFound(`${this.what} unknown, already used or expired; run the query again`);
    this.items.delete(ticket);
    return item.value;
  }

  private sweep(): void {
    const t = this.now();
    for (const [ticket, item] of this.items) if (item.expires <= t) this.items.delete(ticket);
  }
}

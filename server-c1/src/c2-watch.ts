import { status as Code, type ServiceError } from '@grpc/grpc-js';
import type { Logger, PublicKey } from '@fnn/shared';
import type { C2Link } from './c2-link';

// C1 starts whether or not its C2 answers (queries fail with UNAVAILABLE until
// it does), so this is how an operator learns of a C2 that is down, on other
// keys or holding the replica of another collection: one line at start naming C2's address and the
// problem, one more only if the problem changes, and one when C2 answers on
// C1's keys. Retries back off to a bound: a long outage costs one Status call
// every maxRetryMs, not one every few hundred milliseconds.

export interface C2RetryOptions {
  firstRetryMs: number;
  maxRetryMs: number;
}

export const C2_RETRY: C2RetryOptions = { firstRetryMs: 1000, maxRetryMs: 30_000 };

/** What is wrong with C2 for this C1: unreachable (it may come up), on other keys or of another collection (deployment faults). */
export interface C2Problem {
  kind: 'unreachable' | 'other-keys' | 'other-collection';
  problem: string;
}

/** The keys C1 expects at C2: pk2 (C2's, C1's records are under it) and pk1 (C1's own, C2's replica is under it). */
export interface C1Keys {
  pk2: PublicKey;
  pk1: PublicKey;
}

/**
 * C2's problem for this C1, or undefined when it answers on C1's keys for C1's
 * collection (`collectionId`: C1's, undefined before its first upload; a C2
 * without one is not yet bound). Fingerprints and collection ids are public;
 * nothing else is named.
 */
export async function c2Problem(link: C2Link, keys: C1Keys, collectionId?: Buffer): Promise<C2Problem | undefined> {
  let s;
  try {
    s = await link.keyHolderStatus();
  } catch (error) {
    const code = (error as Partial<ServiceError>).code;
    return { kind: 'unreachable', problem: `unreachable (${typeof code === 'number' ? Code[code] : 'no reply'})` };
  }
  if (s.keyFingerprint !== keys.pk2.fingerprint())
    return {
      kind: 'other-keys',
      problem: `holds another key (${s.keyFingerprint}; C1's records are under ${keys.pk2.fingerprint()})`,
    };
  if (s.pk1Fingerprint !== keys.pk1.fingerprint())
    return {
      kind: 'other-keys',
      problem: `holds another key of C1 (${s.pk1Fingerprint || 'not reported'}; C1's own is ${keys.pk1.fingerprint()})`,
    };
  const theirs = Buffer.from(s.collectionId);
  if (collectionId && theirs.length > 0 && !theirs.equals(collectionId))
    return {
      kind: 'other-collection',
      problem: `holds the replica of another collection (${theirs.toString('hex')}; C1's is ${collectionId.toString('hex')}): fast queries are refused until C2 is this collection's`,
    };
  return undefined;
}

/**
 * Checks C2 now and, while it is unreachable or on other keys, again with
 * backoff until it is right (logged once) or `stop` (C1's shutdown) is called.
 */
export function watchC2(
  link: C2Link,
  keys: C1Keys,
  collectionId: () => Buffer | undefined,
  log: Logger,
  options: C2RetryOptions = C2_RETRY,
): { stop(): void } {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let wake: (() => void) | undefined;
  const run = async () => {
    let logged: string | undefined;
    let wait = options.firstRetryMs;
    for (;;) {
      const found = await c2Problem(link, keys, collectionId());
      if (stopped) return;
      if (!found) return log.info({ c2: link.address, after: logged ?? 'start' }, `C2 at ${link.address} reachable`);
      if (found.problem !== logged) {
        const line = `C2 at ${link.address} ${found.problem}: queries fail until it is fixed; retrying`;
        if (found.kind === 'unreachable') log.warn({ c2: link.address, problem: found.problem }, line);
        else log.error({ c2: link.address, problem: found.problem }, line);
        logged = found.problem;
      }
      await new Promise<void>((resolve) => {
        wake = resolve;
        timer = setTimeout(resolve, wait);
      });
      if (stopped) return;
      wait = Math.min(wait * 2, options.maxRetryMs);
    }
  };
  void run();
  return {
    stop: () => {
      stopped = true;
      clearTimeout(timer);
      wake?.();
    },
  };
}

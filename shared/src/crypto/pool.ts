import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Piscina } from 'piscina';
import type { C1Crypto, C2Crypto } from './backend';
import { fixedWidthCount, type FixedWidthValues } from './codec';
import type { PublicKey, SecretKey } from './paillier';
import type { KeyMaterial, Task } from './worker';

// The daemons' crypto: batches split across worker threads, so both cores
// work and the event loop (health checks, other queries) never waits on a
// modular exponentiation.

/** Below this many values a batch runs in one task: splitting costs more than it saves. */
const MIN_CHUNK = 8;

/** Worker threads, shared by the pools of several keys; destroyed once. */
class Threads {
  readonly piscina: Piscina;
  private closing?: Promise<void>;

  constructor(readonly count: number) {
    this.piscina = new Piscina({ filename: join(__dirname, 'worker.js'), minThreads: count, maxThreads: count });
  }

  close(): Promise<void> {
    return (this.closing ??= this.piscina.destroy());
  }
}

export class CryptoPool {
  private readonly pool: Piscina;
  private readonly key: KeyMaterial;
  private readonly workers: Threads;
  readonly threads: number;

  constructor(
    readonly publicKey: PublicKey,
    secretKey?: SecretKey,
    threads: number | Threads = availableParallelism(),
  ) {
    this.workers = typeof threads === 'number' ? new Threads(Math.max(1, threads)) : threads;
    this.threads = this.workers.count;
    this.pool = this.workers.piscina;
    this.key = {
      id: publicKey.fingerprint(),
      publicKey: publicKey.toJSON(),
      secretKey: secretKey ? secretKey.toJSON() : undefined,
    };
  }

  /** Run one operation over arrays of equal length, split into one chunk per thread. */
  private async split(op: Task['op'], arrays: Record<string, bigint[]>): Promise<bigint[]> {
    const length = Object.values(arrays)[0].length;
    const chunks = Math.max(1, Math.min(this.threads, Math.floor(length / MIN_CHUNK)));
    const size = Math.ceil(length / chunks);
    const parts: Promise<bigint[]>[] = [];
    for (let start = 0; start < length; start += size) {
      const slice: Record<string, bigint[]> = {};
      for (const [name, values] of Object.entries(arrays)) slice[name] = values.slice(start, start + size);
      parts.push(this.pool.run({ op, key: this.key, ...slice }));
    }
    return (await Promise.all(parts)).flat();
  }

  encrypt(values: bigint[]): Promise<bigint[]> {
    return this.split('encrypt', { values });
  }

  /**
   * prod base_i^(e_i) mod m, the terms split across the threads. Each thread
   * gets its own copy of its slice, moved rather than cloned (a clone of a
   * slice would copy the whole column it was cut from).
   */
  async multiExp(bases: FixedWidthValues, exponents: FixedWidthValues, modulus: bigint): Promise<bigint> {
    const count = fixedWidthCount(bases, 'base');
    if (fixedWidthCount(exponents, 'exponent') !== count) throw new RangeError('multiExp needs one exponent per base');
    const chunks = Math.max(1, Math.min(this.threads, Math.floor(count / 64)));
    const size = Math.ceil(count / chunks);
    const slice = (v: FixedWidthValues, start: number) =>
      new Uint8Array(v.bytes.subarray(start * v.width, Math.min(count, start + size) * v.width));
    const parts: Promise<bigint[]>[] = [];
    for (let start = 0; start < count; start += size) {
      const b = slice(bases, start);
      const e = slice(exponents, start);
      const task: Task = {
        op: 'multiExp',
        key: this.key,
        bases: { bytes: b, width: bases.width },
        exponents: { bytes: e, width: exponents.width },
        modulus,
      };
      parts.push(this.pool.run(task, { transferList: [b.buffer, e.buffer] }));
    }
    return (await Promise.all(parts)).reduce((acc, [x]) => (acc * x) % modulus, 1n);
  }

  evaluator(): C1Crypto {
    return {
      publicKey: this.publicKey,
      blind: (values, masks) => this.split('blind', { values, masks }),
      unblindSquares: (h, values, masks) => this.split('unblindSquares', { h, values, masks }),
      unblindProducts: (h, a, b, masksA, masksB) => this.split('unblindProducts', { h, a, b, masksA, masksB }),
    };
  }

  keyHolder(): C2Crypto {
    return {
      publicKey: this.publicKey,
      squareBlinded: (values) => this.split('squareBlinded', { values }),
      multiplyBlinded: (a, b) => this.split('multiplyBlinded', { a, b }),
      decrypt: (values) => this.split('decrypt', { values }),
    };
  }

  /**
   * A pool for another key on the same threads (the owner encrypts under both
   * keys: two pools of their own would put four busy threads on two cores and
   * build every fixed-base table twice as often). close() on either closes both.
   */
  withKey(publicKey: PublicKey, secretKey?: SecretKey): CryptoPool {
    return new CryptoPool(publicKey, secretKey, this.workers);
  }

  close(): Promise<void> {
    return this.workers.close();
  }
}

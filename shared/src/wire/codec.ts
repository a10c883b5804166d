import * as wire from '@fnn/proto';
import { bigintToBytes, bytesToBigint, bytesToCipher, cipherToBytes } from '../crypto/codec';
import { invalidInput } from '../errors';
import type { PackedColumns } from '../protocol/fast/records';
import type { QueryPhase, QueryProgress } from '../protocol/progress';
import type { OwnerRecord } from '../protocol/paper/owner';
import type { EncryptedQuery } from '../protocol/paper/records';
import type { Layout } from '../protocol/module';
import { MAX_OFFSET, type CollectionSettings } from '../image/pixel-rule';

// The one module that turns protocol values into wire messages and back.
// Ciphertexts are fixed-width big-endian bytes (width = the key's cipherBytes).

export class WireCodec {
  constructor(readonly cipherBytes: number) {}

  cipher(c: bigint): Buffer {
    return Buffer.from(cipherToBytes(c, this.cipherBytes));
  }

  ciphers(cs: bigint[]): Buffer[] {
    return cs.map((c) => this.cipher(c));
  }

  /** Bytes from the network: refuse anything that is not exactly one ciphertext wide. */
  fromCipher(bytes: Uint8Array): bigint {
    if (bytes.length !== this.cipherBytes) throw invalidInput(`ciphertext of ${bytes.length} bytes, expected ${this.cipherBytes}`);
    return bytesToCipher(bytes);
  }

  fromCiphers(list: Uint8Array[]): bigint[] {
    return list.map((b) => this.fromCipher(b));
  }

  // ----- the doctor's query -----

  /** The paper's query (§2.5 step 1) as C1 receives it. */
  paperQueryToWire(q: EncryptedQuery): wire.PaperQuery {
    return {
      negatedPixels: this.ciphers(q.negatedPixels),
      negatedSum: this.cipher(q.negatedSum),
      negatedSpread: this.cipher(q.negatedSpread),
      spread: this.cipher(q.spread),
    };
  }

  recordToWire(r: OwnerRecord, sealedImage: Buffer, slot: number): wire.EncryptedRecord {
    return {
      encryptedId: r.encryptedId,
      lookupTag: r.lookupTag,
      pixels: r.paper ? this.ciphers(r.paper.pixels) : [],
      sum: r.paper ? this.cipher(r.paper.sum) : Buffer.alloc(0),
      spread: r.paper ? this.cipher(r.paper.spread) : Buffer.alloc(0),
      sealedImage,
      slot,
    };
  }

  columnsToWire(c: PackedColumns): wire.PackedColumns {
    return {
      distance: this.ciphers(c.distance),
      bound: this.ciphers(c.bound),
      coarse: this.ciphers(c.coarse),
      distanceConstant: c.distanceConstant === undefined ? Buffer.alloc(0) : this.cipher(c.distanceConstant),
      boundConstant: c.boundConstant === undefined ? Buffer.alloc(0) : this.cipher(c.boundConstant),
      coarseConstant: c.coarseConstant === undefined ? Buffer.alloc(0) : this.cipher(c.coarseConstant),
    };
  }

  /** A group's columns from the network; the constants only where `withConstants` (C1's replica). */
  columnsFromWire(c: wire.PackedColumns, withConstants: boolean): PackedColumns {
    return {
      distance: this.fromCiphers(c.distance),
      bound: this.fromCiphers(c.bound),
      coarse: this.fromCiphers(c.coarse),
      distanceConstant: withConstants ? this.fromCipher(c.distanceConstant) : undefined,
      boundConstant: withConstants ? this.fromCipher(c.boundConstant) : undefined,
      coarseConstant: withConstants ? this.fromCipher(c.coarseConstant) : undefined,
    };
  }
}

const LAYOUT_TO_WIRE: Record<Layout, wire.Layout> = { paper: wire.Layout.LAYOUT_PAPER, packed: wire.Layout.LAYOUT_PACKED };

export const layoutsToWire = (layouts: readonly Layout[]): wire.Layout[] => layouts.map((l) => LAYOUT_TO_WIRE[l]);

/** The layouts an upload names, each once and known; refused otherwise. */
export function layoutsFromWire(list: wire.Layout[]): Layout[] {
  const out = list.map((w) => {
    const layout = (Object.keys(LAYOUT_TO_WIRE) as Layout[]).find((l) => LAYOUT_TO_WIRE[l] === w);
    if (!layout) throw invalidInput('unknown record layout');
    return layout;
  });
  if (new Set(out).size !== out.length) throw invalidInput('a record layout named twice');
  return out;
}

const FIT_TO_WIRE: Record<CollectionSettings['fit'], wire.Fit> = { refuse: wire.Fit.FIT_REFUSE, crop: wire.Fit.FIT_CROP };

export const settingsToWire = (s: CollectionSettings): wire.CollectionSettings => ({ offset: s.offset, fit: FIT_TO_WIRE[s.fit] });

/** A collection's settings from the network, refused when out of range or of an unknown fit. */
export function settingsFromWire(s: wire.CollectionSettings): CollectionSettings {
  if (!Number.isSafeInteger(s.offset) || Math.abs(s.offset) > MAX_OFFSET) throw invalidInput(`offset beyond ±${MAX_OFFSET}`);
  const fit = (Object.keys(FIT_TO_WIRE) as CollectionSettings['fit'][]).find((f) => FIT_TO_WIRE[f] === s.fit);
  if (!fit) throw invalidInput('unknown fit rule');
  return { offset: s.offset, fit };
}

/** Values in Z_N that are not ciphertexts (blindings r, and m + r): minimal big-endian bytes. */
export const residueToBytes = (x: bigint): Buffer => Buffer.from(bigintToBytes(x));
export const residueFromBytes = (b: Uint8Array): bigint => bytesToBigint(b);

const PHASE_TO_WIRE: Record<QueryPhase, wire.QueryPhase> = {
  'lower-bounds': wire.QueryPhase.QUERY_PHASE_LOWER_BOUNDS,
  candidates: wire.QueryPhase.QUERY_PHASE_CANDIDATES,
  distances: wire.QueryPhase.QUERY_PHASE_DISTANCES,
};
const PHASE_FROM_WIRE = new Map<wire.QueryPhase, QueryPhase>(Object.entries(PHASE_TO_WIRE).map(([k, v]) => [v, k as QueryPhase]));

export function progressToWire(p: QueryProgress): wire.QueryProgress {
  return { phase: PHASE_TO_WIRE[p.phase], done: BigInt(p.done), total: BigInt(p.total), rejected: BigInt(p.rejected) };
}

export function progressFromWire(p: wire.QueryProgress): QueryProgress {
  const phase = PHASE_FROM_WIRE.get(p.phase);
  if (!phase) throw invalidInput('progress without a known phase');
  return { phase, done: Number(p.done), total: Number(p.total), rejected: Number(p.rejected) };
}

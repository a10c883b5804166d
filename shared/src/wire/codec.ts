import * as wire from '@fnn/proto';
import { bigintToBytes, bytesToBigint, bytesToCipher, cipherToBytes } from '../crypto/codec';
import { invalidInput } from '../errors';
import type { C1Body, C1Message, C2Body, C2Message, Contribution, MaskedScore, Step } from '../protocol/messages';
import type { PackedColumns } from '../protocol/fast/records';
import type { QueryPhase, QueryProgress } from '../protocol/progress';
import type { OwnerRecord } from '../protocol/paper/owner';
import type { EncryptedQuery } from '../protocol/paper/records';
import type { Layout } from '../protocol/module';

// The one module that turns protocol values into wire messages and back.
// Ciphertexts are fixed-width big-endian bytes (width = the key's cipherBytes).

const STEP_TO_WIRE: Record<Step, wire.Step> = {
  open: wire.Step.STEP_OPEN,
  'ssed-sm': wire.Step.STEP_SSED_SM,
  'ssedlb-sm': wire.Step.STEP_SSEDLB_SM,
  'fnn-bounds': wire.Step.STEP_FNN_BOUNDS,
  'fnn-distance': wire.Step.STEP_FNN_DISTANCE,
  'bf-distance': wire.Step.STEP_BF_DISTANCE,
  result: wire.Step.STEP_RESULT,
  retrieval: wire.Step.STEP_RETRIEVAL,
  'fast-open': wire.Step.STEP_FAST_OPEN,
  'fast-bounds': wire.Step.STEP_FAST_BOUNDS,
  'fast-distance': wire.Step.STEP_FAST_DISTANCE,
};
const STEP_FROM_WIRE = new Map<wire.Step, Step>(Object.entries(STEP_TO_WIRE).map(([k, v]) => [v, k as Step]));

function stepFromWire(step: wire.Step): Step {
  const s = STEP_FROM_WIRE.get(step);
  if (!s) throw invalidInput('message without a known step');
  return s;
}

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

  // ----- C1 -> C2 -----

  c1ToWire(m: C1Message): wire.C1Message {
    return { sessionId: m.sessionId, step: STEP_TO_WIRE[m.step], body: this.c1BodyToWire(m.body) };
  }

  private c1BodyToWire(b: C1Body): wire.C1Message['body'] {
    switch (b.kind) {
      case 'open':
        return { $case: 'open', value: { keyFingerprint: b.keyFingerprint, k: b.k, requestId: b.requestId } };
      case 'square':
        return { $case: 'square', value: { values: this.ciphers(b.values) } };
      case 'multiply':
        return { $case: 'multiply', value: { a: this.ciphers(b.a), b: this.ciphers(b.b) } };
      case 'bounds':
        return { $case: 'bounds', value: { seeds: this.scoresToWire(b.seeds), bounds: this.scoresToWire(b.bounds) } };
      case 'distance':
        return { $case: 'distance', value: this.scoreToWire(b.score) };
      case 'finish':
        return { $case: 'finish', value: {} };
      case 'retrieval':
        return { $case: 'retrieval', value: { images: b.images.map((im) => ({ values: this.ciphers(im) })) } };
      case 'fast-open':
        return {
          $case: 'fastOpen',
          value: {
            keyFingerprint: b.keyFingerprint,
            pk1Fingerprint: b.pk1Fingerprint,
            k: b.k,
            requestId: b.requestId,
            shareTicket: b.shareTicket,
            groups: b.groups,
          },
        };
      case 'fast-bounds':
        return { $case: 'fastBounds', value: { items: b.items.map((i) => ({ group: i.group, value: this.cipher(i.value) })) } };
      case 'fast-distance':
        return { $case: 'fastDistance', value: { group: b.group, value: this.cipher(b.value) } };
    }
  }

  c1FromWire(m: wire.C1Message): C1Message {
    const body = m.body;
    if (!body) throw invalidInput('message without a body');
    const step = stepFromWire(m.step);
    let out: C1Body;
    switch (body.$case) {
      case 'open':
        out = { kind: 'open', keyFingerprint: body.value.keyFingerprint, k: body.value.k, requestId: body.value.requestId };
        break;
      case 'square':
        out = { kind: 'square', values: this.fromCiphers(body.value.values) };
        break;
      case 'multiply':
        out = { kind: 'multiply', a: this.fromCiphers(body.value.a), b: this.fromCiphers(body.value.b) };
        break;
      case 'bounds':
        out = { kind: 'bounds', seeds: this.scoresFromWire(body.value.seeds), bounds: this.scoresFromWire(body.value.bounds) };
        break;
      case 'distance':
        out = { kind: 'distance', score: this.scoreFromWire(body.value) };
        break;
      case 'finish':
        out = { kind: 'finish' };
        break;
      case 'retrieval':
        out = { kind: 'retrieval', images: body.value.images.map((im) => this.fromCiphers(im.values)) };
        break;
      case 'fastOpen':
        out = {
          kind: 'fast-open',
          ...body.value,
          groups: body.value.groups.map((g) => ({ group: g.group, members: g.members, digest: g.digest })),
        };
        break;
      case 'fastBounds':
        out = { kind: 'fast-bounds', items: body.value.items.map((i) => ({ group: i.group, value: this.fromCipher(i.value) })) };
        break;
      case 'fastDistance':
        out = { kind: 'fast-distance', group: body.value.group, value: this.fromCipher(body.value.value) };
        break;
    }
    return { sessionId: m.sessionId, step, body: out };
  }

  // ----- C2 -> C1 -----

  c2ToWire(m: C2Message): wire.C2Message {
    return { sessionId: m.sessionId, step: STEP_TO_WIRE[m.step], body: this.c2BodyToWire(m.body) };
  }

  private c2BodyToWire(b: C2Body): wire.C2Message['body'] {
    switch (b.kind) {
      case 'opened':
        return { $case: 'opened', value: {} };
      case 'products':
        return { $case: 'products', value: { values: this.ciphers(b.values) } };
      case 'next':
        return { $case: 'next', value: { done: b.done, candidate: b.candidate, rejected: BigInt(b.rejected) } };
      case 'ranking':
        return { $case: 'ranking', value: { candidates: b.candidates } };
      case 'ticket':
        return { $case: 'ticket', value: { ticket: b.ticket } };
      case 'fast-contributions':
        return { $case: 'contributions', value: { items: b.items.map((c) => this.contributionToWire(c)) } };
      case 'fast-next':
        return {
          $case: 'fastNext',
          value: {
            done: b.done,
            contribution: b.contribution ? this.contributionToWire(b.contribution) : undefined,
            rejected: BigInt(b.rejected),
          },
        };
    }
  }

  c2FromWire(m: wire.C2Message): C2Message {
    const body = m.body;
    if (!body) throw invalidInput('reply without a body');
    const step = stepFromWire(m.step);
    let out: C2Body;
    switch (body.$case) {
      case 'opened':
        out = { kind: 'opened' };
        break;
      case 'products':
        out = { kind: 'products', values: this.fromCiphers(body.value.values) };
        break;
      case 'next':
        out = { kind: 'next', done: body.value.done, candidate: body.value.candidate, rejected: Number(body.value.rejected) };
        break;
      case 'ranking':
        out = { kind: 'ranking', candidates: body.value.candidates };
        break;
      case 'ticket':
        out = { kind: 'ticket', ticket: body.value.ticket };
        break;
      case 'contributions':
        out = { kind: 'fast-contributions', items: body.value.items.map((c) => this.contributionFromWire(c)) };
        break;
      case 'fastNext':
        out = {
          kind: 'fast-next',
          done: body.value.done,
          contribution: body.value.contribution ? this.contributionFromWire(body.value.contribution) : undefined,
          rejected: Number(body.value.rejected),
        };
        break;
    }
    return { sessionId: m.sessionId, step, body: out };
  }

  private contributionToWire(c: Contribution): wire.Contribution {
    return { group: c.group, masked: this.cipher(c.masked), negatedMask: this.cipher(c.negatedMask) };
  }

  private contributionFromWire(c: wire.Contribution): Contribution {
    return { group: c.group, masked: this.fromCipher(c.masked), negatedMask: this.fromCipher(c.negatedMask) };
  }

  private scoreToWire(s: MaskedScore): wire.MaskedScore {
    return { candidate: s.candidate, value: this.cipher(s.value) };
  }

  private scoresToWire(list: MaskedScore[]): wire.MaskedScore[] {
    return list.map((s) => this.scoreToWire(s));
  }

  private scoreFromWire(s: wire.MaskedScore): MaskedScore {
    return { candidate: s.candidate, value: this.fromCipher(s.value) };
  }

  private scoresFromWire(list: wire.MaskedScore[]): MaskedScore[] {
    return list.map((s) => this.scoreFromWire(s));
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
      distanceConstant: c.distanceConstant === undefined ? Buffer.alloc(0) : this.cipher(c.distanceConstant),
      boundConstant: c.boundConstant === undefined ? Buffer.alloc(0) : this.cipher(c.boundConstant),
    };
  }

  /** A group's columns from the network; the constants only where `withConstants` (C1's replica). */
  columnsFromWire(c: wire.PackedColumns, withConstants: boolean): PackedColumns {
    return {
      distance: this.fromCiphers(c.distance),
      bound: this.fromCiphers(c.bound),
      distanceConstant: withConstants ? this.fromCipher(c.distanceConstant) : undefined,
      boundConstant: withConstants ? this.fromCipher(c.boundConstant) : undefined,
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

// The paper's session messages (fnn and bf share them; docs/PROTOCOLS.md
// §2.2-§2.7) as TypeScript values, ciphertexts as bigints; paper/wire.ts
// converts them to and from PaperC1Message and PaperC2Message.

/** The paper's steps (every paper message names the one it belongs to, for state checks and logs). */
export type PaperStep =
  | 'open'
  | 'ssed-sm' // SM rounds of SSED
  | 'ssedlb-sm' // SM rounds of SSEDLB (Algorithm 2)
  | 'fnn-bounds' // Algorithm 3 step 4
  | 'fnn-distance' // Algorithm 3 step 5
  | 'bf-distance' // the brute-force baseline
  | 'result' // Algorithm 3 step 6
  | 'retrieval'; // Algorithm 3 step 7

/** A masked value alpha * v + beta, and the record's position in C1's candidate list. */
export interface MaskedScore {
  candidate: number;
  value: bigint;
}

export type PaperC1Body =
  | { kind: 'open'; keyFingerprint: string; k: number; requestId: string }
  | { kind: 'square'; values: bigint[] }
  | { kind: 'multiply'; a: bigint[]; b: bigint[] }
  | { kind: 'bounds'; seeds: MaskedScore[]; bounds: MaskedScore[] }
  | { kind: 'distance'; score: MaskedScore }
  | { kind: 'finish' }
  // Step 7 in chunks (§2.7): the size first, then E(m + r) of all results, concatenated nearest first.
  | { kind: 'retrieval-open'; images: number; pixels: number; chunkValues: number }
  | { kind: 'retrieval-chunk'; index: number; values: bigint[] };

export type PaperC2Body =
  | { kind: 'opened' }
  | { kind: 'products'; values: bigint[] }
  | { kind: 'next'; done: boolean; candidate: number; rejected: number }
  | { kind: 'ranking'; candidates: number[] }
  | { kind: 'accepted'; next: number; chunks: number }
  | { kind: 'ticket'; ticket: string };

/** The paper's family of sessions, joined into the transports' union by ../messages.ts. */
export interface PaperMessages {
  paper: { c1: { step: PaperStep; body: PaperC1Body }; c2: { step: PaperStep; body: PaperC2Body } };
}

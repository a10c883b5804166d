// The C1 <-> C2 conversation as plain TypeScript values (ciphertexts as
// bigints). The gRPC layer converts these to and from proto/ messages in one
// codec; the in-process transport passes them as they are.
//
// Every message carries its session id and the paper's step it belongs to.

export type Step =
  | 'open'
  | 'ssed-sm' // SM rounds of SSED
  | 'ssedlb-sm' // SM rounds of SSEDLB (Algorithm 2)
  | 'fnn-bounds' // Algorithm 3 step 4
  | 'fnn-distance' // Algorithm 3 step 5
  | 'bf-distance' // the brute-force baseline
  | 'result' // Algorithm 3 step 6
  | 'retrieval' // Algorithm 3 step 7
  | 'fast-open' // fast: session, groups, C2's bound contributions
  | 'fast-bounds' // fast: packed masked bounds of every group
  | 'fast-distance'; // fast: packed masked distances of one group

/** A masked value alpha * v + beta, and the record's position in C1's candidate list. */
export interface MaskedScore {
  candidate: number;
  value: bigint;
}

/** A group of the fast protocol: candidate per slot (-1: free) and a digest of its members. */
export interface GroupLayout {
  group: number;
  members: number[];
  digest: string;
}

/** C2's half of a packed inner product for one group: E1(pack(B + t)) and E2(-pack(t)). */
export interface Contribution {
  group: number;
  masked: bigint;
  negatedMask: bigint;
}

export type C1Body =
  | { kind: 'open'; keyFingerprint: string; k: number; requestId: string }
  | { kind: 'square'; values: bigint[] }
  | { kind: 'multiply'; a: bigint[]; b: bigint[] }
  | { kind: 'bounds'; seeds: MaskedScore[]; bounds: MaskedScore[] }
  | { kind: 'distance'; score: MaskedScore }
  | { kind: 'finish' }
  | { kind: 'retrieval'; images: bigint[][] }
  | {
      kind: 'fast-open';
      keyFingerprint: string;
      pk1Fingerprint: string;
      k: number;
      requestId: string;
      shareTicket: string;
      groups: GroupLayout[];
    }
  | { kind: 'fast-bounds'; items: { group: number; value: bigint }[] }
  | { kind: 'fast-distance'; group: number; value: bigint };

export type C2Body =
  | { kind: 'opened' }
  | { kind: 'products'; values: bigint[] }
  | { kind: 'next'; done: boolean; candidate: number; rejected: number }
  | { kind: 'ranking'; candidates: number[] }
  | { kind: 'ticket'; ticket: string }
  | { kind: 'fast-contributions'; items: Contribution[] }
  | { kind: 'fast-next'; done: boolean; contribution?: Contribution; rejected: number };

export interface C1Message {
  sessionId: string;
  step: Step;
  body: C1Body;
}

export interface C2Message {
  sessionId: string;
  step: Step;
  body: C2Body;
}

/**
 * How C1 reaches C2 for one session: each message gets exactly one reply, in
 * order. Implemented in-process (tests) and over a gRPC bidirectional stream.
 */
export interface SessionTransport {
  exchange(message: C1Message): Promise<C2Message>;
  close(): void;
}

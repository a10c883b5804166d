// The C1 <-> C2 conversation as plain TypeScript values (ciphertexts as
// bigints). Each session belongs to one family of protocols (the case of
// C1Message.protocol on the wire): the paper's fnn and bf share 'paper', the
// fast protocol has 'fast'. Each family's messages, and their conversion to
// and from the wire (its wire.ts), live in its folder; this file joins them
// into the one union the transports carry. The in-process transport passes
// these values as they are.

/** A session's family: the case of C1Message.protocol and C2Message.protocol on the wire. */
export type SessionFamily = 'paper' | 'fast';

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

export type PaperC1Body =
  | { kind: 'open'; keyFingerprint: string; k: number; requestId: string }
  | { kind: 'square'; values: bigint[] }
  | { kind: 'multiply'; a: bigint[]; b: bigint[] }
  | { kind: 'bounds'; seeds: MaskedScore[]; bounds: MaskedScore[] }
  | { kind: 'distance'; score: MaskedScore }
  | { kind: 'finish' }
  | { kind: 'retrieval'; images: bigint[][] };

export type PaperC2Body =
  | { kind: 'opened' }
  | { kind: 'products'; values: bigint[] }
  | { kind: 'next'; done: boolean; candidate: number; rejected: number }
  | { kind: 'ranking'; candidates: number[] }
  | { kind: 'ticket'; ticket: string };

export type FastC1Body =
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
  | { kind: 'fast-distance'; group: number; value: bigint }
  | { kind: 'finish' };

export type FastC2Body =
  | { kind: 'fast-contributions'; items: Contribution[] }
  | { kind: 'fast-next'; done: boolean; contribution?: Contribution; rejected: number }
  | { kind: 'ranking'; candidates: number[] };

export type C1Message =
  { sessionId: string; family: 'paper'; step: PaperStep; body: PaperC1Body } | { sessionId: string; family: 'fast'; body: FastC1Body };

export type C2Message =
  { sessionId: string; family: 'paper'; step: PaperStep; body: PaperC2Body } | { sessionId: string; family: 'fast'; body: FastC2Body };

/** A message's body, whatever its family. */
export type C1Body = C1Message['body'];
export type C2Body = C2Message['body'];

/**
 * How C1 reaches C2 for one session: each message gets exactly one reply, in
 * order. Implemented in-process (tests) and over a gRPC bidirectional stream.
 */
export interface SessionTransport {
  exchange(message: C1Message): Promise<C2Message>;
  close(): void;
}

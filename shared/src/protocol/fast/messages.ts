// The fast protocol's session messages (docs/PROTOCOLS.md §3.5-§3.6) as
// TypeScript values, ciphertexts as bigints; fast/wire.ts converts them to and
// from FastC1Message and FastC2Message. Each kind of message is its own step.

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

export type FastC1Body =
  | {
      kind: 'fast-open';
      keyFingerprint: string;
      pk1Fingerprint: string;
      k: number;
      requestId: string;
      shareTicket: string;
      groups: GroupLayout[];
      /** C1's collection id (empty before its first upload): C2 refuses a session of another collection. */
      collectionId: Buffer;
    }
  /** Every group's masked coarse bound (§3.5a). */
  | { kind: 'fast-bounds'; items: { group: number; value: bigint }[] }
  /** The masked fine bounds of the groups C2 asked to refine. */
  | { kind: 'fast-refined'; items: { group: number; value: bigint }[] }
  | { kind: 'fast-distance'; group: number; value: bigint }
  | { kind: 'finish' };

export type FastC2Body =
  | { kind: 'fast-contributions'; items: Contribution[] }
  /**
   * The next step of the cascade (§3.5a): done, or "refine these groups" (C2's halves of their fine
   * bounds, in `refine`), or "distance of group g" (C2's half of its distances, in `contribution`).
   */
  | { kind: 'fast-next'; done: boolean; contribution?: Contribution; refine?: Contribution[]; rejected: number }
  | { kind: 'ranking'; candidates: number[] };

/** The fast protocol's family of sessions, joined into the transports' union by ../messages.ts. */
export interface FastMessages {
  fast: { c1: { body: FastC1Body }; c2: { body: FastC2Body } };
}

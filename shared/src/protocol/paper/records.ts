// What C1 holds and what the doctor sends, as the protocols see them.

/** The encrypted statistics of one image used by the lower bound: E(S), E(T). */
export interface EncryptedStats {
  sum: bigint;
  spread: bigint;
}

/**
 * C1's records in candidate order (upload order, which is also the tie rule).
 * Pixels are loaded on demand: a 256x256 record is 32 MiB of ciphertexts at 2048 bits.
 */
export interface RecordSource {
  readonly count: number;
  readonly dimension: number;
  stats(): Promise<EncryptedStats[]>;
  pixels(candidate: number): Promise<bigint[]>;
}

/**
 * The doctor's encrypted query. Deviation from paper: negated values are sent
 * (E(-q_i) rather than E(q_i)) so C1 forms E(x_i - q_i) with one modular
 * multiplication instead of a full-size exponentiation; E(T_q) is also sent
 * because the bound needs T_x + T_q.
 */
export interface EncryptedQuery {
  negatedPixels: bigint[];
  negatedSum: bigint;
  negatedSpread: bigint;
  spread: bigint;
}

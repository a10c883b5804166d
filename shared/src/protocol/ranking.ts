// The k best (masked) distances seen so far, kept by C2 during Algorithm 3
// step 5. Tie rule: equal distances rank by candidate position, which C1 makes
// the upload order, so every protocol returns the same records on ties.

export interface Ranking {
  /** Candidate positions, nearest first. */
  candidates: number[];
  /** Records rejected by the lower bound without computing their distance. */
  rejected: number;
  /** Time C1 spent on the lower-bound stage, until the bounds went to C2 (the paper's "LB time"). */
  lowerBoundMs?: number;
}

export interface Ranked {
  candidate: number;
  value: bigint;
}

export class TopK {
  private readonly entries: Ranked[] = [];

  constructor(readonly k: number) {}

  get full(): boolean {
    return this.entries.length >= this.k;
  }

  /** The k-th best value, the one a bound must exceed to reject a record. */
  get worstKept(): bigint | undefined {
    return this.full ? this.entries[this.entries.length - 1].value : undefined;
  }

  offer(entry: Ranked): void {
    const before = (a: Ranked, b: Ranked) => a.value < b.value || (a.value === b.value && a.candidate < b.candidate);
    let i = this.entries.length;
    while (i > 0 && before(entry, this.entries[i - 1])) i--;
    this.entries.splice(i, 0, entry);
    if (this.entries.length > this.k) this.entries.pop();
  }

  candidates(): number[] {
    return this.entries.map((e) => e.candidate);
  }
}

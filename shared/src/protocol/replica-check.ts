import type * as wire from '@fnn/proto';

// `fnn check`: C1's collection and C2's replica compared group by group, from
// their ListGroups (digests and member counts; no IDs, no ciphertexts). The
// verdicts follow the rule of replica changes (docs/ARCHITECTURE.md, "Replica
// changes"): a group whose C1 version C2 holds as its pending change is
// served as C1 holds it from the next session on, so it does not differ.

/** One group's verdict; only groups that are not simply the same are listed. */
export type GroupVerdict =
  /** C2 holds C1's version as its pending change: promoted at the next session or by `fnn repair`. */
  | { group: number; state: 'pending'; c1Members: number }
  /** C2 cannot serve the group as C1 holds it: fast queries over it are refused until `fnn repair`. */
  | { group: number; state: 'differs'; c1Members: number; c2Members: number };

export interface ReplicaComparison {
  /** False when both have a collection id and they are not the same: C2's replica belongs to another collection. */
  sameCollection: boolean;
  c1Records: number;
  c2Records: number;
  groups: GroupVerdict[];
  /** Groups whose verdict is 'differs'. */
  differing: number;
  /**
   * Blobs damaged at rest (checksums): at C1 a record or a group's columns,
   * which only the owner's upload of the image again replaces; at C2 a group's
   * columns, listed as differing too (`fnn repair` rewrites them from C1).
   */
  damaged: { c1: wire.DamagedBlob[]; c2: wire.DamagedBlob[] };
}

export function compareReplicas(c1: wire.GroupList, c2: wire.GroupList): ReplicaComparison {
  const theirs = new Map(c2.groups.map((g) => [g.group, g]));
  const ours = new Map(c1.groups.map((g) => [g.group, g]));
  const groups: GroupVerdict[] = [];
  const damagedAtC2 = new Set(c2.damaged.map((d) => d.group));
  for (const g of [...new Set([...ours.keys(), ...theirs.keys()])].sort((a, b) => a - b)) {
    const at1 = ours.get(g);
    const at2 = theirs.get(g);
    const digest = at1?.digest ?? ''; // '': C1 holds the group empty
    const c1Members = at1?.members ?? 0;
    // A stale pending change beside the group C2 serves is never served; its damaged columns are.
    if ((at2?.digest ?? '') === digest && !damagedAtC2.has(g)) continue;
    if (at2?.pending && at2.pendingDigest === digest) groups.push({ group: g, state: 'pending', c1Members });
    else groups.push({ group: g, state: 'differs', c1Members, c2Members: at2?.members ?? 0 });
  }
  const sum = (list: wire.GroupState[]) => list.reduce((n, g) => n + g.members, 0);
  const id1 = Buffer.from(c1.collectionId);
  const id2 = Buffer.from(c2.collectionId);
  return {
    sameCollection: id1.length === 0 || id2.length === 0 || id1.equals(id2),
    c1Records: sum(c1.groups),
    c2Records: sum(c2.groups),
    groups,
    differing: groups.filter((g) => g.state === 'differs').length,
    damaged: { c1: c1.damaged, c2: c2.damaged },
  };
}

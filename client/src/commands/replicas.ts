import { compareReplicas, type ReplicaComparison, type Transport } from '@fnn/shared';
import { collectionFlag } from '../collections';
import { checkAddress, connectC1, connectReplica } from '../connect';
import { grpcOwnerLink, openCollectionWriter } from '../owner-upload';
import { CliError, ownerOnly, type Output } from '../output';

// `fnn check` and `fnn repair` (the owner's): C1's collection and C2's replica
// compared group by group from their ListGroups (digests and member counts;
// nothing else leaves either daemon), and the differing groups rewritten at
// C2 from C1's records. Both print group numbers and counts only.

type Options = { c1: string; c2: string; keys: string; collection?: string; transport: Transport };

/** Both daemons, each call naming the collection: a check or repair is of one collection. */
function connect(options: Omit<Options, 'keys'>) {
  const collection = collectionFlag(options.collection);
  const c1 = connectC1(checkAddress(options.c1, '--c1', 'FNN_C1'), options.transport, collection);
  const replica = connectReplica(checkAddress(options.c2, '--c2', 'FNN_C2'), options.transport, collection);
  return { link: grpcOwnerLink(c1, replica), close: () => (c1.close(), replica.close()) };
}

/** The lines a comparison prints: one per group that is not simply the same. */
function describe(c: ReplicaComparison): string[] {
  const lines = [`C1 holds ${c.c1Records} records, C2's replica serves ${c.c2Records}`];
  if (!c.sameCollection) lines.push("C2's replica belongs to another collection");
  const where = (d: ReplicaComparison['damaged']['c1'][number]) =>
    d.record ? `record ${d.position} (group ${d.group}, slot ${d.slot})` : `group ${d.group}'s packed columns`;
  for (const d of c.damaged.c1) lines.push(`C1: ${where(d)} DAMAGED (${d.columns.join(', ')}): upload that image again`);
  for (const d of c.damaged.c2) lines.push(`C2: ${where(d)} DAMAGED (${d.columns.join(', ')})`);
  for (const g of c.groups)
    lines.push(
      g.state === 'pending'
        ? `group ${g.group}: C2 holds C1's version (${g.c1Members} members) as a pending change; served from the next query`
        : `group ${g.group}: DIFFERS (C1 ${g.c1Members} members, C2 ${g.c2Members})`,
    );
  return lines;
}

/**
 * `fnn check`: exit 0 when C2 serves every group as C1 holds it; 7 when a
 * stored blob is damaged at either (checksums); 3 when a group differs or C2
 * belongs to another collection.
 */
export async function check(out: Output, options: Omit<Options, 'keys'>): Promise<void> {
  const { link, close } = connect(options);
  try {
    const [c1, c2] = await Promise.all([link.listGroups(), link.listReplicaGroups()]);
    const c = compareReplicas(c1, c2);
    const differ = c.groups.filter((g) => g.state === 'differs').map((g) => g.group);
    const lines = describe(c);
    lines.push(differ.length === 0 && c.sameCollection ? 'the replicas agree' : `${differ.length} group(s) differ: run \`fnn repair\``);
    out.result({ ...c, differ }, lines.join('\n'));
    const damaged = c.damaged.c1.length + c.damaged.c2.length;
    if (damaged > 0)
      throw new CliError('dataLoss', `${damaged} stored blob(s) damaged (C1 ${c.damaged.c1.length}, C2 ${c.damaged.c2.length})`);
    if (!c.sameCollection) throw new CliError('invalid', "C2's replica belongs to another collection");
    if (differ.length > 0) throw new CliError('invalid', `the replicas differ in ${differ.length} group(s): run \`fnn repair\``);
  } catch (error) {
    throw ownerOnly(error, 'check the replicas');
  } finally {
    close();
  }
}

/** `fnn repair`: rewrites every differing group at C2 from C1's records; safe to interrupt and to run again. */
export async function repair(out: Output, options: Options): Promise<void> {
  const { link, close } = connect(options);
  const owner = openCollectionWriter(link, options.keys, ['packed']);
  try {
    const report = await owner.writer.repair((group, action) => out.note(`group ${group}: ${action}`));
    const n = report.rewritten.length + report.committed.length;
    out.result(
      report,
      n === 0
        ? 'nothing to repair: the replicas agree'
        : `repaired ${n} group(s): ${report.rewritten.length} rewritten at C2 from C1's records, ${report.committed.length} pending change(s) committed`,
    );
  } catch (error) {
    throw ownerOnly(error, 'repair the replicas');
  } finally {
    close();
    await owner.close();
  }
}

import type { Transport } from '@fnn/shared';
import { call, checkAddress, connectC1, connectReplica } from '../connect';
import { loadRecordKey } from '../key-files';
import { CliError, classify, type Output } from '../output';

/** `fnn delete`: all named records go in one transaction, or none if one is unknown. */
export async function deleteRecords(out: Output, ids: string[], options: { c1: string; c2: string; keys: string; transport: Transport }): Promise<void> {
  const client = connectC1(checkAddress(options.c1, '--c1', 'FNN_C1'), options.transport);
  const replica = connectReplica(checkAddress(options.c2, '--c2', 'FNN_C2'), options.transport);
  const recordKey = loadRecordKey(options.keys);
  try {
    const lookupTags = ids.map((id) => recordKey.lookupTag(id));
    // C1 first: it is the authority (all or none), and a query sees a record
    // only while C1 holds it. Then C2's replica forgets the same records.
    const reply = await call(client.delete.bind(client), { lookupTags }, 60_000);
    await call(replica.delete.bind(replica), { lookupTags }, 60_000, undefined, 'C2').catch((error) => {
      throw new CliError('unavailable', `deleted at C1, but C2's replica was not updated (${classify(error).reason}); fast queries fail until it is: run the same delete against C2 when it is back`);
    });
    out.result({ deleted: ids, total: Number(reply.total) }, `deleted ${reply.deleted} record(s); ${reply.total} remain`);
  } finally {
    client.close();
    replica.close();
  }
}

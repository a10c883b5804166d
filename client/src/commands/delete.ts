import { describeGrpcError } from '@fnn/shared';
import { call, checkAddress, connectC1, connectReplica } from '../connect';
import { loadRecordKey } from '../key-files';
import type { Output } from '../output';

/** `fnn delete`: all named records go in one transaction, or none if one is unknown. */
export async function deleteRecords(out: Output, ids: string[], options: { c1: string; c2: string; keys: string }): Promise<void> {
  const client = connectC1(checkAddress(options.c1, '--c1', 'FNN_C1'));
  const replica = connectReplica(checkAddress(options.c2, '--c2', 'FNN_C2'));
  const recordKey = loadRecordKey(options.keys);
  try {
    const lookupTags = ids.map((id) => recordKey.lookupTag(id));
    // C1 first: it is the authority (all or none). The replica forgets the same
    // tags even when C1 no longer knows them, so running a delete again heals a
    // replica that missed the first one.
    const reply = await call(client.delete.bind(client), { lookupTags }, 60_000).catch(async (error) => {
      if (describeGrpcError(error)?.code === 'NOT_FOUND') await call(replica.delete.bind(replica), { lookupTags }, 60_000);
      throw error;
    });
    await call(replica.delete.bind(replica), { lookupTags }, 60_000);
    out.result({ deleted: ids, total: Number(reply.total) }, `deleted ${reply.deleted} record(s); ${reply.total} remain`);
  } finally {
    client.close();
    replica.close();
  }
}

import { call, checkAddress, connectC1 } from '../connect';
import { loadRecordKey } from '../key-files';
import type { Output } from '../output';

/** `fnn delete`: all named records go in one transaction, or none if one is unknown. */
export async function deleteRecords(out: Output, ids: string[], options: { c1: string; keys: string }): Promise<void> {
  const client = connectC1(checkAddress(options.c1, '--c1', 'FNN_C1'));
  const recordKey = loadRecordKey(options.keys);
  try {
    const reply = await call(client.delete.bind(client), { lookupTags: ids.map((id) => recordKey.lookupTag(id)) }, 60_000);
    out.result({ deleted: ids, total: Number(reply.total) }, `deleted ${reply.deleted} record(s); ${reply.total} remain`);
  } finally {
    client.close();
  }
}

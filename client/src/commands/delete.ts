import type { Transport } from '@fnn/shared';
import { checkAddress, connectC1, connectReplica } from '../connect';
import { grpcOwnerLink, openCollectionWriter } from '../owner-upload';
import type { Output } from '../output';

/**
 * `fnn delete`: all named records go in one transaction at C1, or none if one
 * is unknown. Every group that loses a member is re-encrypted without it, so
 * the deleted images are gone from every packed ciphertext at both servers.
 */
export async function deleteRecords(
  out: Output,
  ids: string[],
  options: { c1: string; c2: string; keys: string; transport: Transport },
): Promise<void> {
  const client = connectC1(checkAddress(options.c1, '--c1', 'FNN_C1'), options.transport);
  const replica = connectReplica(checkAddress(options.c2, '--c2', 'FNN_C2'), options.transport);
  const owner = openCollectionWriter(grpcOwnerLink(client, replica), options.keys, ['packed']);
  try {
    const reply = await owner.writer.delete(ids);
    out.result({ deleted: ids, total: Number(reply.total) }, `deleted ${reply.deleted} record(s); ${reply.total} remain`);
  } finally {
    client.close();
    replica.close();
    await owner.close();
  }
}

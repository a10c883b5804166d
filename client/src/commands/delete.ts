import type { Transport } from '@fnn/shared';
import { describeGrpcError } from '@fnn/shared';
import { collectionFlag } from '../collections';
import { checkAddress, connectC1, connectReplica } from '../connect';
import { grpcOwnerLink, openCollectionWriter } from '../owner-upload';
import { CliError, ownerOnly, type Output } from '../output';

/**
 * `fnn delete`: all named records go in one transaction at C1, or none if one
 * is unknown. Every group that loses a member is re-encrypted without it, so
 * the deleted images are gone from every packed ciphertext at both servers.
 */
export async function deleteRecords(
  out: Output,
  ids: string[],
  options: { c1: string; c2: string; keys: string; collection?: string; transport: Transport },
): Promise<void> {
  const collection = collectionFlag(options.collection);
  const client = connectC1(checkAddress(options.c1, '--c1', 'FNN_C1'), options.transport, collection);
  const replica = connectReplica(checkAddress(options.c2, '--c2', 'FNN_C2'), options.transport, collection);
  const owner = openCollectionWriter(grpcOwnerLink(client, replica), options.keys, ['packed']);
  try {
    const reply = await owner.writer.delete(ids);
    out.result({ deleted: ids, total: Number(reply.total) }, `deleted ${reply.deleted} record(s); ${reply.total} remain`);
  } catch (error) {
    throw notFoundById(ownerOnly(error, 'delete records'), ids);
  } finally {
    client.close();
    replica.close();
    await owner.close();
  }
}

/**
 * C1's NOT_FOUND names the unknown record by its place in the request ("record
 * 2 of 3"), as C1 never sees an ID; the CLI knows which ID it sent there.
 */
export function notFoundById(error: unknown, ids: string[]): unknown {
  const grpc = describeGrpcError(error);
  if (grpc?.code !== 'NOT_FOUND') return error;
  const sent = [...new Set(ids)]; // as the writer sends them: an ID named twice once
  const at = /record (\d+) of (\d+) is not in the collection/.exec(grpc.message);
  const id = at && Number(at[2]) === sent.length ? sent[Number(at[1]) - 1] : undefined;
  const what = id === undefined ? 'one of the IDs is' : `"${id}" is`;
  return new CliError(
    'notFound',
    `${what} not in the collection, so nothing was deleted (NOT_FOUND). Record IDs are the uploaded file names`,
  );
}

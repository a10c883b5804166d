import type { Transport } from '@fnn/shared';
import { collectionLine, listCollectionsAt } from '../collections';
import { checkAddress } from '../connect';
import type { Output } from '../output';

/** `fnn collections`: every collection C1 holds, one line each ("default" first); with --json one object listing them. */
export async function collections(out: Output, options: { c1: string; transport: Transport }): Promise<void> {
  const list = await listCollectionsAt(checkAddress(options.c1, '--c1', 'FNN_C1'), options.transport);
  out.result({ collections: list }, list.map(collectionLine).join('\n'));
}

import { invalidInput } from '../errors';

// How a call names its collection (docs/ARCHITECTURE.md, "Collections"): the
// gRPC metadata `fnn-collection`, the same on every call to C1 and C2, so no
// request message changes and a call without it is the default collection's,
// as every call of a deployment of one collection was. The daemons
// (server-common/src/collections.ts) and the CLI (client/src/collections.ts)
// read the name's rule from here.

/** The metadata key a call names its collection in. */
export const COLLECTION_METADATA = 'fnn-collection';
/** The collection of a call that names none: the daemons' `--db` files themselves. */
export const DEFAULT_COLLECTION = 'default';
/** A collection's name: a file name on every platform, nothing a path could be made of, safe in a log line. */
export const COLLECTION_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;
/** What a refusal quotes of a bad name: a caller's name is cut, never echoed whole. */
const QUOTED = 64;

/** What a collection name may be, in words. */
export const COLLECTION_NAME_RULE = "1-64 of a-z, 0-9, '.', '_', '-', starting with a letter or digit";

/** The name, or INVALID_ARGUMENT saying what a name may be. */
export function checkCollectionName(name: string): string {
  if (!COLLECTION_NAME.test(name)) throw invalidInput(`collection name "${name.slice(0, QUOTED)}" is not allowed: ${COLLECTION_NAME_RULE}`);
  return name;
}

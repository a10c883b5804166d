import type * as wire from '@fnn/proto';
import {
  COLLECTION_NAME,
  COLLECTION_NAME_RULE,
  DEFAULT_COLLECTION,
  layoutsFromWire,
  settingsFromWire,
  type CollectionSettings,
  type Layout,
  type Transport,
} from '@fnn/shared';
import { call, connectC1 } from './connect';
import { CliError } from './output';

// A deployment's collections as C1 lists them (ListCollections): what
// `fnn collections` prints and what a viewer's collection picker shows.
// Names, sizes, counts and settings only: nothing of any record.

/** One collection: its name and what Status says of it. */
export interface CollectionInfo {
  name: string;
  /** 0 while the collection is empty (its size is its first upload's). */
  width: number;
  height: number;
  maxValue: number;
  records: number;
  /** What it stores, so which protocols it answers ('paper': fnn and bf too); empty while empty. */
  layouts: Layout[];
  /** The offset and fit rule every upload and query applies; absent while empty or for a collection stored before they were kept. */
  settings?: CollectionSettings;
}

const LIST_TIMEOUT_MS = 10_000;

export function collectionsFromWire(list: wire.CollectionList): CollectionInfo[] {
  return list.collections.map((c) => ({
    name: c.name,
    width: c.width,
    height: c.height,
    maxValue: c.maxValue,
    records: Number(c.records),
    layouts: layoutsFromWire(c.layouts),
    ...(c.settings ? { settings: settingsFromWire(c.settings) } : {}),
  }));
}

/** The collections of the C1 `client` is connected to, "default" first. */
export async function listCollections(client: wire.DatabaseClient, timeoutMs = LIST_TIMEOUT_MS): Promise<CollectionInfo[]> {
  return collectionsFromWire(await call(client.listCollections.bind(client), {}, timeoutMs, undefined, 'C1'));
}

/** The collections of the C1 at `address` (a connection of its own, closed after). */
export async function listCollectionsAt(address: string, transport: Transport, timeoutMs = LIST_TIMEOUT_MS): Promise<CollectionInfo[]> {
  const client = connectC1(address, transport);
  try {
    return await listCollections(client, timeoutMs);
  } finally {
    client.close();
  }
}

/** A --collection flag's value, checked before anything is read or connected (a usage error, exit 2); none: the default. */
export function collectionFlag(name: string | undefined): string {
  if (name === undefined) return DEFAULT_COLLECTION;
  if (!COLLECTION_NAME.test(name))
    throw new CliError('usage', `--collection "${name.slice(0, 64)}" is not a collection name: ${COLLECTION_NAME_RULE}`);
  return name;
}

/** A collection's one line in `fnn collections`. */
export function collectionLine(c: CollectionInfo): string {
  if (c.width === 0) return `${c.name}: empty`;
  const settings = c.settings ? `, --offset ${c.settings.offset} --fit ${c.settings.fit}` : '';
  const protocols = c.layouts.includes('paper') ? 'fnn, bf, fast' : 'fast only';
  return `${c.name}: ${c.records} records of ${c.width}x${c.height} (max ${c.maxValue}${settings}), answers ${protocols}`;
}

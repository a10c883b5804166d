import { randomBytes } from 'node:crypto';
import {
  DoctorClient,
  isProtocolName,
  PROTOCOL_NAMES,
  retrieveParts,
  type DoctorLink,
  type ProtocolName,
  type Transport,
} from '@fnn/shared';
import { rememberedImageOptions, rememberedOf } from './collection-settings';
import { collectionFlag, listCollections } from './collections';
import { call, checkAddress, connectC1, connectC2 } from './connect';
import { createCrypto } from './crypto-workers';
import type { ImageFlags, ImageOptions } from './image-files';
import { loadPublicKey, loadRecordKey } from './key-files';
import { CliError } from './output';
import { queryWithProgress } from './query-stream';

// The doctor's side of a deployment, opened once: the doctor's keys, the
// connections to C1 and C2, the encryption pool, and DoctorClients over them.
// `fnn query`, `fnn batch-query` and `fnn viewer` share it, so a key check or
// a connection rule is written once for all three. A connection names its
// collection on every call (connect.ts), so each collection searched has its
// own pair, made when first used.

export interface DoctorSessionOptions extends ImageFlags {
  c1: string;
  c2: string;
  keys: string;
  timeout: string;
  /** The collection to search (--collection); the default one when absent. */
  collection?: string;
  transport: Transport;
}

export type DoctorSession = ReturnType<typeof openDoctorSession>;

/** --protocol as a protocol name, or a usage error listing them. */
export function parseProtocol(name: string): ProtocolName {
  if (!isProtocolName(name)) throw new CliError('usage', `--protocol must be one of ${PROTOCOL_NAMES.join(', ')}`);
  return name;
}

/** --k: at most 100 neighbours, each one a retrieval the doctor pays for. */
export function parseK(text: string | number): number {
  const k = Number(text);
  if (!Number.isInteger(k) || k < 1 || k > 100) throw new CliError('usage', '--k must be an integer from 1 to 100');
  return k;
}

/** Collections one session keeps connections to at once (a viewer's picker can name many; C1 bounds how many exist). */
const MAX_OPEN_COLLECTIONS = 16;

/** Keys read and checked, C1 and C2 connected: nothing is sent until a query or status is asked. */
export function openDoctorSession(options: DoctorSessionOptions) {
  const c1Address = checkAddress(options.c1, '--c1', 'FNN_C1');
  const c2Address = checkAddress(options.c2, '--c2', 'FNN_C2');
  const chosen = collectionFlag(options.collection);
  const timeoutMs = Number(options.timeout) * 1000;
  if (!(timeoutMs > 0)) throw new CliError('usage', '--timeout must be a positive number of seconds');
  const pk2 = loadPublicKey(options.keys, 'doctor');
  const recordKey = loadRecordKey(options.keys, 'doctor');
  const crypto = createCrypto(pk2);

  const open = new Map<string, ReturnType<typeof connectPair>>();
  function connectPair(collection: string) {
    // Every call names its collection: C1's Status and query, C2's PutShare and Retrieve.
    const c1 = connectC1(c1Address, options.transport, collection);
    const c2 = connectC2(c2Address, options.transport, collection);
    const link: DoctorLink = {
      status: async () => {
        const status = await call(c1.status.bind(c1), {}, 30_000);
        if (status.width && status.keyFingerprint !== pk2.fingerprint())
          throw new CliError('usage', 'C1 holds records under another key than public-key.json');
        return status;
      },
      putShare: async (share) => (await call(c2.putShare.bind(c2), share, 30_000, undefined, 'C2')).ticket,
      retrieve: (ticket) => retrieveParts(c2, ticket, new Date(Date.now() + timeoutMs)),
      query: (request, onProgress) => queryWithProgress(c1, request, timeoutMs, randomBytes(8).toString('hex'), onProgress),
    };
    return { c1, c2, link };
  }
  /** The connections of a collection, opened on first use; the oldest other one closed past the bound. */
  const pair = (collection: string) => {
    let p = open.get(collection);
    if (!p) {
      for (const [name, other] of open) {
        if (open.size < MAX_OPEN_COLLECTIONS) break;
        if (name === chosen) continue;
        other.c1.close();
        other.c2.close();
        open.delete(name);
      }
      p = connectPair(collection);
      open.set(collection, p);
    }
    return p;
  };
  const main = pair(chosen);

  return {
    /** A client for one protocol and k over this session's keys, for `collection` (default: --collection's). */
    doctor: (protocol: ProtocolName, k: number, collection = chosen) =>
      new DoctorClient(pair(collectionFlag(collection)).link, { pk2, recordKey }, (v) => crypto.pool.encrypt(v), protocol, k),
    /** C1's client for --collection's calls (batch-query's stream). */
    c1: main.c1,
    c1Address,
    c2Address,
    timeoutMs,
    /** The collection --collection names (the default one without it). */
    collection: chosen,
    /** C1's facts about a collection (its size, records, settings), checked against the doctor's key. */
    status: (collection = chosen) => pair(collectionFlag(collection)).link.status(),
    /** The deployment's collections as C1 lists them, DEFAULT_COLLECTION first. */
    collections: () => listCollections(main.c1),
    /** The flags over what a collection remembers (its size, offset, fit), asked of C1 before any image is read. */
    imageOptions: async (collection = chosen): Promise<ImageOptions> => {
      const c1 = pair(collectionFlag(collection)).c1;
      return rememberedImageOptions(options, rememberedOf(await call(c1.status.bind(c1), {}, 30_000)));
    },
    close: async () => {
      for (const p of open.values()) {
        p.c1.close();
        p.c2.close();
      }
      open.clear();
      await crypto.close();
    },
  };
}

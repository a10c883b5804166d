import type * as wire from '@fnn/proto';
import { CollectionWriter, type Layout, type OwnerLink } from '@fnn/shared';
import { call } from './connect';
import { createCrypto } from './crypto-workers';
import { hasC1SecretKey, hasSecretKey, loadC1PublicKey, loadC1SecretKey, loadPublicKey, loadRecordKey, loadSecretKey } from './key-files';

/** The owner's calls over gRPC, each with a deadline; C2's failures say "C2". */
export function grpcOwnerLink(c1: wire.DatabaseClient, c2: wire.ReplicaClient): OwnerLink {
  const minute = 60_000;
  return {
    status: () => call(c1.status.bind(c1), {}, 30_000),
    allocateSlots: (req) => call(c1.allocateSlots.bind(c1), req, minute),
    getGroup: (req) => call(c1.getGroup.bind(c1), req, minute),
    upload: (req) => call(c1.upload.bind(c1), req, 10 * minute),
    delete: (req) => call(c1.delete.bind(c1), req, 10 * minute),
    putReplicaGroup: (req) => call(c2.putGroup.bind(c2), req, 10 * minute, undefined, 'C2'),
  };
}

/**
 * The owner's writer from a key directory, with its worker threads (one set for
 * both keys). The owner made both key pairs: with the factorisations,
 * encryption is ~3x faster (the C module's CRT path).
 */
export function openCollectionWriter(link: OwnerLink, keysDir: string, layouts: readonly Layout[]) {
  const c2Key = loadPublicKey(keysDir);
  const c1Key = loadC1PublicKey(keysDir);
  const recordKey = loadRecordKey(keysDir);
  const underC2Key = createCrypto(c2Key, hasSecretKey(keysDir) ? loadSecretKey(keysDir, c2Key) : undefined);
  const underC1Key = underC2Key.pool.withKey(c1Key, hasC1SecretKey(keysDir) ? loadC1SecretKey(keysDir, c1Key) : undefined);
  return {
    writer: new CollectionWriter(
      link,
      { c2Key, c1Key, recordKey },
      { underC2Key: (v) => underC2Key.pool.encrypt(v), underC1Key: (v) => underC1Key.encrypt(v) },
      layouts,
    ),
    close: () => underC2Key.close(),
  };
}

import { once } from 'node:events';
import { Metadata } from '@grpc/grpc-js';
import type * as wire from '@fnn/proto';
import { CollectionWriter, messageLimit, needsParts, uploadParts, type CollectionSettings, type Layout, type OwnerLink } from '@fnn/shared';
import { call } from './connect';
import { createCrypto } from './crypto-workers';
import {
  C1_SECRET_KEY_FILE,
  loadC1PublicKey,
  loadPublicKey,
  loadRecordKey,
  loadSecretKeyAt,
  ownerHeldSecret,
  SECRET_KEY_FILE,
} from './key-files';

/** The owner's calls over gRPC, each with a deadline; C2's failures say "C2". */
export function grpcOwnerLink(c1: wire.DatabaseClient, c2: wire.ReplicaClient): OwnerLink {
  const minute = 60_000;
  return {
    status: () => call(c1.status.bind(c1), {}, 30_000),
    allocateSlots: (req) => call(c1.allocateSlots.bind(c1), req, minute),
    getGroup: (req) => call(c1.getGroup.bind(c1), req, minute),
    upload: (req) => (needsParts(req, messageLimit()) ? uploadInParts(c1, req, 10 * minute) : call(c1.upload.bind(c1), req, 10 * minute)),
    delete: (req) => call(c1.delete.bind(c1), req, 10 * minute),
    listGroups: () => call(c1.listGroups.bind(c1), {}, minute),
    putReplicaGroup: (req) => call(c2.putGroup.bind(c2), req, 10 * minute, undefined, 'C2'),
    commitReplicaGroup: (req) => call(c2.commitGroup.bind(c2), req, minute, undefined, 'C2'),
    listReplicaGroups: () => call(c2.listGroups.bind(c2), {}, minute, undefined, 'C2'),
  };
}

/**
 * An upload above the message limit (the paper's layout at 256x256 and up),
 * streamed in parts as it is written (backpressure: a part waits until gRPC
 * has sent the one before), stored by C1 when the stream ends.
 */
function uploadInParts(c1: wire.DatabaseClient, req: wire.UploadRequest, timeoutMs: number): Promise<wire.UploadReply> {
  return new Promise((resolve, reject) => {
    const stream = c1.uploadInParts(new Metadata(), { deadline: new Date(Date.now() + timeoutMs) }, (err, reply) =>
      err ? reject(err) : resolve(reply),
    );
    void (async () => {
      for (const part of uploadParts(req, messageLimit())) if (!stream.write(part)) await once(stream, 'drain');
      stream.end();
    })().catch((error: unknown) => {
      stream.cancel();
      reject(error);
    });
  });
}

/**
 * The owner's writer from a key directory, with its worker threads (one set for
 * both keys). Where the owner still holds a server's secret key (the whole
 * keygen output on one machine), encryption takes the ~3x faster CRT path.
 */
export function openCollectionWriter(link: OwnerLink, keysDir: string, layouts: readonly Layout[], settings?: CollectionSettings) {
  const pk2 = loadPublicKey(keysDir, 'owner');
  const pk1 = loadC1PublicKey(keysDir, 'owner');
  const recordKey = loadRecordKey(keysDir, 'owner');
  const sk2 = ownerHeldSecret(keysDir, SECRET_KEY_FILE);
  const sk1 = ownerHeldSecret(keysDir, C1_SECRET_KEY_FILE);
  const underPk2 = createCrypto(pk2, sk2 ? loadSecretKeyAt(sk2, pk2) : undefined);
  const underPk1 = underPk2.pool.withKey(pk1, sk1 ? loadSecretKeyAt(sk1, pk1) : undefined);
  return {
    writer: new CollectionWriter(
      link,
      { pk2, pk1, recordKey },
      { underPk2: (v) => underPk2.pool.encrypt(v), underPk1: (v) => underPk1.encrypt(v) },
      layouts,
      settings,
    ),
    close: () => underPk2.close(),
  };
}

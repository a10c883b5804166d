import { describe, expect, it } from 'vitest';
import type * as wire from '@fnn/proto';
import { generateKeyPair } from '../crypto/paillier';
import { generateSymmetricKey, RecordKey } from '../crypto/symmetric';
import { packingParams } from './fast/params';
import { CollectionWriter, type OwnerLink } from './owner-writer';

describe('CollectionWriter', () => {
  it('stores the groups of one upload in the order of the records, even when a later group is encrypted first', async () => {
    const [c2, c1] = await Promise.all([generateKeyPair(256), generateKeyPair(256)]);
    const shape = { width: 2, height: 2, maxValue: 255 };
    const G = packingParams(256, shape.width, shape.height, shape.maxValue).groupSize;
    const uploads: number[] = [];
    const replicas: number[] = [];
    let release!: () => void;
    const group0Read = new Promise<void>((r) => (release = r));
    const link: OwnerLink = {
      status: async () => ({
        records: 0n,
        width: 0,
        height: 0,
        maxValue: 0,
        keyBits: 256,
        keyFingerprint: '',
        c2Reachable: true,
        layouts: [],
        settings: undefined,
      }),
      allocateSlots: async (req) => ({
        slots: req.lookupTags.map((_, i) => ({ group: Math.floor(i / G), slot: i % G, stored: false })),
        collectionId: Buffer.alloc(16, 1),
      }),
      // Group 0 is read only once group 1 has been read and encrypted: without ordering, group 1 would be stored first.
      getGroup: async (req) => {
        if (req.group === 0) await group0Read;
        return { version: Buffer.alloc(0), members: [] };
      },
      putReplicaGroup: async (req) => {
        replicas.push(req.group!.group);
        return { total: 0n };
      },
      upload: async (req) => {
        uploads.push(req.group!.group);
        return { stored: req.records.length, replaced: 0, total: 0n };
      },
      delete: async () => ({ deleted: 0, total: 0n }),
      listGroups: async () => ({ collectionId: Buffer.alloc(16), groups: [], width: 0, height: 0, maxValue: 0, damaged: [] }),
      commitReplicaGroup: async () => ({ agrees: true, total: 0n }),
      listReplicaGroups: async () => ({ collectionId: Buffer.alloc(16), groups: [], width: 0, height: 0, maxValue: 0, damaged: [] }),
    };
    const encrypt = (key: typeof c1) => async (values: bigint[]) => values.map((v) => key.secretKey.encrypt(v));
    const encryptUnderC2 = encrypt(c2);
    let c2Batches = 0;
    const writer = new CollectionWriter(
      link,
      { pk2: c2.publicKey, pk1: c1.publicKey, recordKey: new RecordKey(generateSymmetricKey()) },
      {
        underPk2: async (values) => {
          // The columns of group 1 are encrypted (group 0 waits for its read): now let group 0 go on.
          if (++c2Batches === 1) setImmediate(release);
          return encryptUnderC2(values);
        },
        underPk1: encrypt(c1),
      },
      ['packed'],
    );
    const records = Array.from({ length: G + 1 }, (_, i) => ({ id: `r${i}`, image: { ...shape, pixels: Uint16Array.from([i, i, i, i]) } }));
    const outcomes: wire.UploadReply[] = [];
    await writer.upload(records, (o) => {
      expect(o.ok, `group of ${o.ids.join(', ')}`).toBe(true);
      outcomes.push({ stored: o.ids.length, replaced: 0, total: 0n });
    });
    expect(replicas, "C2 gets the groups in the records' order").toEqual([0, 1]);
    expect(uploads, "C1 stores the groups in the records' order (its upload order is the tie rule)").toEqual([0, 1]);
    expect(outcomes.map((o) => o.stored)).toEqual([G, 1]);
  });
});

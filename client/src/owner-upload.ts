import * as wire from '@fnn/proto';
import {
  encryptRecord,
  encryptSlotRecord,
  packingParams,
  sealImage,
  WireCodec,
  type CryptoPool,
  type GrayImage,
  type PublicKey,
  type RecordKey,
} from '@fnn/shared';
import { call } from './connect';
import { CliError } from './output';

export const MAX_ID_BYTES = 512;

/**
 * One record, uploaded as the owner must: ask C1 for the record's slot, encrypt
 * the paper's layout and the fast protocol's slot records (C1's under C2's
 * key, C2's under C1's key) and the sealed image, store C2's replica, then
 * C1's record. C1 is written last: until it holds the record, fnn and bf do
 * not see it and a fast query over its group is refused (the replicas' group
 * digests differ); a failed upload is completed by running it again.
 */
export class RecordUploader {
  private readonly codec: WireCodec;

  constructor(
    private readonly c1: wire.DatabaseClient,
    private readonly c2: wire.ReplicaClient,
    private readonly keys: { c2Key: PublicKey; c1Key: PublicKey; recordKey: RecordKey },
    private readonly pools: { underC2Key: CryptoPool; underC1Key: CryptoPool },
  ) {
    this.codec = new WireCodec(keys.c2Key.cipherBytes);
  }

  async upload(id: string, image: GrayImage): Promise<wire.UploadReply> {
    const { c2Key, c1Key, recordKey } = this.keys;
    // C1 refuses what would not fit; refuse it here, before C2's replica is written.
    if (Buffer.byteLength(id) > MAX_ID_BYTES) throw new CliError('usage', `record ID longer than ${MAX_ID_BYTES} bytes`);
    const lookupTag = recordKey.lookupTag(id);
    const { group, slot } = await call(this.c1.allocateSlot.bind(this.c1), { lookupTag }, 30_000);
    const params = packingParams(Math.min(c2Key.bits, c1Key.bits), image.width, image.height, image.maxValue);
    const encrypt2 = (v: bigint[]) => this.pools.underC2Key.encrypt(v);
    const encrypt1 = (v: bigint[]) => this.pools.underC1Key.encrypt(v);
    const [record, slots] = await Promise.all([
      encryptRecord(encrypt2, recordKey, id, image.pixels),
      encryptSlotRecord(image.pixels, params, slot, encrypt2, encrypt1),
    ]);
    const shape = { width: image.width, height: image.height, maxValue: image.maxValue };
    await call(
      this.c2.store.bind(this.c2),
      {
        keyFingerprint: c2Key.fingerprint(),
        evaluatorKeyFingerprint: c1Key.fingerprint(),
        ...shape,
        lookupTag,
        slot: this.codec.slotToWire(group, slot, slots.forC2),
      },
      10 * 60_000,
      undefined,
      'C2',
    );
    return call(
      this.c1.upload.bind(this.c1),
      {
        keyFingerprint: c2Key.fingerprint(),
        ...shape,
        records: [this.codec.recordToWire(record, sealImage(recordKey, image), this.codec.slotToWire(group, slot, slots.forC1))],
      },
      10 * 60_000,
    );
  }
}

import * as wire from '@fnn/proto';
import {
  encryptGroup,
  encryptRecord,
  newGroupVersion,
  openSealedImage,
  packingParams,
  sealImage,
  WireCodec,
  type CryptoPool,
  type GrayImage,
  type PackingParams,
  type PublicKey,
  type RecordKey,
} from '@fnn/shared';
import { call } from './connect';
import { createCrypto } from './crypto-workers';
import { hasC1SecretKey, hasSecretKey, loadC1PublicKey, loadC1SecretKey, loadPublicKey, loadRecordKey, loadSecretKey } from './key-files';
import { CliError, classify, EXIT } from './output';

export const MAX_ID_BYTES = 512;

export interface NamedImage {
  id: string;
  image: GrayImage;
}

/** What happened to the records of one group: all stored (or replaced) together, or all failed. */
export type GroupOutcome =
  | { ids: string[]; ok: true; replaced: Set<string>; total: number }
  | { ids: string[]; ok: false; error: unknown };

/**
 * The owner's writes, group by group. A group's packed columns are encrypted
 * from all its members at once (one ciphertext per coordinate per group), so
 * every change to a group (records in, replaced or out) re-encrypts it from
 * its members' images: the new ones from the files, the others opened from
 * the sealed copies C1 keeps. Each group is written to C2's replica first,
 * then to C1 in one transaction checked against the group's version the
 * owner read: until C1 holds the change, fast queries over that group are
 * refused (the replicas' digests differ) rather than answered wrongly, and
 * running the same command again completes it.
 */
export class CollectionWriter {
  private readonly codec: WireCodec;

  constructor(
    private readonly c1: wire.DatabaseClient,
    private readonly c2: wire.ReplicaClient,
    private readonly keys: { c2Key: PublicKey; c1Key: PublicKey; recordKey: RecordKey },
    private readonly pools: { underC2Key: CryptoPool; underC1Key: CryptoPool },
    /** Also upload the paper's per-pixel layout (d more encryptions per record), so fnn and bf can run. */
    private readonly paperLayout: boolean,
  ) {
    this.codec = new WireCodec(keys.c2Key.cipherBytes);
  }

  /** Records per group for images of this shape (the same at C1 and C2: equal key sizes). */
  params(shape: { width: number; height: number; maxValue: number }): PackingParams {
    return packingParams(Math.min(this.keys.c2Key.bits, this.keys.c1Key.bits), shape.width, shape.height, shape.maxValue);
  }

  /** Upload records of one shape; `done` hears of each group as it lands or fails. */
  async upload(records: NamedImage[], done: (outcome: GroupOutcome) => void): Promise<void> {
    if (records.length === 0) return;
    for (const r of records)
      if (Buffer.byteLength(r.id) > MAX_ID_BYTES) throw new CliError('usage', `record ID longer than ${MAX_ID_BYTES} bytes`);
    const { width, height, maxValue } = records[0].image;
    const shape = { width, height, maxValue };
    const params = this.params(shape);
    const tags = records.map((r) => this.keys.recordKey.lookupTag(r.id));
    const { slots } = await call(this.c1.allocateSlots.bind(this.c1), { lookupTags: tags, ...shape }, 60_000);
    const groups = new Map<number, { slot: number; record: NamedImage; tag: Buffer }[]>();
    slots.forEach((at, i) => {
      const members = groups.get(at.group) ?? [];
      // The same ID twice in one batch: the later image wins its slot.
      const same = members.findIndex((m) => m.slot === at.slot);
      if (same >= 0) members.splice(same, 1);
      members.push({ slot: at.slot, record: records[i], tag: tags[i] });
      groups.set(at.group, members);
    });
    for (const [group, incoming] of groups) {
      const ids = incoming.map((m) => m.record.id);
      try {
        const contents = await this.readGroup(group);
        const members: (GrayImage | null)[] = new Array(params.groupSize).fill(null);
        const memberTags: (Buffer | null)[] = new Array(params.groupSize).fill(null);
        const replacing = new Set(incoming.map((m) => m.tag.toString('hex')));
        for (const m of contents.members) {
          if (replacing.has(Buffer.from(m.lookupTag).toString('hex'))) continue;
          members[m.slot] = this.openMember(m);
          memberTags[m.slot] = Buffer.from(m.lookupTag);
        }
        for (const m of incoming) {
          members[m.slot] = m.record.image;
          memberTags[m.slot] = m.tag;
        }
        const encrypt2 = (v: bigint[]) => this.pools.underC2Key.encrypt(v);
        const encrypt1 = (v: bigint[]) => this.pools.underC1Key.encrypt(v);
        const [columns, owned] = await Promise.all([
          encryptGroup(members.map((m) => m?.pixels ?? null), params, encrypt2, encrypt1),
          Promise.all(
            incoming.map((m) => encryptRecord(this.keys.recordKey, m.record.id, m.record.image.pixels, this.paperLayout ? encrypt2 : undefined)),
          ),
        ]);
        const version = newGroupVersion();
        const change = (side: 'forC1' | 'forC2') => ({
          group,
          baseVersion: contents.version,
          version,
          columns: this.codec.columnsToWire(columns[side]),
        });
        await this.putReplica(shape, change('forC2'), memberTags);
        const reply = await call(
          this.c1.upload.bind(this.c1),
          {
            keyFingerprint: this.keys.c2Key.fingerprint(),
            ...shape,
            paperLayout: this.paperLayout,
            group: change('forC1'),
            records: incoming.map((m, i) => this.codec.recordToWire(owned[i], sealImage(this.keys.recordKey, m.record.image), m.slot)),
          },
          10 * 60_000,
        );
        const replaced = new Set(incoming.filter((m) => slots[tags.indexOf(m.tag)].stored).map((m) => m.record.id));
        done({ ids, ok: true, replaced, total: Number(reply.total) });
      } catch (error) {
        done({ ids, ok: false, error });
      }
    }
  }

  /**
   * Delete records by ID: every group that loses a member is re-encrypted
   * from the members it keeps (or dropped), at C2 and then at C1, where the
   * whole delete is one transaction. An unknown ID deletes nothing.
   */
  async delete(ids: string[]): Promise<{ deleted: number; total: bigint }> {
    const tags = ids.map((id) => this.keys.recordKey.lookupTag(id));
    const status = await call(this.c1.status.bind(this.c1), {}, 30_000);
    const deleteAtC1 = (groups: wire.GroupChange[]) =>
      call(this.c1.delete.bind(this.c1), { lookupTags: tags, groups }, 10 * 60_000);
    // An empty collection, or an unknown ID: C1 refuses the delete (NOT_FOUND) before touching anything.
    if (status.width === 0) return deleteAtC1([]);
    const shape = { width: status.width, height: status.height, maxValue: status.maxValue };
    const { slots } = await call(this.c1.allocateSlots.bind(this.c1), { lookupTags: tags, ...shape }, 60_000);
    if (slots.some((s) => !s.stored)) return deleteAtC1([]);
    const params = this.params(shape);
    const leaving = new Set(tags.map((t) => t.toString('hex')));
    const changes: wire.GroupChange[] = [];
    for (const group of new Set(slots.map((s) => s.group))) {
      const contents = await this.readGroup(group);
      const members: (GrayImage | null)[] = new Array(params.groupSize).fill(null);
      const memberTags: (Buffer | null)[] = new Array(params.groupSize).fill(null);
      for (const m of contents.members) {
        if (leaving.has(Buffer.from(m.lookupTag).toString('hex'))) continue;
        members[m.slot] = this.openMember(m);
        memberTags[m.slot] = Buffer.from(m.lookupTag);
      }
      const version = newGroupVersion();
      const empty = members.every((m) => m === null);
      const columns = empty
        ? undefined
        : await encryptGroup(
            members.map((m) => m?.pixels ?? null),
            params,
            (v) => this.pools.underC2Key.encrypt(v),
            (v) => this.pools.underC1Key.encrypt(v),
          );
      const change = (side: 'forC1' | 'forC2') => ({
        group,
        baseVersion: contents.version,
        version,
        columns: columns ? this.codec.columnsToWire(columns[side]) : undefined,
      });
      await this.putReplica(shape, change('forC2'), memberTags);
      changes.push(change('forC1'));
    }
    return deleteAtC1(changes).catch((error) => {
      const { code, reason } = classify(error);
      const kind = (Object.keys(EXIT) as (keyof typeof EXIT)[]).find((k) => k !== 'ok' && EXIT[k] === code) ?? 'failure';
      throw new CliError(
        kind as Exclude<keyof typeof EXIT, 'ok'>,
        `C2's replica is updated but C1 did not delete (${reason}); fast queries over the affected groups are refused until you run the same delete again`,
      );
    });
  }

  private readGroup(group: number): Promise<wire.GroupContents> {
    return call(this.c1.getGroup.bind(this.c1), { group }, 60_000);
  }

  /** A member's image from its sealed copy at C1 (only the owner's record key opens it). */
  private openMember(m: wire.GroupMember): GrayImage {
    try {
      return openSealedImage(this.keys.recordKey, m.sealedImage);
    } catch {
      throw new CliError('usage', 'a stored image does not open with this record key: is this the collection\'s key directory?');
    }
  }

  private putReplica(shape: { width: number; height: number; maxValue: number }, group: wire.GroupChange, tags: (Buffer | null)[]) {
    return call(
      this.c2.putGroup.bind(this.c2),
      {
        keyFingerprint: this.keys.c2Key.fingerprint(),
        evaluatorKeyFingerprint: this.keys.c1Key.fingerprint(),
        ...shape,
        group,
        members: tags.flatMap((lookupTag, slot) => (lookupTag ? [{ slot, lookupTag }] : [])),
      },
      10 * 60_000,
      undefined,
      'C2',
    );
  }
}

/**
 * The owner's writer from a key directory, with its worker pools. The owner
 * made both key pairs: with the factorisations, encryption is ~2x faster.
 */
export function openCollectionWriter(c1: wire.DatabaseClient, c2: wire.ReplicaClient, keysDir: string, paperLayout: boolean) {
  const c2Key = loadPublicKey(keysDir);
  const c1Key = loadC1PublicKey(keysDir);
  const recordKey = loadRecordKey(keysDir);
  const underC2Key = createCrypto(c2Key, hasSecretKey(keysDir) ? loadSecretKey(keysDir, c2Key) : undefined);
  const underC1Key = createCrypto(c1Key, hasC1SecretKey(keysDir) ? loadC1SecretKey(keysDir, c1Key) : undefined);
  return {
    writer: new CollectionWriter(c1, c2, { c2Key, c1Key, recordKey }, { underC2Key: underC2Key.pool, underC1Key: underC1Key.pool }, paperLayout),
    close: async () => {
      await underC2Key.close();
      await underC1Key.close();
    },
  };
}

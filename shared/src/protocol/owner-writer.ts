import * as wire from '@fnn/proto';
import type { PublicKey } from '../crypto/paillier';
import type { RecordKey } from '../crypto/symmetric';
import { openSealedImage, sealImage } from '../encoding/sealed-image';
import { mapConcurrent } from '../concurrency';
import { invalidInput, isFnnError, protocolState } from '../errors';
import { describeGrpcError } from '../wire/status';
import type { GrayImage } from '../image/image';
import type { RecordMetadata } from '../image/record-metadata';
import type { CollectionSettings } from '../image/pixel-rule';
import { layoutsToWire, settingsToWire, WireCodec } from '../wire/codec';
import type { Layout } from './module';
import { packingParams, type PackingParams } from './fast/params';
import { encryptGroup, encryptReplica, groupDigest, newGroupVersion, type PackedColumns } from './fast/records';
import { compareReplicas } from './replica-check';
import type { BatchEncryptor } from '../crypto/backend';
import { encryptRecord } from './paper/owner';

// The owner's side of the collection: uploads and deletes, over any link to
// C1 and C2's replica (gRPC in the CLI, the same clients in the daemons' tests).

export const MAX_ID_BYTES = 512;

/** A promise and the function that settles it. */
function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** Groups of one upload being encrypted or sent at once. */
const GROUPS_IN_FLIGHT = 2;

/** Tries of one group change when another owner's change to the group landed first. */
export const CHANGE_ATTEMPTS = 3;

/** C1 refused a change computed from a group state that is no longer current. */
function isStaleChange(error: unknown): boolean {
  if (isFnnError(error)) return error.kind === 'protocol-state';
  return describeGrpcError(error)?.code === 'FAILED_PRECONDITION';
}

/** The owner's calls: C1's Database service and C2's Replica service. */
export interface OwnerLink {
  status(): Promise<wire.DatabaseStatus>;
  allocateSlots(request: wire.AllocateSlotsRequest): Promise<wire.SlotAssignments>;
  getGroup(request: wire.GetGroupRequest): Promise<wire.GroupContents>;
  upload(request: wire.UploadRequest): Promise<wire.UploadReply>;
  delete(request: wire.DeleteRequest): Promise<wire.DeleteReply>;
  /** Every group's digest and member count at C1 (`fnn check`, `fnn repair`). */
  listGroups(): Promise<wire.GroupList>;
  putReplicaGroup(request: wire.ReplicaGroup): Promise<wire.ReplicaReply>;
  commitReplicaGroup(request: wire.CommitGroupRequest): Promise<wire.CommitGroupReply>;
  listReplicaGroups(): Promise<wire.GroupList>;
}

type Shape = { width: number; height: number; maxValue: number };

/** What every change to a group of one collection needs: its shape, packing and C1's collection id. */
interface ChangeContext {
  shape: Shape;
  params: PackingParams;
  collectionId: Buffer;
}

/** What `fnn repair` did: groups rewritten at C2 from C1's records, and groups whose pending change it committed. */
export interface RepairReport {
  rewritten: number[];
  committed: number[];
}

export interface NamedImage {
  id: string;
  image: GrayImage;
  /** Sealed with the image under k (sealed-image.ts): C1 and C2 never read it. */
  metadata?: RecordMetadata;
}

/** What happened to the records of one group: all stored (or replaced) together, or all failed. */
export type GroupOutcome = { ids: string[]; ok: true; replaced: Set<string>; total: number } | { ids: string[]; ok: false; error: unknown };

/**
 * The owner's writes, group by group. A group's packed columns are encrypted
 * from all its members at once (one ciphertext per coordinate per group), so
 * every change to a group (records in, replaced or out) re-encrypts it from
 * its members' images: the new ones from the files, the others opened from
 * the sealed copies C1 keeps. Each change goes to C2's replica first as the
 * group's pending change (not served), then to C1 in one transaction checked
 * against the group's version the owner read, then C2 is told to commit it.
 * Whatever fails in between, C2 serves the version C1 holds: the old one
 * until C1 commits, the new one from then on, even if the commit message is
 * lost (docs/ARCHITECTURE.md, "Replica changes").
 */
export class CollectionWriter {
  /** Bytes at each key's width: C1's copy of a group is under C2's key, C2's replica under C1's key. */
  private readonly codec: WireCodec;
  private readonly replicaCodec: WireCodec;

  constructor(
    private readonly link: OwnerLink,
    private readonly keys: { pk2: PublicKey; pk1: PublicKey; recordKey: RecordKey },
    /** Encryption under C2's key (C1's replica, the paper's layout) and under C1's key (C2's replica). */
    private readonly encrypt: { underPk2: BatchEncryptor; underPk1: BatchEncryptor },
    /**
     * What to store (§2.1, §3.3): the packed layout always (C2's replica is
     * packed); the paper's per-pixel layout too when asked (d more
     * encryptions per record), so the protocols that read it (fnn, bf) can run.
     */
    private readonly layouts: readonly Layout[],
    /** How the images became integers: C1 keeps them with a new collection and refuses an upload that differs. */
    private readonly settings?: CollectionSettings,
  ) {
    if (!layouts.includes('packed')) throw invalidInput("every collection holds the packed layout: C2's replica is packed");
    this.codec = new WireCodec(keys.pk2.cipherBytes);
    this.replicaCodec = new WireCodec(keys.pk1.cipherBytes);
  }

  /** Records per group for images of this shape (the same at C1 and C2: equal key sizes). */
  params(shape: { width: number; height: number; maxValue: number }): PackingParams {
    return packingParams(Math.min(this.keys.pk2.bits, this.keys.pk1.bits), shape.width, shape.height, shape.maxValue);
  }

  /**
   * Upload records of one shape; `done` hears of each group as it lands or
   * fails. A group another owner changed first (C1 refuses the stale change
   * with FAILED_PRECONDITION) is planned and encrypted again from what C1
   * holds now, up to CHANGE_ATTEMPTS times: C2 then ends with the same change
   * as C1 instead of the loser's.
   */
  async upload(records: NamedImage[], done: (outcome: GroupOutcome) => void, attempt = 1): Promise<void> {
    const again: NamedImage[] = [];
    await this.uploadOnce(records, (outcome, staleAtC1) => {
      if (!outcome.ok && attempt < CHANGE_ATTEMPTS && staleAtC1) again.push(...records.filter((r) => outcome.ids.includes(r.id)));
      else done(outcome);
    });
    if (again.length > 0) await this.upload(again, done, attempt + 1);
  }

  private async uploadOnce(records: NamedImage[], done: (outcome: GroupOutcome, staleAtC1: boolean) => void): Promise<void> {
    if (records.length === 0) return;
    for (const r of records) if (Buffer.byteLength(r.id) > MAX_ID_BYTES) throw invalidInput(`record ID longer than ${MAX_ID_BYTES} bytes`);
    const { width, height, maxValue } = records[0].image;
    const shape = { width, height, maxValue };
    const params = this.params(shape);
    const tags = records.map((r) => this.keys.recordKey.lookupTag(r.id));
    const { slots, collectionId } = await this.link.allocateSlots({ lookupTags: tags, ...shape });
    const ctx: ChangeContext = { shape, params, collectionId };
    const groups = new Map<number, { slot: number; record: NamedImage; tag: Buffer }[]>();
    slots.forEach((at, i) => {
      const members = groups.get(at.group) ?? [];
      // The same ID twice in one batch: the later image wins its slot.
      const same = members.findIndex((m) => m.slot === at.slot);
      if (same >= 0) members.splice(same, 1);
      members.push({ slot: at.slot, record: records[i], tag: tags[i] });
      groups.set(at.group, members);
    });
    // Two groups in flight: one is encrypted while the other travels to C2
    // and C1 and is checked and stored there, so the cores rarely wait. The
    // groups are stored in order all the same: C1's upload order is the tie
    // rule, and it must be the order of the files.
    const stored = [...groups.keys()].map(() => deferred());
    await mapConcurrent([...groups], GROUPS_IN_FLIGHT, async ([group, incoming], i) => {
      const ids = incoming.map((m) => m.record.id);
      const previous = i > 0 ? stored[i - 1].promise : Promise.resolve();
      let atC1 = false;
      try {
        const contents = await this.readGroup(group);
        const { members, memberTags } = this.keptMembers(
          contents,
          params,
          incoming.map((m) => m.tag),
        );
        for (const m of incoming) {
          members[m.slot] = m.record.image;
          memberTags[m.slot] = m.tag;
        }
        const underPk2 = this.encrypt.underPk2;
        const underPk1 = this.encrypt.underPk1;
        const [columns, owned] = await Promise.all([
          encryptGroup(
            members.map((m) => m?.pixels ?? null),
            params,
            underPk2,
            underPk1,
          ),
          Promise.all(
            incoming.map((m) =>
              encryptRecord(this.keys.recordKey, m.record.id, m.record.image.pixels, this.layouts.includes('paper') ? underPk2 : undefined),
            ),
          ),
        ]);
        const version = newGroupVersion();
        const change = (side: 'forC1' | 'forC2') => ({
          group,
          baseVersion: contents.version,
          version,
          columns: this.columnsToWire(side, columns[side]),
        });
        await previous;
        await this.putReplica(ctx, change('forC2'), memberTags);
        atC1 = true;
        const reply = await this.link.upload({
          keyFingerprint: this.keys.pk2.fingerprint(),
          ...shape,
          layouts: layoutsToWire(this.layouts),
          settings: this.settings && settingsToWire(this.settings),
          group: change('forC1'),
          records: incoming.map((m, i) =>
            this.codec.recordToWire(owned[i], sealImage(this.keys.recordKey, m.record.image, m.record.metadata), m.slot),
          ),
        });
        atC1 = false;
        await this.commitReplica(ctx, group, version, memberTags);
        const replaced = new Set(incoming.filter((m) => slots[tags.indexOf(m.tag)].stored).map((m) => m.record.id));
        done({ ids, ok: true, replaced, total: Number(reply.total) }, false);
      } catch (error) {
        // C1 failed or refused the change: C2 holds it pending, never served
        // unless C1 holds it. Refused as stale: another owner's change landed
        // at C1 first and may have lost its pending change at C2 to this one,
        // so C2 gets C1's state of this group (best effort; `fnn repair` otherwise).
        const stale = atC1 && isStaleChange(error);
        if (stale) await this.rewriteReplica(ctx, group).catch(() => undefined);
        await previous;
        done({ ids, ok: false, error }, stale);
      } finally {
        stored[i].resolve();
      }
    });
  }

  /**
   * C1 holds the change now: C2 is told to serve it. A lost message (C2 down
   * or cut off) changes nothing a query sees: C2 promotes its pending change
   * at the next session, when C1 presents that very version. C2 holding
   * another pending change (another owner's, sent meanwhile) gets C1's state
   * of the group instead. Best effort: C1's change stands either way.
   */
  private async commitReplica(ctx: ChangeContext, group: number, version: Uint8Array, memberTags: (Buffer | null)[]): Promise<void> {
    try {
      const { agrees } = await this.link.commitReplicaGroup({
        collectionId: ctx.collectionId,
        group,
        digest: digestOf(version, memberTags),
      });
      if (!agrees) await this.rewriteReplica(ctx, group);
    } catch {
      // The next session settles it; until then `fnn check` shows the group as pending.
    }
  }

  /**
   * C2's replica of a group set to what C1 holds now (its members, re-encrypted
   * under C1's key, with C1's version), staged and committed: after a change
   * C1 refused as stale, and by `fnn repair`. Safe to interrupt: a change
   * staged but not committed is C1's version, which C2 promotes at the next
   * session. Another owner's change to the group between this read and this
   * write wins at C1; the group then differs until `fnn repair` runs again.
   */
  private async rewriteReplica(ctx: ChangeContext, group: number): Promise<void> {
    const contents = await this.readGroup(group);
    const { members, memberTags } = this.keptMembers(contents, ctx.params, []);
    const columns =
      contents.members.length > 0
        ? this.columnsToWire(
            'forC2',
            await encryptReplica(
              members.map((m) => m?.pixels ?? null),
              ctx.params,
              this.encrypt.underPk1,
            ),
          )
        : undefined;
    // An empty group has no digest; C2 still wants a well-formed version.
    const version = contents.version.length > 0 ? contents.version : newGroupVersion();
    await this.putReplica(ctx, { group, baseVersion: contents.version, version, columns }, memberTags);
    const { agrees } = await this.link.commitReplicaGroup({ collectionId: ctx.collectionId, group, digest: digestOf(version, memberTags) });
    if (!agrees) throw protocolState(`group ${group} changed at C1 while its replica was rewritten; run \`fnn repair\` again`);
  }

  /**
   * `fnn repair`: every group C2 cannot serve as C1 holds it is rewritten at
   * C2 from C1's records (the owner's sealed images), and every group whose C1
   * version C2 holds pending is committed. Each group is its own change, so
   * an interrupted repair leaves every group old, new or pending-and-right,
   * and running it again finds nothing left to do.
   */
  async repair(onGroup: (group: number, action: 'rewritten' | 'committed') => void = () => {}): Promise<RepairReport> {
    const [c1, c2] = await Promise.all([this.link.listGroups(), this.link.listReplicaGroups()]);
    const comparison = compareReplicas(c1, c2);
    if (!comparison.sameCollection)
      throw protocolState(
        "C2's replica belongs to another collection: is --c2 this collection's C2? (start C2 on a new replica file to replace it)",
      );
    const report: RepairReport = { rewritten: [], committed: [] };
    if (comparison.groups.length === 0) return report;
    // C1 without a collection id has never been uploaded to: there is nothing to rewrite C2 from.
    if (c1.collectionId.length === 0) throw invalidInput('C1 holds no collection yet: upload it first, or start C2 on a new replica file');
    const shape =
      c1.width > 0
        ? { width: c1.width, height: c1.height, maxValue: c1.maxValue }
        : { width: c2.width, height: c2.height, maxValue: c2.maxValue };
    const ctx: ChangeContext = { shape, params: this.params(shape), collectionId: c1.collectionId };
    const digests = new Map(c1.groups.map((g) => [g.group, g.digest]));
    for (const verdict of comparison.groups) {
      if (verdict.state === 'pending') {
        const digest = digests.get(verdict.group) ?? '';
        const { agrees } = await this.link.commitReplicaGroup({ collectionId: ctx.collectionId, group: verdict.group, digest });
        if (agrees) {
          report.committed.push(verdict.group);
          onGroup(verdict.group, 'committed');
          continue;
        }
      }
      await this.rewriteReplica(ctx, verdict.group);
      report.rewritten.push(verdict.group);
      onGroup(verdict.group, 'rewritten');
    }
    return report;
  }

  private columnsToWire(side: 'forC1' | 'forC2', columns: PackedColumns): wire.PackedColumns {
    return (side === 'forC1' ? this.codec : this.replicaCodec).columnsToWire(columns);
  }

  /**
   * Delete records by ID: every group that loses a member is re-encrypted
   * from the members it keeps (or dropped), at C2 and then at C1, where the
   * whole delete is one transaction. An unknown ID deletes nothing.
   */
  async delete(ids: string[]): Promise<{ deleted: number; total: bigint }> {
    // An ID named twice is deleted once: C1 would refuse its second tag as unknown, after C2's groups changed.
    const tags = [...new Set(ids)].map((id) => this.keys.recordKey.lookupTag(id));
    const status = await this.link.status();
    const deleteAtC1 = (groups: wire.GroupChange[]) => this.link.delete({ lookupTags: tags, groups });
    // An empty collection, or an unknown ID: C1 refuses the delete (NOT_FOUND) before touching anything.
    if (status.width === 0) return deleteAtC1([]);
    const shape = { width: status.width, height: status.height, maxValue: status.maxValue };
    const { slots, collectionId } = await this.link.allocateSlots({ lookupTags: tags, ...shape });
    if (slots.some((s) => !s.stored)) return deleteAtC1([]);
    const params = this.params(shape);
    const ctx: ChangeContext = { shape, params, collectionId };
    const changes: wire.GroupChange[] = [];
    const commits: { group: number; version: Uint8Array; memberTags: (Buffer | null)[] }[] = [];
    for (const group of new Set(slots.map((s) => s.group))) {
      const contents = await this.readGroup(group);
      const { members, memberTags } = this.keptMembers(contents, params, tags);
      const version = newGroupVersion();
      const empty = members.every((m) => m === null);
      const columns = empty
        ? undefined
        : await encryptGroup(
            members.map((m) => m?.pixels ?? null),
            params,
            this.encrypt.underPk2,
            this.encrypt.underPk1,
          );
      const change = (side: 'forC1' | 'forC2') => ({
        group,
        baseVersion: contents.version,
        version,
        columns: columns ? this.columnsToWire(side, columns[side]) : undefined,
      });
      await this.putReplica(ctx, change('forC2'), memberTags);
      changes.push(change('forC1'));
      commits.push({ group, version, memberTags });
    }
    // C1 refusing or failing leaves C2 serving the groups as C1 still holds them: the pending changes are never served.
    const reply = await deleteAtC1(changes);
    for (const c of commits) await this.commitReplica(ctx, c.group, c.version, c.memberTags);
    return reply;
  }

  /**
   * A group's members by slot, their images opened from C1's sealed copies,
   * leaving out the records being replaced or deleted (`leaving`).
   */
  private keptMembers(contents: wire.GroupContents, params: PackingParams, leaving: Buffer[]) {
    const gone = new Set(leaving.map((t) => t.toString('hex')));
    const members: (GrayImage | null)[] = new Array(params.groupSize).fill(null);
    const memberTags: (Buffer | null)[] = new Array(params.groupSize).fill(null);
    for (const m of contents.members) {
      const tag = Buffer.from(m.lookupTag);
      if (gone.has(tag.toString('hex'))) continue;
      members[m.slot] = this.openMember(m);
      memberTags[m.slot] = tag;
    }
    return { members, memberTags };
  }

  private readGroup(group: number): Promise<wire.GroupContents> {
    return this.link.getGroup({ group });
  }

  /** A member's image from its sealed copy at C1 (only the owner's record key opens it). */
  private openMember(m: wire.GroupMember): GrayImage {
    try {
      return openSealedImage(this.keys.recordKey, m.sealedImage);
    } catch {
      throw invalidInput("a stored image does not open with this record key: is this the collection's key directory?");
    }
  }

  private putReplica(ctx: ChangeContext, group: wire.GroupChange, tags: (Buffer | null)[]) {
    return this.link.putReplicaGroup({
      keyFingerprint: this.keys.pk2.fingerprint(),
      pk1Fingerprint: this.keys.pk1.fingerprint(),
      ...ctx.shape,
      group,
      members: tags.flatMap((lookupTag, slot) => (lookupTag ? [{ slot, lookupTag }] : [])),
      collectionId: ctx.collectionId,
    });
  }
}

/** The digest C1 computes of a group with this version and members (§3.3); '' for a group left empty, which has none. */
function digestOf(version: Uint8Array, memberTags: (Buffer | null)[]): string {
  return memberTags.some((t) => t !== null) ? groupDigest(version, memberTags) : '';
}

import type * as wire from '@fnn/proto';
import { invalidInput, resourceExhausted } from '../errors';

// An UploadRequest above the message limit, in parts (Database.UploadInParts):
// the head is the request without its bulk, the records' pixels E(x_1) ..
// E(x_d) of the paper's layout (32 MiB a record at 256x256 and 2048 bits) and
// the group's distance column (one ciphertext per pixel); the bulk follows in
// parts of at most half the message limit. The owner splits, C1 assembles:
// one module, so that the two stay each other's inverse (upload-parts.test.ts).

/** The bytes an upload's byte fields hold: what decides whether it fits one message. */
export function uploadBytes(req: wire.UploadRequest): number {
  const sum = (list: Uint8Array[]) => list.reduce((n, b) => n + b.length, 0);
  const c = req.group?.columns;
  let bytes = req.group ? req.group.baseVersion.length + req.group.version.length : 0;
  if (c)
    bytes += sum(c.distance) + sum(c.bound) + sum(c.coarse) + c.distanceConstant.length + c.boundConstant.length + c.coarseConstant.length;
  for (const r of req.records)
    bytes += sum(r.pixels) + r.sum.length + r.spread.length + r.encryptedId.length + r.lookupTag.length + r.sealedImage.length;
  return bytes;
}

/**
 * Whether `req` goes in parts: its bytes above half the limit, the other half
 * headroom for protobuf's framing (a few bytes per value) and the small fields.
 */
export const needsParts = (req: wire.UploadRequest, limit: number): boolean => uploadBytes(req) > limit / 2;

/** The parts of `req`: its head, then its bulk in parts of at most half of `limit` in bytes (and at least one value each). */
export function* uploadParts(req: wire.UploadRequest, limit: number): Generator<wire.UploadPart> {
  const pixelsPerRecord = req.records[0]?.pixels.length ?? 0;
  if (req.records.some((r) => r.pixels.length !== pixelsPerRecord))
    throw invalidInput("an upload's records must all carry the paper's layout or all not");
  const columns = req.group?.columns;
  const head: wire.UploadHead = {
    request: {
      ...req,
      records: req.records.map((r) => ({ ...r, pixels: [] })),
      group: req.group && { ...req.group, columns: columns && { ...columns, distance: [] } },
    },
    pixelsPerRecord,
    distanceValues: columns?.distance.length ?? 0,
  };
  yield { part: { $case: 'head', value: head } };
  let values: Buffer[] = [];
  let bytes = 0;
  const budget = limit / 2;
  for (const value of [...req.records.flatMap((r) => r.pixels), ...(columns?.distance ?? [])]) {
    if (values.length > 0 && bytes + value.length + 8 > budget) {
      yield { part: { $case: 'values', value: { values } } };
      values = [];
      bytes = 0;
    }
    values.push(value);
    bytes += value.length + 8;
  }
  if (values.length > 0) yield { part: { $case: 'values', value: { values } } };
}

/**
 * C1's side: the parts of one UploadInParts call back into its request. Takes
 * no more than the head announced and no value wider than a ciphertext, so
 * what the caller can make C1 hold is bounded before the first value arrives.
 */
export class UploadAssembly {
  private head?: wire.UploadHead;
  private readonly bulk: Buffer[] = [];
  private expected = 0;

  constructor(
    /** The largest value: a ciphertext under C1's collection key. */
    private readonly valueBytes: number,
    /** The most the announced bulk may take, in bytes. */
    private readonly maxBytes: number,
  ) {}

  add(part: wire.UploadPart): void {
    const p = part.part;
    if (!p) throw invalidInput('an upload part carries nothing');
    if (p.$case === 'head') return this.takeHead(p.value);
    if (!this.head) throw invalidInput("an upload's values arrived before its head");
    if (this.bulk.length + p.value.values.length > this.expected)
      throw invalidInput(`the upload sent more values than its head announced (${this.expected})`);
    for (const v of p.value.values) {
      if (v.length > this.valueBytes) throw invalidInput('an upload value is wider than a ciphertext');
      this.bulk.push(v);
    }
  }

  /** The whole request, once every announced value has arrived. */
  finish(): wire.UploadRequest {
    if (!this.head?.request) throw invalidInput('an upload in parts ended before its head');
    if (this.bulk.length !== this.expected)
      throw invalidInput(`the upload ended after ${this.bulk.length} of the ${this.expected} values its head announced`);
    const { request, pixelsPerRecord } = this.head;
    let at = 0;
    const take = (n: number) => this.bulk.slice(at, (at += n));
    const records = request.records.map((r) => (pixelsPerRecord > 0 ? { ...r, pixels: take(pixelsPerRecord) } : r));
    const columns = request.group?.columns;
    const group = request.group && {
      ...request.group,
      columns: columns && (this.head.distanceValues > 0 ? { ...columns, distance: take(this.head.distanceValues) } : columns),
    };
    return { ...request, records, group };
  }

  private takeHead(head: wire.UploadHead): void {
    if (this.head) throw invalidInput('an upload in parts has one head');
    if (!head.request) throw invalidInput("an upload's head carries no request");
    const { records, group } = head.request;
    if (head.pixelsPerRecord > 0 && records.some((r) => r.pixels.length > 0))
      throw invalidInput("an upload's head carries pixels it announces to send apart");
    if (head.distanceValues > 0 && !group?.columns)
      throw invalidInput("an upload's head announces a distance column for a group without columns");
    if (head.distanceValues > 0 && group!.columns!.distance.length > 0)
      throw invalidInput("an upload's head carries the distance column it announces to send apart");
    this.expected = records.length * head.pixelsPerRecord + head.distanceValues;
    // Checked before any value is taken: a head may announce no more than C1 holds for one upload.
    if (this.expected * this.valueBytes > this.maxBytes)
      throw resourceExhausted(
        `an upload of ${records.length} records in parts would take up to ${mib(this.expected * this.valueBytes)} at C1, more than the ${mib(this.maxBytes)} C1 takes in one upload`,
      );
    this.head = head;
  }
}

const mib = (bytes: number) => `${Math.ceil(bytes / 2 ** 20)} MiB`;

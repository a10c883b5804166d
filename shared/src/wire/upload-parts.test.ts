import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type * as wire from '@fnn/proto';
import { isFnnError } from '../errors';
import { needsParts, UploadAssembly, uploadBytes, uploadParts } from './upload-parts';

// An upload above the message limit travels in parts (Database.UploadInParts):
// the owner's split and C1's assembly must be each other's inverse, every part
// must fit the limit, and C1 must refuse whatever does not add up before it
// holds more than the head announced.

const CIPHER = 64; // bytes of a ciphertext in these requests
const D = 40; // pixels per record
const LIMIT = 4096;

const values = (n: number) => Array.from({ length: n }, () => randomBytes(CIPHER));

function request(records: number, paper: boolean): wire.UploadRequest {
  return {
    keyFingerprint: 'fp',
    width: 8,
    height: 5,
    maxValue: 255,
    layouts: [],
    settings: undefined,
    records: Array.from({ length: records }, (_, i) => ({
      encryptedId: randomBytes(40),
      lookupTag: randomBytes(32),
      pixels: paper ? values(D) : [],
      sum: paper ? randomBytes(CIPHER) : Buffer.alloc(0),
      spread: paper ? randomBytes(CIPHER) : Buffer.alloc(0),
      sealedImage: randomBytes(120),
      slot: i,
    })),
    group: {
      group: 3,
      baseVersion: Buffer.alloc(0),
      version: randomBytes(16),
      columns: {
        distance: values(D),
        bound: values(6),
        coarse: values(2),
        distanceConstant: randomBytes(CIPHER),
        boundConstant: randomBytes(CIPHER),
        coarseConstant: randomBytes(CIPHER),
      },
    },
  };
}

const assemble = (parts: Iterable<wire.UploadPart>, maxBytes = 2 ** 20) => {
  const assembly = new UploadAssembly(CIPHER, maxBytes);
  for (const part of parts) assembly.add(part);
  return assembly.finish();
};

const refusal = (run: () => unknown): { kind: string; message: string } => {
  try {
    run();
  } catch (error) {
    if (isFnnError(error)) return { kind: error.kind, message: error.message };
    throw error;
  }
  throw new Error('expected a refusal');
};

const valuesPart = (list: Buffer[]): wire.UploadPart => ({ part: { $case: 'values', value: { values: list } } });

describe('an upload in parts', () => {
  it.each([
    ['paper layout, several records', 3, true],
    ['packed layout only', 2, false],
  ])('%s: C1 assembles exactly the request the owner split', (_name, records, paper) => {
    const req = request(records, paper);
    const parts = [...uploadParts(req, LIMIT)];
    expect(parts[0].part?.$case, 'the head first').toBe('head');
    expect(
      parts.slice(1).every((p) => p.part?.$case === 'values'),
      'then only values',
    ).toBe(true);
    expect(parts.length, 'the bulk split into several parts').toBeGreaterThan(2);
    expect(assemble(parts)).toEqual(req);
  });

  it('every values part stays within half the limit, framing counted', () => {
    for (const part of [...uploadParts(request(3, true), LIMIT)].slice(1)) {
      const list = part.part?.$case === 'values' ? part.part.value.values : [];
      expect(list.reduce((n, v) => n + v.length + 8, 0)).toBeLessThanOrEqual(LIMIT / 2);
    }
  });

  it('a request goes in parts only when its bytes pass half the limit', () => {
    const small = request(1, false);
    expect(needsParts(small, 2 * uploadBytes(small) + 2)).toBe(false);
    expect(needsParts(small, 2 * uploadBytes(small) - 2)).toBe(true);
    expect(uploadBytes(request(2, true)), 'two records of the paper layout weigh more than one').toBeGreaterThan(
      uploadBytes(request(1, true)),
    );
  });

  it('values before the head are refused', () => {
    const [, first] = uploadParts(request(1, true), LIMIT);
    expect(refusal(() => new UploadAssembly(CIPHER, 2 ** 20).add(first)).message).toMatch(/before its head/);
  });

  it('a second head is refused', () => {
    const [head] = uploadParts(request(1, true), LIMIT);
    expect(refusal(() => assemble([head, head])).message).toMatch(/one head/);
  });

  it('more values than the head announced are refused as they arrive', () => {
    const parts = [...uploadParts(request(1, true), LIMIT)];
    expect(refusal(() => assemble([...parts, valuesPart(values(1))])).message).toMatch(/more values than its head announced \(80\)/);
  });

  it('a stream that ends short stores nothing: finish refuses it', () => {
    const parts = [...uploadParts(request(2, true), LIMIT)];
    const r = refusal(() => assemble(parts.slice(0, -1)));
    expect(r.kind).toBe('invalid-input');
    expect(r.message).toMatch(/ended after \d+ of the 120 values/);
    expect(refusal(() => new UploadAssembly(CIPHER, 2 ** 20).finish()).message).toMatch(/before its head/);
  });

  it('a value wider than a ciphertext is refused', () => {
    const [head] = uploadParts(request(1, true), LIMIT);
    expect(refusal(() => assemble([head, valuesPart([randomBytes(CIPHER + 1)])])).message).toMatch(/wider than a ciphertext/);
  });

  it('a head announcing more than C1 takes in one upload is refused before any value (RESOURCE_EXHAUSTED)', () => {
    const [head] = uploadParts(request(3, true), LIMIT);
    // 3 records x 40 pixels + 40 column values, 64 bytes each: 10,240 bytes announced.
    const r = refusal(() => new UploadAssembly(CIPHER, 10_239).add(head));
    expect(r.kind).toBe('resource-exhausted');
    expect(r.message).toMatch(/3 records in parts would take up to 1 MiB at C1, more than the 1 MiB C1 takes in one upload/);
    expect(() => new UploadAssembly(CIPHER, 10_240).add(head), 'exactly the bound is taken').not.toThrow();
  });

  it('a head that carries the pixels it announces to send apart is refused', () => {
    const req = request(1, true);
    const head: wire.UploadPart = { part: { $case: 'head', value: { request: req, pixelsPerRecord: D, distanceValues: 0 } } };
    expect(refusal(() => assemble([head])).message).toMatch(/carries pixels it announces to send apart/);
  });

  it('records that do not all carry the paper layout are not split', () => {
    const req = request(2, true);
    req.records[1].pixels = [];
    expect(refusal(() => [...uploadParts(req, LIMIT)]).message).toMatch(/all carry the paper's layout or all not/);
  });
});

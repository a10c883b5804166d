import { status as Code } from '@grpc/grpc-js';
import { paperReply } from '@fnn/server-common/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type * as wire from '@fnn/proto';
import { cipherToBytes } from '@fnn/shared';
import { G, startC2Fixture, UNKNOWN_TICKET, expectCode, type C2Fixture } from './testing/fixtures';

// C2's SecureComputation against a C1 that breaks the protocol: C2 alone on
// 127.0.0.1:0, its replica holding two groups written by the owner; the test
// is the misbehaving C1. Each refusal ends the session with its code after C2
// answered every message before the bad one, and C2 then still runs a valid
// session and answers Status. (That C1's full queries stay exact through such
// a C2: server-c1/src/c2-refused-sessions.test.ts.)

/** Group 0 full, group 1 partly filled. */
const RECORDS = G + 2;

let f: C2Fixture;

beforeAll(async () => {
  f = await startC2Fixture(RECORDS);
});

afterAll(async () => {
  await f?.stop();
});

interface SessionCase {
  name: string;
  code: Code;
  messages: () => wire.C1Message[] | Promise<wire.C1Message[]>;
}

const zeros = () => Buffer.alloc(f.pk.cipherBytes);
const allOnes = () => Buffer.alloc(f.pk.cipherBytes, 0xff);
const factorOfN = () => Buffer.from(cipherToBytes(BigInt(f.sk.toJSON().p), f.pk.cipherBytes));

const outOfOrder = (name: string, messages: () => wire.C1Message[]): SessionCase => ({
  name,
  code: Code.FAILED_PRECONDITION,
  messages,
});
const badCipher = (name: string, bytes: () => Buffer): SessionCase => ({
  name,
  code: Code.INVALID_ARGUMENT,
  messages: () => [f.messages.open('s'), f.messages.square('s', [f.messages.validCipher(), bytes()])],
});

const sessionCases: SessionCase[] = [
  outOfOrder('first message is a square, not open', () => [f.messages.square('s', [f.messages.validCipher()])]),
  outOfOrder('first message is bounds, not open', () => [f.messages.bounds('s')]),
  outOfOrder('a distance before bounds', () => [f.messages.open('s'), f.messages.distance('s')]),
  outOfOrder('open twice', () => [f.messages.open('s'), f.messages.open('s')]),
  outOfOrder('a message for another session', () => [f.messages.open('s'), f.messages.square('other', [f.messages.validCipher()])]),
  outOfOrder('fast bounds before fast open', () => [f.messages.fastBounds('s')]),
  badCipher('a ciphertext equal to 0', zeros),
  badCipher('a ciphertext >= N^2', allOnes),
  badCipher('a ciphertext sharing a factor with N', factorOfN),
  badCipher('a ciphertext of the wrong byte length', () => Buffer.alloc(5, 1)),
  {
    name: 'open under another key',
    code: Code.INVALID_ARGUMENT,
    messages: () => [f.messages.open('s', '0123456789abcdef')],
  },
  {
    name: 'fast open naming another key of C1',
    code: Code.INVALID_ARGUMENT,
    messages: async () => [f.messages.fastOpen('s', await f.depositedShare(), [], f.pk)],
  },
  {
    name: 'fast open with an unknown share ticket',
    code: Code.NOT_FOUND,
    messages: () => [f.messages.fastOpen('s', UNKNOWN_TICKET, [])],
  },
  {
    name: "fast open with a group layout that differs from C2's replica",
    code: Code.FAILED_PRECONDITION,
    messages: async () => [
      f.messages.fastOpen('s', await f.depositedShare(), [
        { group: 0, members: Array.from({ length: G }, (_, i) => i), digest: '00'.repeat(16) },
      ]),
    ],
  },
];

/** C2 still serves: a valid session squares exactly, Status answers with its key and the replica, no session is left open. */
async function expectServing(what: string): Promise<void> {
  const value = 12345n;
  const { replies, error } = await f.rawSession([
    f.messages.open('good'),
    f.messages.square('good', [f.codec.cipher(f.pk.encrypt(value))]),
  ]);
  expect(error, `${what}: a valid session failed: ${error?.details}`).toBeUndefined();
  expect(
    replies.map((r) => paperReply(r)?.$case),
    `${what}: a valid session must get opened, then products`,
  ).toEqual(['opened', 'products']);
  const second = paperReply(replies[1]);
  const products = second?.$case === 'products' ? second.value.values : [];
  expect(f.sk.decrypt(f.codec.fromCipher(products[0])), `${what}: C2 must square the blinded value`).toBe(value * value);
  const s = await f.keyHolderStatus();
  expect(s.keyFingerprint, `${what}: C2 Status must still answer with its key`).toBe(f.pk.fingerprint());
  expect(s.replicaRecords, `${what}: C2's replica is as the owner wrote it`).toBe(BigInt(RECORDS));
  expect(s.openSessions, `${what}: no session is left open`).toBe(0);
}

describe('SecureComputation refuses a C1 that breaks the protocol', () => {
  it.each(sessionCases.map((c) => [c.name, c] as const))('%s', async (name, c) => {
    const messages = await c.messages();
    const { replies, error } = await f.rawSession(messages);
    expect(error, `${name}: C2 must end the session with an error`).toBeDefined();
    expectCode(error!, c.code, name);
    expect(replies.length, `${name}: C2 must answer every message before the bad one`).toBe(messages.length - 1);
    await expectServing(`after "${name}"`);
  });

  it("keeps serving after all the refused sessions: a valid session, Status, and a doctor's share", async () => {
    for (const c of sessionCases) {
      const { error } = await f.rawSession(await c.messages());
      expect(error, `${c.name}: C2 must end the session with an error`).toBeDefined();
      expectCode(error!, c.code, c.name);
    }
    await expectServing('after every refused session');
    expect(await f.depositedShare(), "C2 still takes a doctor's share").toMatch(/^[0-9a-f]{32}$/);
  });
});

import { status as Code } from '@grpc/grpc-js';
import { paperReply } from '@fnn/server-common/testing';
import { describe, expect, it } from 'vitest';
import * as wire from '@fnn/proto';
import { D, G, expectCode, randomImage, shareTicketOf, useFixture, UNKNOWN_TICKET, type Fixture, BF, FAST } from './testing/fixtures';

// C1's queries through a C2 that has just refused a misbehaving C1's
// sessions (a paper session out of order, a bad ciphertext, fast sessions
// with an unknown ticket and with a layout that differs from C2's replica):
// C2 still runs a valid session and answers Status, and C1's BF and FAST
// queries through it are exact. Every rule of C2's session, case by case:
// server-c2/src/session.test.ts.

let f: Fixture;

useFixture({}, (started) => (f = started));

describe('C1 through a C2 that refused a misbehaving C1', () => {
  it('keeps serving after the refused sessions: a valid session, Status and full queries', async () => {
    const validCipher = () => f.codec.cipher(f.pk.encrypt(3n));
    const ticket = shareTicketOf(await f.fastRequest(randomImage(D)));
    const refused: [string, Code, wire.C1Message[]][] = [
      ['first message is a square, not open', Code.FAILED_PRECONDITION, [f.messages.square('s', [validCipher()])]],
      [
        'a ciphertext equal to 0',
        Code.INVALID_ARGUMENT,
        [f.messages.open('s'), f.messages.square('s', [validCipher(), Buffer.alloc(f.pk.cipherBytes)])],
      ],
      ['fast open with an unknown share ticket', Code.NOT_FOUND, [f.messages.fastOpen('s', UNKNOWN_TICKET, [])]],
      [
        "fast open with a group layout that differs from C2's replica",
        Code.FAILED_PRECONDITION,
        [f.messages.fastOpen('s', ticket, [{ group: 0, members: Array.from({ length: G }, (_, i) => i), digest: '00'.repeat(16) }])],
      ],
    ];
    for (const [name, code, messages] of refused) {
      const { replies, error } = await f.rawSession(messages);
      expect(error, `${name}: C2 must end the session with an error`).toBeDefined();
      expectCode(error!, code, name);
      expect(replies.length, `${name}: C2 must answer every message before the bad one`).toBe(messages.length - 1);
    }

    const value = 12345n;
    const { replies, error } = await f.rawSession([
      f.messages.open('good'),
      f.messages.square('good', [f.codec.cipher(f.pk.encrypt(value))]),
    ]);
    expect(error, `a valid session failed after the refused ones: ${error?.details}`).toBeUndefined();
    expect(
      replies.map((r) => paperReply(r)?.$case),
      'a valid session must get opened, then products',
    ).toEqual(['opened', 'products']);
    const second = paperReply(replies[1]);
    const products = second?.$case === 'products' ? second.value.values : [];
    expect(f.sk.decrypt(f.codec.fromCipher(products[0])), 'C2 must square the blinded value').toBe(value * value);
    const s = await f.keyHolderStatus();
    expect(s.keyFingerprint, 'C2 Status must still answer with its key').toBe(f.pk.fingerprint());
    await f.expectExactNeighbours(randomImage(D), BF, 1, 'BF query after refused sessions');
    await f.expectExactNeighbours(randomImage(D), FAST, 1, 'FAST query after refused sessions');
  });
});

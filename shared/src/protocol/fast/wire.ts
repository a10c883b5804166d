import type * as wire from '@fnn/proto';
import { invalidInput, protocolState } from '../../errors';
import type { WireCodec } from '../../wire/codec';
import type { C1Message, C2Message, Contribution, FastC1Body, FastC2Body } from '../messages';
import type { SessionWire } from '../module';

// The fast protocol's session messages (FastC1Message, FastC2Message) to and
// from the wire: ciphertexts as fixed-width bytes, every one checked for its width.

const contributionToWire = (codec: WireCodec, c: Contribution): wire.Contribution => ({
  group: c.group,
  masked: codec.cipher(c.masked),
  negatedMask: codec.cipher(c.negatedMask),
});
const contributionFromWire = (codec: WireCodec, c: wire.Contribution): Contribution => ({
  group: c.group,
  masked: codec.fromCipher(c.masked),
  negatedMask: codec.fromCipher(c.negatedMask),
});

function c1BodyToWire(codec: WireCodec, b: FastC1Body): wire.FastC1Message['body'] {
  switch (b.kind) {
    case 'fast-open':
      return {
        $case: 'open',
        value: {
          keyFingerprint: b.keyFingerprint,
          pk1Fingerprint: b.pk1Fingerprint,
          k: b.k,
          requestId: b.requestId,
          shareTicket: b.shareTicket,
          groups: b.groups,
          collectionId: b.collectionId,
        },
      };
    case 'fast-bounds':
      return { $case: 'bounds', value: { items: b.items.map((i) => ({ group: i.group, value: codec.cipher(i.value) })) } };
    case 'fast-refined':
      return { $case: 'refined', value: { items: b.items.map((i) => ({ group: i.group, value: codec.cipher(i.value) })) } };
    case 'fast-distance':
      return { $case: 'distance', value: { group: b.group, value: codec.cipher(b.value) } };
    case 'finish':
      return { $case: 'finish', value: {} };
  }
}

function c1BodyFromWire(codec: WireCodec, body: wire.FastC1Message['body']): FastC1Body {
  if (!body) throw invalidInput('message without a body');
  switch (body.$case) {
    case 'open':
      return {
        kind: 'fast-open',
        ...body.value,
        groups: body.value.groups.map((g) => ({ group: g.group, members: g.members, digest: g.digest })),
      };
    case 'bounds':
      return { kind: 'fast-bounds', items: body.value.items.map((i) => ({ group: i.group, value: codec.fromCipher(i.value) })) };
    case 'refined':
      return { kind: 'fast-refined', items: body.value.items.map((i) => ({ group: i.group, value: codec.fromCipher(i.value) })) };
    case 'distance':
      return { kind: 'fast-distance', group: body.value.group, value: codec.fromCipher(body.value.value) };
    case 'finish':
      return { kind: 'finish' };
  }
}

function c2BodyToWire(codec: WireCodec, b: FastC2Body): wire.FastC2Message['body'] {
  switch (b.kind) {
    case 'fast-contributions':
      return { $case: 'contributions', value: { items: b.items.map((c) => contributionToWire(codec, c)) } };
    case 'fast-next':
      return {
        $case: 'next',
        value: {
          done: b.done,
          contribution: b.contribution && contributionToWire(codec, b.contribution),
          refine: (b.refine ?? []).map((c) => contributionToWire(codec, c)),
          rejected: BigInt(b.rejected),
        },
      };
    case 'ranking':
      return { $case: 'ranking', value: { candidates: b.candidates } };
  }
}

function c2BodyFromWire(codec: WireCodec, body: wire.FastC2Message['body']): FastC2Body {
  if (!body) throw invalidInput('reply without a body');
  switch (body.$case) {
    case 'contributions':
      return { kind: 'fast-contributions', items: body.value.items.map((c) => contributionFromWire(codec, c)) };
    case 'next':
      return {
        kind: 'fast-next',
        done: body.value.done,
        contribution: body.value.contribution && contributionFromWire(codec, body.value.contribution),
        ...(body.value.refine.length > 0 ? { refine: body.value.refine.map((c) => contributionFromWire(codec, c)) } : {}),
        rejected: Number(body.value.rejected),
      };
    case 'ranking':
      return { kind: 'ranking', candidates: body.value.candidates };
  }
}

const fastOnly = (family: string) => protocolState(`a ${family} message in a fast session`);

export const fastWire: SessionWire = {
  c1ToWire(codec, m: C1Message) {
    if (m.family !== 'fast') throw fastOnly(m.family);
    return { $case: 'fast', value: { body: c1BodyToWire(codec, m.body) } };
  },
  c1FromWire(codec, sessionId, w) {
    if (w.$case !== 'fast') throw fastOnly(w.$case);
    return { sessionId, family: 'fast', body: c1BodyFromWire(codec, w.value.body) };
  },
  c2ToWire(codec, m: C2Message) {
    if (m.family !== 'fast') throw fastOnly(m.family);
    return { $case: 'fast', value: { body: c2BodyToWire(codec, m.body) } };
  },
  c2FromWire(codec, sessionId, w) {
    if (w.$case !== 'fast') throw fastOnly(w.$case);
    return { sessionId, family: 'fast', body: c2BodyFromWire(codec, w.value.body) };
  },
};

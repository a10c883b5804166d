import * as wire from '@fnn/proto';
import { invalidInput, protocolState } from '../../errors';
import type { WireCodec } from '../../wire/codec';
import type { C1Message, C2Message, MaskedScore, PaperC1Body, PaperC2Body, PaperStep } from '../messages';
import type { SessionWire } from '../module';

// The paper's session messages (PaperC1Message, PaperC2Message) to and from
// the wire: ciphertexts as fixed-width bytes, every one checked for its width.

const STEP_TO_WIRE: Record<PaperStep, wire.PaperStep> = {
  open: wire.PaperStep.PAPER_STEP_OPEN,
  'ssed-sm': wire.PaperStep.PAPER_STEP_SSED_SM,
  'ssedlb-sm': wire.PaperStep.PAPER_STEP_SSEDLB_SM,
  'fnn-bounds': wire.PaperStep.PAPER_STEP_FNN_BOUNDS,
  'fnn-distance': wire.PaperStep.PAPER_STEP_FNN_DISTANCE,
  'bf-distance': wire.PaperStep.PAPER_STEP_BF_DISTANCE,
  result: wire.PaperStep.PAPER_STEP_RESULT,
  retrieval: wire.PaperStep.PAPER_STEP_RETRIEVAL,
};
const STEP_FROM_WIRE = new Map<wire.PaperStep, PaperStep>(Object.entries(STEP_TO_WIRE).map(([k, v]) => [v, k as PaperStep]));

function stepFromWire(step: wire.PaperStep): PaperStep {
  const s = STEP_FROM_WIRE.get(step);
  if (!s) throw invalidInput('message without a known step');
  return s;
}

const scoreToWire = (codec: WireCodec, s: MaskedScore): wire.MaskedScore => ({ candidate: s.candidate, value: codec.cipher(s.value) });
const scoreFromWire = (codec: WireCodec, s: wire.MaskedScore): MaskedScore => ({
  candidate: s.candidate,
  value: codec.fromCipher(s.value),
});

function c1BodyToWire(codec: WireCodec, b: PaperC1Body): wire.PaperC1Message['body'] {
  switch (b.kind) {
    case 'open':
      return { $case: 'open', value: { keyFingerprint: b.keyFingerprint, k: b.k, requestId: b.requestId } };
    case 'square':
      return { $case: 'square', value: { values: codec.ciphers(b.values) } };
    case 'multiply':
      return { $case: 'multiply', value: { a: codec.ciphers(b.a), b: codec.ciphers(b.b) } };
    case 'bounds':
      return {
        $case: 'bounds',
        value: { seeds: b.seeds.map((s) => scoreToWire(codec, s)), bounds: b.bounds.map((s) => scoreToWire(codec, s)) },
      };
    case 'distance':
      return { $case: 'distance', value: scoreToWire(codec, b.score) };
    case 'finish':
      return { $case: 'finish', value: {} };
    case 'retrieval-open':
      return { $case: 'retrievalOpen', value: { images: b.images, pixels: b.pixels, chunkValues: b.chunkValues } };
    case 'retrieval-chunk':
      return { $case: 'retrievalChunk', value: { index: b.index, values: codec.ciphers(b.values) } };
  }
}

function c1BodyFromWire(codec: WireCodec, body: wire.PaperC1Message['body']): PaperC1Body {
  if (!body) throw invalidInput('message without a body');
  switch (body.$case) {
    case 'open':
      return { kind: 'open', keyFingerprint: body.value.keyFingerprint, k: body.value.k, requestId: body.value.requestId };
    case 'square':
      return { kind: 'square', values: codec.fromCiphers(body.value.values) };
    case 'multiply':
      return { kind: 'multiply', a: codec.fromCiphers(body.value.a), b: codec.fromCiphers(body.value.b) };
    case 'bounds':
      return {
        kind: 'bounds',
        seeds: body.value.seeds.map((s) => scoreFromWire(codec, s)),
        bounds: body.value.bounds.map((s) => scoreFromWire(codec, s)),
      };
    case 'distance':
      return { kind: 'distance', score: scoreFromWire(codec, body.value) };
    case 'finish':
      return { kind: 'finish' };
    case 'retrievalOpen':
      return { kind: 'retrieval-open', images: body.value.images, pixels: body.value.pixels, chunkValues: body.value.chunkValues };
    case 'retrievalChunk':
      return { kind: 'retrieval-chunk', index: body.value.index, values: codec.fromCiphers(body.value.values) };
  }
}

function c2BodyToWire(codec: WireCodec, b: PaperC2Body): wire.PaperC2Message['body'] {
  switch (b.kind) {
    case 'opened':
      return { $case: 'opened', value: {} };
    case 'products':
      return { $case: 'products', value: { values: codec.ciphers(b.values) } };
    case 'next':
      return { $case: 'next', value: { done: b.done, candidate: b.candidate, rejected: BigInt(b.rejected) } };
    case 'ranking':
      return { $case: 'ranking', value: { candidates: b.candidates } };
    case 'accepted':
      return { $case: 'accepted', value: { next: b.next, chunks: b.chunks } };
    case 'ticket':
      return { $case: 'ticket', value: { ticket: b.ticket } };
  }
}

function c2BodyFromWire(codec: WireCodec, body: wire.PaperC2Message['body']): PaperC2Body {
  if (!body) throw invalidInput('reply without a body');
  switch (body.$case) {
    case 'opened':
      return { kind: 'opened' };
    case 'products':
      return { kind: 'products', values: codec.fromCiphers(body.value.values) };
    case 'next':
      return { kind: 'next', done: body.value.done, candidate: body.value.candidate, rejected: Number(body.value.rejected) };
    case 'ranking':
      return { kind: 'ranking', candidates: body.value.candidates };
    case 'accepted':
      return { kind: 'accepted', next: body.value.next, chunks: body.value.chunks };
    case 'ticket':
      return { kind: 'ticket', ticket: body.value.ticket };
  }
}

/** One family's messages: a session of another family is a protocol-state error, not a crash. */
const paperOnly = (family: string) => protocolState(`a ${family} message in a session of the paper's protocols`);

export const paperWire: SessionWire = {
  c1ToWire(codec, m: C1Message) {
    if (m.family !== 'paper') throw paperOnly(m.family);
    return { $case: 'paper', value: { step: STEP_TO_WIRE[m.step], body: c1BodyToWire(codec, m.body) } };
  },
  c1FromWire(codec, sessionId, w) {
    if (w.$case !== 'paper') throw paperOnly(w.$case);
    return { sessionId, family: 'paper', step: stepFromWire(w.value.step), body: c1BodyFromWire(codec, w.value.body) };
  },
  c2ToWire(codec, m: C2Message) {
    if (m.family !== 'paper') throw paperOnly(m.family);
    return { $case: 'paper', value: { step: STEP_TO_WIRE[m.step], body: c2BodyToWire(codec, m.body) } };
  },
  c2FromWire(codec, sessionId, w) {
    if (w.$case !== 'paper') throw paperOnly(w.$case);
    return { sessionId, family: 'paper', step: stepFromWire(w.value.step), body: c2BodyFromWire(codec, w.value.body) };
  },
};

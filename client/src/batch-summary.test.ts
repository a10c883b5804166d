import { Metadata, status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { FnnError } from '@fnn/shared';
import { BatchTally, failureCode, humanSummary } from './batch-summary';
import { CliError } from './output';

describe('batch summary', () => {
  it('counts answered and failed queries, failures per code, median and max latency', () => {
    const tally = new BatchTally(1000);
    for (let i = 0; i < 6; i++) tally.ask();
    for (const ms of [400, 100, 300, 200]) tally.answered(ms);
    tally.failed('UNAVAILABLE');
    tally.failed('INVALID_ARGUMENT');
    const s = tally.summary(4500);
    expect(s).toEqual({
      answered: 4,
      total: 6,
      failures: { INVALID_ARGUMENT: 1, UNAVAILABLE: 1 },
      medianMs: 250,
      maxMs: 400,
      elapsedMs: 3500,
    });
    expect(tally.failedCount).toBe(2);
    expect(humanSummary(s)).toBe(
      '4 of 6 queries answered; failed: INVALID_ARGUMENT 1, UNAVAILABLE 1; latency median 0.3 s, max 0.4 s; total 3.5 s',
    );
  });

  it('takes the middle latency of an odd count and has none when nothing was answered', () => {
    const odd = new BatchTally(0);
    for (const ms of [5, 1, 3]) odd.answered(ms);
    expect(odd.summary(10)).toMatchObject({ medianMs: 3, maxMs: 5 });
    const none = new BatchTally(0);
    none.ask();
    none.failed('NOT_FOUND');
    expect(none.summary(10)).toMatchObject({ answered: 0, total: 1, medianMs: null, maxMs: null });
    expect(humanSummary(none.summary(10))).toBe('0 of 1 queries answered; failed: NOT_FOUND 1; total 0.0 s');
  });

  it('names a failure by its gRPC code; input refused before sending counts as INVALID_ARGUMENT', () => {
    const grpc = Object.assign(new Error('x'), { code: status.DEADLINE_EXCEEDED, details: 'late', metadata: new Metadata() });
    expect(failureCode(grpc)).toBe('DEADLINE_EXCEEDED');
    expect(failureCode(new CliError('invalid', 'query is 5x5'))).toBe('INVALID_ARGUMENT');
    expect(failureCode(new CliError('usage', 'x.png: cannot be read'))).toBe('INVALID_ARGUMENT');
    expect(failureCode(new FnnError('not-found', 'ticket'))).toBe('NOT_FOUND');
    expect(failureCode(new Error('boom'))).toBe('UNKNOWN');
  });
});

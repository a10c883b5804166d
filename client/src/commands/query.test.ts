import { describe, expect, it } from 'vitest';
import { human, type QueryResult } from './query';

// How one answer reads on a terminal.

const result = (protocol: string, bound: boolean): QueryResult => ({
  query: 'q.png',
  results: [{ id: 'ch2-z166.png', distance: '42', image: 'out/q-nn1-ch2-z166.png' }],
  sheet: null,
  protocol,
  rejected: 0,
  total: 3,
  ...(bound ? { lowerBoundMs: 5 } : {}),
  elapsedMs: 1500,
});

describe('the human lines of a query', () => {
  it('bf has no bound and says nothing of one', () => {
    expect(human(result('bf', false))).toBe('q.png: bf, 3 records, 1.5 s\n  1. ch2-z166.png  distance 42  -> out/q-nn1-ch2-z166.png');
  });

  it('fnn says how many records its bound rejected', () => {
    expect(human(result('fnn', true)).split('\n')[0]).toBe('q.png: fnn, 3 records, 0 rejected by the bound, 1.5 s');
  });
});

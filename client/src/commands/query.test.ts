import { describe, expect, it } from 'vitest';
import { human, rmsPerPixel, type QueryResult } from './query';

// How one answer reads on a terminal.

const result = (protocol: string, bound: boolean): QueryResult => ({
  query: 'q.png',
  results: [
    { id: 'ch2-z166.png', distance: '42', rmsPerPixel: rmsPerPixel(42n, 16), image: 'out/q-nn1-ch2-z166.png', metadata: {} },
    {
      id: '1.2.826.0.1.3680043.8.498.1',
      distance: '2222936110',
      rmsPerPixel: rmsPerPixel(2222936110n, 65536),
      image: null,
      metadata: { modality: 'MR', bodyPart: 'HEAD', studyDescription: 'Brain T1', studyDate: '2024-03-05', label: 'glioma' },
    },
  ],
  sheet: null,
  protocol,
  rejected: 0,
  total: 3,
  ...(bound ? { lowerBoundMs: 5 } : {}),
  elapsedMs: 1500,
});

describe('the human lines of a query', () => {
  it('bf has no bound and says nothing of one', () => {
    expect(human(result('bf', false)).split('\n')[0]).toBe('q.png: bf, 3 records, 1.5 s');
  });

  it('each result: its squared distance and RMS per pixel, then what its record says, on a line of its own', () => {
    expect(human(result('bf', false)).split('\n').slice(1)).toEqual([
      '  1. ch2-z166.png  distance 42 (RMS 1.62 per pixel)  -> out/q-nn1-ch2-z166.png',
      '  2. 1.2.826.0.1.3680043.8.498.1  distance 2222936110 (RMS 184 per pixel)',
      '     MR · HEAD · "Brain T1" · 2024-03-05 · label: glioma',
    ]);
    expect([rmsPerPixel(0n, 4), rmsPerPixel(400n, 4)]).toEqual([0, 10]);
  });

  it('fnn says how many records its bound rejected', () => {
    expect(human(result('fnn', true)).split('\n')[0]).toBe('q.png: fnn, 3 records, 0 rejected by the bound, 1.5 s');
  });
});

import { describe, expect, it } from 'vitest';
import { medianStages, REMAINDER, stagesOf } from './stages';

describe("stage split: today's stats (one bound stage)", () => {
  it('splits a fast query into the bound and the remainder, with the records each looked at', () => {
    const reply = { elapsedMs: 1000, lowerBoundMs: 700, rejected: 90, total: 100 };
    expect(stagesOf(reply)).toEqual([
      { name: 'bound', ms: 700, records: 100, rejected: 90 },
      { name: REMAINDER, ms: 300, records: 10 },
    ]);
  });

  it('gives a protocol without a bound (bf) one stage, all of its time over every record', () => {
    expect(stagesOf({ elapsedMs: 250, rejected: 0, total: 8 })).toEqual([{ name: REMAINDER, ms: 250, records: 8 }]);
  });

  it('refuses a reply without the query time', () => {
    expect(() => stagesOf({ lowerBoundMs: 5, total: 3 })).toThrow(/elapsedMs/);
  });

  it('refuses stages that take longer than the query', () => {
    expect(() => stagesOf({ elapsedMs: 100, lowerBoundMs: 150, total: 1, rejected: 0 })).toThrow(/150 ms of a 100 ms query/);
  });
});

describe('stage split: a list of named stages (a bound cascade)', () => {
  const reply = {
    elapsedMs: 2000,
    lowerBoundMs: 900, // the old single figure, ignored when the list is there
    rejected: 990,
    total: 1000,
    stages: [
      { name: 'bound 4x4', ms: 300, groups: 72, records: 1000, rejected: 800 },
      { name: 'bound 32x32', ms: 600, groups: 15, records: 200, rejected: 190 },
    ],
  };

  it('keeps every stage the stats name, in order, and puts what they leave in the remainder', () => {
    expect(stagesOf(reply)).toEqual([
      { name: 'bound 4x4', ms: 300, groups: 72, records: 1000, rejected: 800 },
      { name: 'bound 32x32', ms: 600, groups: 15, records: 200, rejected: 190 },
      { name: REMAINDER, ms: 1100 },
    ]);
  });

  it('shows a new level with no change to the reader', () => {
    const more = { ...reply, stages: [...reply.stages, { name: 'bound 64x64', ms: 50 }] };
    expect(stagesOf(more).map((s) => s.name)).toEqual(['bound 4x4', 'bound 32x32', 'bound 64x64', REMAINDER]);
    expect(stagesOf(more).at(-1)!.ms).toBe(1050);
  });

  it('refuses an unnamed stage, a count that is no whole number, a name twice, and the reserved name', () => {
    expect(() => stagesOf({ ...reply, stages: [{ ms: 3 }] })).toThrow(/stage 0 .* no name/);
    expect(() => stagesOf({ ...reply, stages: [{ name: 'a', ms: 3, groups: 1.5 }] })).toThrow(/groups count/);
    expect(() =>
      stagesOf({
        ...reply,
        stages: [
          { name: 'a', ms: 3 },
          { name: 'a', ms: 4 },
        ],
      }),
    ).toThrow(/"a" twice/);
    expect(() => stagesOf({ ...reply, stages: [{ name: REMAINDER, ms: 3 }] })).toThrow(/keeps for the rest/);
  });
});

describe("stage split: SearchStats' levels (the cascade's own names)", () => {
  it('reads each level as a stage: its time, the groups it visited and pruned, the records it visited', () => {
    const reply = {
      elapsedMs: 5000,
      lowerBoundMs: 3000,
      rejected: 9800,
      total: 10000,
      levels: [
        { level: 'coarse', groupsVisited: 715, groupsPruned: 700, recordsVisited: 10000, ms: 2000 },
        { level: 'fine', groupsVisited: 15, groupsPruned: 14, recordsVisited: 210, ms: 1000 },
        { level: 'distance', groupsVisited: 1, groupsPruned: 0, recordsVisited: 14, ms: 1500 },
      ],
    };
    expect(stagesOf(reply)).toEqual([
      { name: 'coarse', ms: 2000, groups: 715, records: 10000, pruned: 700 },
      { name: 'fine', ms: 1000, groups: 15, records: 210, pruned: 14 },
      { name: 'distance', ms: 1500, groups: 1, records: 14, pruned: 0 },
      { name: REMAINDER, ms: 500 },
    ]);
  });

  it('refuses a level without a name', () => {
    expect(() => stagesOf({ elapsedMs: 10, levels: [{ ms: 1 }] })).toThrow(/stage 0 .* no name/);
  });
});

describe('stage split: medians over the queries', () => {
  it('takes each figure of each stage as its own median, stages in first-seen order, remainder last', () => {
    const queries = [
      stagesOf({ elapsedMs: 1000, lowerBoundMs: 600, rejected: 95, total: 100 }),
      stagesOf({ elapsedMs: 3000, lowerBoundMs: 800, rejected: 80, total: 100 }),
      stagesOf({ elapsedMs: 1400, lowerBoundMs: 700, rejected: 90, total: 100 }),
    ];
    expect(medianStages(queries)).toEqual([
      { name: 'bound', ms: 700, records: 100, rejected: 90, queries: 3 },
      { name: REMAINDER, ms: 700, records: 10, queries: 3 },
    ]);
  });

  it('takes a stage only some queries reached over those, and says how many', () => {
    const a = [
      { name: 'coarse', ms: 10 },
      { name: 'fine', ms: 40, groups: 3 },
      { name: REMAINDER, ms: 50 },
    ];
    const b = [
      { name: 'coarse', ms: 20 },
      { name: REMAINDER, ms: 70 },
    ];
    expect(medianStages([a, b])).toEqual([
      { name: 'coarse', ms: 15, queries: 2 },
      { name: 'fine', ms: 40, groups: 3, queries: 1 },
      { name: REMAINDER, ms: 60, queries: 2 },
    ]);
  });
});

import type { ProtocolModule } from '../module';
import { answerPaperQuery } from './c1';
import { openPaperSession } from './c2';
import { paperNeighbours, paperQuery } from './doctor';
import { paperWire } from './wire';

// The paper's two protocols (docs/PROTOCOLS.md §2): fnn (Algorithm 3) and its
// brute-force baseline bf. They share the record layout, the session at C2
// and the retrieval; they differ in C1's search only.

function paperProtocol(name: 'fnn' | 'bf', summary: string, bounded: boolean): ProtocolModule {
  return {
    name,
    summary,
    layout: 'paper',
    progressUnit: 'records',
    bounded,
    doctor: {
      query: async (ctx, image) => ({ $case: name, value: await paperQuery(ctx, image) }),
      neighbours: (ctx, answer, query) => {
        if (answer.$case !== name) throw new Error(`C1 answered ${answer.$case} to a ${name} query`);
        return paperNeighbours(ctx, answer.value, query);
      },
      // A paper query reads a snapshot of C1's records alone: nothing changes under it that asking again would mend.
      retryable: () => false,
    },
    c1: {
      answer: (ctx, query) => {
        if (query.$case !== name) throw new Error(`a ${query.$case} query reached the ${name} module`);
        return answerPaperQuery(ctx, name, query.value);
      },
    },
    c2: { family: 'paper', wire: paperWire, open: openPaperSession },
  };
}

export const fnnProtocol = paperProtocol('fnn', 'the paper (Algorithm 3: lower bounds, then distances for the survivors)', true);
export const bfProtocol = paperProtocol('bf', "brute force (the paper's baseline: every distance)", false);

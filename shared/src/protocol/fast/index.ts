import { status } from '@grpc/grpc-js';
import type { ProtocolModule } from '../module';
import { answerFastQuery } from './c1';
import { openFastSession } from './c2';
import { fastNeighbours, fastQuery } from './doctor';
import { fastWire } from './wire';

// The packed two-server protocol (docs/PROTOCOLS.md §3): the default.

export const fastProtocol: ProtocolModule = {
  name: 'fast',
  summary: 'packed, default (shares of the query, best-first over groups of records)',
  layout: 'packed',
  progressUnit: 'groups',
  bounded: true,
  doctor: {
    query: async (ctx, image) => ({ $case: 'fast', value: await fastQuery(ctx, image) }),
    neighbours: (ctx, answer) => {
      if (answer.$case !== 'fast') throw new Error(`C1 answered ${answer.$case} to a fast query`);
      return fastNeighbours(ctx, answer.value);
    },
    // C1 and C2 compare each group's digest (§3.3). While an upload or delete
    // is between C2 and C1, or a group changes during the query, the query is
    // refused with FAILED_PRECONDITION; that passes once the change completes,
    // so it is worth asking again (with a new share: tickets are single-use).
    retryable: (code) => code === status.FAILED_PRECONDITION,
  },
  c1: {
    answer: (ctx, query) => {
      if (query.$case !== 'fast') throw new Error(`a ${query.$case} query reached the fast module`);
      return answerFastQuery(ctx, query.value);
    },
  },
  c2: { family: 'fast', wire: fastWire, open: openFastSession },
};

import { status } from '@grpc/grpc-js';
import { describeGrpcError, isFnnError, toStatus } from '@fnn/shared';
import { CliError } from './output';

// What `fnn batch-query` says at the end: how many queries were answered, why
// the others failed (by gRPC code), and how long they took.

export interface BatchSummary {
  answered: number;
  total: number;
  /** Failed queries per gRPC code, e.g. { INVALID_ARGUMENT: 1 }. */
  failures: Record<string, number>;
  /** Per answered query: from encrypting it to its complete answer. Null when none was answered. */
  medianMs: number | null;
  maxMs: number | null;
  elapsedMs: number;
}

const CODE_OF_CLI_KIND: Record<CliError['kind'], string> = {
  // Input the CLI refuses before sending (an unreadable file, a query of
  // another size) counts as C1 would have counted it.
  usage: 'INVALID_ARGUMENT',
  invalid: 'INVALID_ARGUMENT',
  notFound: 'NOT_FOUND',
  unavailable: 'UNAVAILABLE',
  refused: 'PERMISSION_DENIED',
  dataLoss: 'DATA_LOSS',
  failure: 'UNKNOWN',
};

/** The gRPC code a failed query is counted under. */
export function failureCode(error: unknown): string {
  const grpc = describeGrpcError(error);
  if (grpc) return grpc.code;
  if (error instanceof CliError) return CODE_OF_CLI_KIND[error.kind];
  if (isFnnError(error)) return status[toStatus(error).code];
  return 'UNKNOWN';
}

export class BatchTally {
  private readonly latencies: number[] = [];
  private readonly failures: Record<string, number> = {};
  private asked = 0;

  constructor(private readonly started: number) {}

  /** One more query in the batch (answered, failed, or still running). */
  ask(): void {
    this.asked++;
  }

  answered(latencyMs: number): void {
    this.latencies.push(latencyMs);
  }

  failed(code: string): void {
    this.failures[code] = (this.failures[code] ?? 0) + 1;
  }

  get failedCount(): number {
    return Object.values(this.failures).reduce((a, b) => a + b, 0);
  }

  summary(now: number): BatchSummary {
    const sorted = [...this.latencies].sort((a, b) => a - b);
    const middle = sorted.length >> 1;
    return {
      answered: sorted.length,
      total: this.asked,
      failures: Object.fromEntries(Object.entries(this.failures).sort(([a], [b]) => a.localeCompare(b))),
      medianMs: sorted.length === 0 ? null : sorted.length % 2 ? sorted[middle] : Math.round((sorted[middle - 1] + sorted[middle]) / 2),
      maxMs: sorted.length === 0 ? null : sorted[sorted.length - 1],
      elapsedMs: now - this.started,
    };
  }
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

export function humanSummary(s: BatchSummary): string {
  const failed = Object.entries(s.failures);
  const parts = [`${s.answered} of ${s.total} queries answered`];
  if (failed.length > 0) parts.push(`failed: ${failed.map(([code, n]) => `${code} ${n}`).join(', ')}`);
  if (s.medianMs !== null && s.maxMs !== null) parts.push(`latency median ${seconds(s.medianMs)}, max ${seconds(s.maxMs)}`);
  parts.push(`total ${seconds(s.elapsedMs)}`);
  return parts.join('; ');
}

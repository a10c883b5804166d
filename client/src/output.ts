import { describeGrpcError, isFnnError, RecordKeyError } from '@fnn/shared';

// How the CLI reports: one JSON object per line with --json, human text
// otherwise; failures as one line on stderr and a documented exit code.

export const EXIT = {
  ok: 0,
  failure: 1, // anything else
  usage: 2, // bad arguments, missing or unreadable files, bad keys
  invalid: 3, // a server refused the input (INVALID_ARGUMENT, FAILED_PRECONDITION)
  notFound: 4, // NOT_FOUND
  unavailable: 5, // a daemon cannot be reached, or is full or busy (UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED): try later
  refused: 6, // this certificate may not do that (UNAUTHENTICATED, PERMISSION_DENIED)
  dataLoss: 7, // a server's stored data is damaged (DATA_LOSS): the owner checks and repairs the collection
} as const;

export class CliError extends Error {
  constructor(
    readonly kind: Exclude<keyof typeof EXIT, 'ok'>,
    message: string,
  ) {
    super(message);
  }
}

export interface Output {
  json: boolean;
  /** A result: the object with --json, else the human lines. */
  result(object: object, human: string): void;
  /** Progress and notes: stderr, and only for humans. */
  note(text: string): void;
}

export function makeOutput(json: boolean): Output {
  return {
    json,
    result: (object, human) => process.stdout.write((json ? jsonLine(object) : human) + '\n'),
    note: (text) => {
      if (!json) process.stderr.write(text + '\n');
    },
  };
}

export function jsonLine(object: object): string {
  return JSON.stringify(object, (_k, v) => (typeof v === 'bigint' ? v.toString() : v));
}

/** Map a failure to its exit code and one-line reason. */
export function classify(error: unknown): { code: number; reason: string } {
  if (error instanceof CliError) return { code: EXIT[error.kind], reason: error.message };
  // The doctor's record key does not open what C1 returned: the doctor's keys are wrong.
  if (error instanceof RecordKeyError) return { code: EXIT.usage, reason: error.message };
  if (isFnnError(error)) {
    const code = {
      'invalid-input': EXIT.invalid,
      'not-found': EXIT.notFound,
      'protocol-state': EXIT.invalid,
      'peer-unavailable': EXIT.unavailable,
      'resource-exhausted': EXIT.unavailable,
      unauthenticated: EXIT.refused,
      'permission-denied': EXIT.refused,
      'data-loss': EXIT.dataLoss,
    }[error.kind];
    return { code, reason: error.message };
  }
  const grpc = describeGrpcError(error);
  if (grpc) {
    const code =
      grpc.code === 'INVALID_ARGUMENT' || grpc.code === 'FAILED_PRECONDITION'
        ? EXIT.invalid
        : grpc.code === 'NOT_FOUND'
          ? EXIT.notFound
          : grpc.code === 'UNAVAILABLE' || grpc.code === 'DEADLINE_EXCEEDED' || grpc.code === 'RESOURCE_EXHAUSTED'
            ? EXIT.unavailable
            : grpc.code === 'UNAUTHENTICATED' || grpc.code === 'PERMISSION_DENIED'
              ? EXIT.refused
              : grpc.code === 'DATA_LOSS'
                ? EXIT.dataLoss
                : EXIT.failure;
    return { code, reason: `${grpc.code}: ${grpc.message}` };
  }
  return { code: EXIT.failure, reason: error instanceof Error ? error.message : String(error) };
}

/**
 * A daemon's PERMISSION_DENIED for one of the owner's commands, said as what
 * the person tried: the daemon names an RPC ("may not call .../AllocateSlots"),
 * which is not what `fnn delete` looks like from a keyboard.
 */
export function ownerOnly(error: unknown, action: string): unknown {
  if (describeGrpcError(error)?.code !== 'PERMISSION_DENIED') return error;
  return new CliError(
    'refused',
    `only the owner may ${action}: the daemons refused this certificate (PERMISSION_DENIED). Use the owner's --tls-dir`,
  );
}

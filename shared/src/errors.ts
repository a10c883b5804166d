// The closed set of failures FNN reports to a caller. Each daemon maps these
// to gRPC status codes in exactly one place (shared/src/wire/status.ts);
// anything that is not an FnnError is reported as INTERNAL with no details,
// because its message might carry secrets.
//
// Messages given to these errors are shown to callers and written to logs:
// never put a key, pixel, distance, share or plaintext in them.

export type FnnErrorKind =
  | 'invalid-input' // the caller sent something malformed or inconsistent
  | 'not-found' // an ID, ticket or session that does not exist
  | 'protocol-state' // a message that does not fit the protocol's current step
  | 'peer-unavailable' // the other server cannot be reached
  | 'resource-exhausted' // a bound on what callers may fill (memory, sessions, disk) is reached: try later
  | 'unauthenticated' // the caller presented no certificate we can identify it by
  | 'permission-denied' // the caller's certificate is valid, its role may not call this
  | 'data-loss'; // a stored record or group does not match its checksum (damage at rest): never answered from

export class FnnError extends Error {
  constructor(
    readonly kind: FnnErrorKind,
    message: string,
  ) {
    super(message);
    this.name = 'FnnError';
  }
}

export const invalidInput = (message: string) => new FnnError('invalid-input', message);
export const notFound = (message: string) => new FnnError('not-found', message);
export const protocolState = (message: string) => new FnnError('protocol-state', message);
export const peerUnavailable = (message: string) => new FnnError('peer-unavailable', message);
export const resourceExhausted = (message: string) => new FnnError('resource-exhausted', message);
export const unauthenticated = (message: string) => new FnnError('unauthenticated', message);
export const permissionDenied = (message: string) => new FnnError('permission-denied', message);
export const dataLoss = (message: string) => new FnnError('data-loss', message);

export function isFnnError(e: unknown): e is FnnError {
  return e instanceof FnnError;
}

import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { FnnError, isFnnError, type FnnErrorKind } from '../errors';

// The one place where FNN's errors meet gRPC status codes, both ways.

const CODE_OF: Record<FnnErrorKind, status> = {
  'invalid-input': status.INVALID_ARGUMENT,
  'not-found': status.NOT_FOUND,
  'protocol-state': status.FAILED_PRECONDITION,
  'peer-unavailable': status.UNAVAILABLE,
  'resource-exhausted': status.RESOURCE_EXHAUSTED,
  unauthenticated: status.UNAUTHENTICATED,
  'permission-denied': status.PERMISSION_DENIED,
  'data-loss': status.DATA_LOSS,
};

export interface StatusObject {
  code: status;
  details: string;
  metadata: Metadata;
}

/**
 * What a daemon tells its caller about a failure. Anything that is not an
 * FnnError may carry secrets in its message (a bigint, a path, a key), so it
 * becomes INTERNAL with no details; the daemon logs its own redacted line.
 */
export function toStatus(error: unknown): StatusObject {
  if (isFnnError(error)) return { code: CODE_OF[error.kind], details: error.message, metadata: new Metadata() };
  const forwarded = forwardedStatus(error);
  if (forwarded) return forwarded;
  return { code: status.INTERNAL, details: 'internal error', metadata: new Metadata() };
}

/**
 * A failure of a call to the other server, as seen by the caller of this one:
 * C2 unreachable is UNAVAILABLE for the doctor too; C2's own refusals keep their code.
 */
export function fromPeerError(error: unknown, peer: string): FnnError | unknown {
  if (isFnnError(error)) return error;
  const e = error as Partial<ServiceError>;
  if (typeof e?.code !== 'number') return error;
  switch (e.code) {
    case status.UNAVAILABLE:
    case status.DEADLINE_EXCEEDED:
    case status.CANCELLED:
      return new FnnError('peer-unavailable', `${peer} is unavailable (${status[e.code]}): ${e.details ?? ''}`.trim());
    case status.INVALID_ARGUMENT:
      return new FnnError('invalid-input', `${peer} refused: ${e.details ?? ''}`);
    case status.RESOURCE_EXHAUSTED:
      return new FnnError('resource-exhausted', `${peer} is full or busy: ${e.details ?? ''}`);
    case status.NOT_FOUND:
      return new FnnError('not-found', `${peer}: ${e.details ?? ''}`);
    case status.FAILED_PRECONDITION:
      return new FnnError('protocol-state', `${peer}: ${e.details ?? ''}`);
    // The other server's stored data is damaged: the caller learns where, as from this one's.
    case status.DATA_LOSS:
      return new FnnError('data-loss', `${peer}: ${e.details ?? ''}`);
    // The other server refused this one's certificate: a deployment fault, not the
    // caller's, so the caller sees the peer as unusable rather than itself as refused.
    case status.UNAUTHENTICATED:
    case status.PERMISSION_DENIED:
      return new FnnError('peer-unavailable', `${peer} refused this server (${status[e.code]}): ${e.details ?? ''}`);
    default:
      return new FnnError('peer-unavailable', `${peer} failed (${status[e.code]})`);
  }
}

function forwardedStatus(error: unknown): StatusObject | undefined {
  const e = error as Partial<ServiceError>;
  if (typeof e?.code === 'number' && e.code === status.DEADLINE_EXCEEDED)
    return { code: status.DEADLINE_EXCEEDED, details: 'deadline exceeded', metadata: new Metadata() };
  return undefined;
}

/** A gRPC error as the CLI shows it: the code name and the server's one-line reason. */
export function describeGrpcError(error: unknown): { code: string; message: string } | undefined {
  const e = error as Partial<ServiceError>;
  if (typeof e?.code !== 'number') return undefined;
  return { code: status[e.code] ?? String(e.code), message: e.details || e.message || 'failed' };
}

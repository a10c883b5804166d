import { invalidInput } from '../errors';

// The largest gRPC message any program of a deployment sends or accepts. One
// value for every program (the daemons and the CLI read the same variable):
// what one program splits to fit, the next must accept.

/** The default and the most: a 256x256 record is 32 MiB of ciphertexts at 2048 bits, far above grpc-js's 4 MiB default. */
export const GRPC_MESSAGE_LIMIT = 64 * 1024 * 1024;
/** The least a deployment may set: a query or an upload of an 8x8 collection at 1024 bits still fits. */
export const MIN_MESSAGE_LIMIT = 16 * 1024;
/** Lowers the limit (tests, a proxy with a smaller one); the same value in every program of the deployment. */
export const MESSAGE_LIMIT_ENV = 'FNN_MAX_MESSAGE_BYTES';

/** The limit this program runs with: GRPC_MESSAGE_LIMIT unless FNN_MAX_MESSAGE_BYTES lowers it. */
export function messageLimit(env: NodeJS.ProcessEnv = process.env): number {
  const given = env[MESSAGE_LIMIT_ENV];
  if (given === undefined || given === '') return GRPC_MESSAGE_LIMIT;
  const bytes = /^\d{1,10}$/.test(given) ? Number(given) : NaN;
  if (!(bytes >= MIN_MESSAGE_LIMIT && bytes <= GRPC_MESSAGE_LIMIT))
    throw invalidInput(`${MESSAGE_LIMIT_ENV} must be a byte count from ${MIN_MESSAGE_LIMIT} to ${GRPC_MESSAGE_LIMIT}`);
  return bytes;
}

/** gRPC's channel and server options for a limit. */
export function messageSizeOptions(limit: number = messageLimit()) {
  return { 'grpc.max_receive_message_length': limit, 'grpc.max_send_message_length': limit };
}

/** The options at the default limit (clients of the tests that do not follow the deployment's variable). */
export const MESSAGE_SIZE_OPTIONS = messageSizeOptions(GRPC_MESSAGE_LIMIT);

/**
 * How many values of `valueBytes` one message of a chunked transfer carries:
 * half the limit, the other half headroom for protobuf's few bytes of framing
 * per value and the message's own fields.
 */
export function valuesPerMessage(valueBytes: number, limit: number = messageLimit()): number {
  return Math.max(1, Math.floor(limit / 2 / (valueBytes + 8)));
}

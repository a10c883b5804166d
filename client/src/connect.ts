import { credentials, Metadata, type CallOptions, type ClientUnaryCall, type ServiceError } from '@grpc/grpc-js';
import { DatabaseClient, ReplicaClient, RetrievalClient } from '@fnn/proto';
import { MESSAGE_SIZE_OPTIONS } from '@fnn/shared';
import { CliError } from './output';

const CHANNEL_OPTIONS = MESSAGE_SIZE_OPTIONS;

export function checkAddress(address: string | undefined, flag: string, env: string): string {
  if (!address) throw new CliError('usage', `no address: pass ${flag} HOST:PORT or set ${env}`);
  if (!/^[\w.-]+:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$/.test(address))
    throw new CliError('usage', `${flag} must be HOST:PORT, not "${address}"`);
  return address;
}

export const connectC1 = (address: string) => new DatabaseClient(address, credentials.createInsecure(), CHANNEL_OPTIONS);
export const connectC2 = (address: string) => new RetrievalClient(address, credentials.createInsecure(), CHANNEL_OPTIONS);
/** C2's owner-facing service: the replica of the packed records. */
export const connectReplica = (address: string) => new ReplicaClient(address, credentials.createInsecure(), CHANNEL_OPTIONS);

/** A unary call as a promise, with a deadline and the request id in metadata. */
export function call<Req, Res>(
  method: (req: Req, metadata: Metadata, options: Partial<CallOptions>, cb: (e: ServiceError | null, r: Res) => void) => ClientUnaryCall,
  request: Req,
  timeoutMs: number,
  requestId?: string,
  /** Which daemon this is ("C2"), so a failure says who failed. */
  who?: string,
): Promise<Res> {
  const metadata = new Metadata();
  if (requestId) metadata.set('x-request-id', requestId);
  return new Promise((resolve, reject) =>
    method(request, metadata, { deadline: new Date(Date.now() + timeoutMs) }, (err, res) => {
      if (!err) return resolve(res);
      if (who) err.details = `${who}: ${err.details}`;
      reject(err);
    }),
  );
}

import { InterceptingCall, Metadata, type CallOptions, type ClientUnaryCall, type Interceptor, type ServiceError } from '@grpc/grpc-js';
import { AuditClient, DatabaseClient, ReplicaClient, RetrievalClient } from '@fnn/proto';
import {
  channelCredentials,
  COLLECTION_METADATA,
  DEFAULT_COLLECTION,
  HealthClient,
  isInsecure,
  messageSizeOptions,
  type Transport,
} from '@fnn/shared';
import { explainFailures, isExplained } from './connection-errors';
import { CliError } from './output';

export function checkAddress(address: string | undefined, flag: string, env: string): string {
  if (!address) throw new CliError('usage', `no address: pass ${flag} HOST:PORT or set ${env}`);
  if (!/^[\w.-]+:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$/.test(address))
    throw new CliError('usage', `${flag} must be HOST:PORT, not "${address}"`);
  return address;
}

/**
 * Each connection checks that the server's certificate is the daemon it means
 * to reach (role c1 or c2), and says in words why it could not connect.
 */
const options = (address: string, transport: Transport, daemon: 'c1' | 'c2', sized = true, collection?: string) => ({
  ...(sized ? messageSizeOptions() : {}),
  interceptors: [
    explainFailures({ daemon: daemon === 'c1' ? 'C1' : 'C2', address, tls: !isInsecure(transport) }),
    ...(collection !== undefined && collection !== DEFAULT_COLLECTION ? [namingCollection(collection)] : []),
  ],
});

/** The collection a command's calls go to: `fnn-collection` on every call of the connection (none: the default collection). */
const namingCollection =
  (collection: string): Interceptor =>
  (callOptions, nextCall) =>
    new InterceptingCall(nextCall(callOptions), {
      start: (metadata, listener, next) => {
        metadata.set(COLLECTION_METADATA, collection);
        next(metadata, listener);
      },
    });

export const connectC1 = (address: string, transport: Transport, collection?: string) =>
  new DatabaseClient(address, channelCredentials(transport, 'c1'), options(address, transport, 'c1', true, collection));
export const connectC2 = (address: string, transport: Transport, collection?: string) =>
  new RetrievalClient(address, channelCredentials(transport, 'c2'), options(address, transport, 'c2', true, collection));
/** C2's owner-facing service: the replica of the packed records. */
export const connectReplica = (address: string, transport: Transport, collection?: string) =>
  new ReplicaClient(address, channelCredentials(transport, 'c2'), options(address, transport, 'c2', true, collection));
/** Either daemon's audit trail (the owner's). */
export const connectAudit = (address: string, transport: Transport, daemon: 'c1' | 'c2') =>
  new AuditClient(address, channelCredentials(transport, daemon), options(address, transport, daemon));
/** The standard health service of either daemon. */
export const connectHealth = (address: string, transport: Transport, daemon: 'c1' | 'c2') =>
  new HealthClient(address, channelCredentials(transport, daemon), options(address, transport, daemon, false));

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
      if (who && !isExplained(err)) err.details = `${who}: ${err.details}`;
      reject(err);
    }),
  );
}

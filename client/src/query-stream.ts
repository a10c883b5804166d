import { Metadata } from '@grpc/grpc-js';
import type * as wire from '@fnn/proto';
import { progressFromWire, type QueryProgress } from '@fnn/shared';
import { CliError } from './output';

/**
 * Database.QueryWithProgress as a promise of C1's reply; each progress report
 * goes to `onProgress` as it arrives. A failure rejects with the gRPC error,
 * as a unary call would.
 */
export function queryWithProgress(
  c1: wire.DatabaseClient,
  request: wire.QueryRequest,
  timeoutMs: number,
  requestId: string,
  onProgress: (progress: QueryProgress) => void,
): Promise<wire.QueryReply> {
  const metadata = new Metadata();
  metadata.set('x-request-id', requestId);
  return new Promise((resolve, reject) => {
    const call = c1.queryWithProgress(request, metadata, { deadline: new Date(Date.now() + timeoutMs) });
    let reply: wire.QueryReply | undefined;
    call.on('data', (event: wire.QueryEvent) => {
      if (event.event?.$case === 'progress') onProgress(progressFromWire(event.event.value));
      else if (event.event?.$case === 'reply') reply = event.event.value;
    });
    call.on('error', reject);
    call.on('end', () => (reply ? resolve(reply) : reject(new CliError('failure', 'C1 ended the query without a reply'))));
  });
}

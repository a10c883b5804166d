import { Metadata, type ServiceError } from '@grpc/grpc-js';
import type { RetrievalClient, RetrievedValues } from '@fnn/proto';

// The doctor's Retrieve at C2 (docs/PROTOCOLS.md §2.7): m + r arrives in parts
// below the message limit; the caller reassembles as they come, so it never
// holds more of the stream than it has read.

/** C2's parts of m + r for a ticket, in order; a failure is the gRPC error, its details naming C2. */
export async function* retrieveParts(client: RetrievalClient, ticket: string, deadline: Date): AsyncGenerator<Uint8Array[]> {
  const call = client.retrieve({ ticket }, new Metadata(), { deadline });
  try {
    for await (const part of call as AsyncIterable<RetrievedValues>) yield part.values;
  } catch (error) {
    const e = error as ServiceError;
    if (typeof e.code === 'number') e.details = `C2: ${e.details}`;
    throw error;
  } finally {
    // A reader that stopped early (a refusal of C2's parts) ends the call too.
    call.cancel();
  }
}

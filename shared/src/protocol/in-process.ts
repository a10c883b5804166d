import type { SessionTransport } from './messages';
import type { C2SessionDeps } from './module';
import { C2SessionStream } from './session';

/** C1 talking to a C2 in the same process: the protocols exactly as over gRPC, minus the wire. */
export function inProcessTransport(deps: C2SessionDeps): SessionTransport {
  const session = new C2SessionStream(deps);
  return { exchange: (message) => session.handle(message), close: () => session.close() };
}

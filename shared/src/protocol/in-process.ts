import type { KeyHolderCrypto } from '../crypto/backend';
import { KeyHolderSession, type FastKeyHolderDeps } from './key-holder-session';
import type { SessionTransport } from './messages';
import type { RetrievalStore } from './retrieval';

/** C1 talking to a C2 in the same process: the protocols exactly as over gRPC, minus the wire. */
export function inProcessTransport(
  crypto: KeyHolderCrypto,
  retrievals: RetrievalStore,
  fast?: FastKeyHolderDeps,
): SessionTransport {
  const session = new KeyHolderSession(crypto, retrievals, fast);
  return { exchange: (message) => session.handle(message), close: () => {} };
}

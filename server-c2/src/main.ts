import { Server } from '@grpc/grpc-js';
import { RetrievalService, SecureComputationService } from '@fnn/proto';
import { bind, RetrievalStore, shutdown, WireCodec, type KeyHolderCrypto, type Logger, type RunningDaemon } from '@fnn/shared';
import { retrievalService, secureComputationService } from './key-holder-service';

export interface C2Config {
  listen: string;
  crypto: KeyHolderCrypto;
  log: Logger;
}

/** C2's main: the key holder's two services; no storage beyond the key. */
export async function startC2(config: C2Config): Promise<RunningDaemon> {
  const pk = config.crypto.publicKey;
  const deps = { crypto: config.crypto, retrievals: new RetrievalStore(), codec: new WireCodec(pk.cipherBytes), log: config.log };
  const server = new Server({
    'grpc.max_receive_message_length': 64 * 1024 * 1024,
    'grpc.max_send_message_length': 64 * 1024 * 1024,
  });
  const secure = secureComputationService(deps);
  server.addService(SecureComputationService, secure);
  server.addService(RetrievalService, retrievalService(deps, secure.openSessions));
  const address = await bind(server, config.listen);
  config.log.info({ address, keyBits: pk.bits }, 'C2 listening');
  return {
    address,
    stop: async () => {
      await shutdown(server);
      config.log.info({}, 'C2 stopped');
    },
  };
}

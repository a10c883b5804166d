import { ReplicaService, RetrievalService, SecureComputationService } from '@fnn/proto';
import {
  addStandardServices,
  bind,
  createServer,
  RetrievalStore,
  shutdown,
  TicketStore,
  WireCodec,
  type FastKeyHolderCrypto,
  type KeyHolderCrypto,
  type Logger,
  type QueryShares,
  type RunningDaemon,
  type Transport,
} from '@fnn/shared';
import { ReplicaStore } from './replica-store';
import { replicaService, retrievalService, secureComputationService } from './key-holder-service';

export interface C2Config {
  listen: string;
  dbPath: string; // the replica of the packed records (fast protocol)
  crypto: KeyHolderCrypto;
  fast: FastKeyHolderCrypto;
  log: Logger;
  /** TLS as C2 (callers' roles are checked), or plaintext. */
  transport: Transport;
}

/** C2's main: the key holder's two services; no storage beyond the key. */
export async function startC2(config: C2Config): Promise<RunningDaemon> {
  const pk = config.crypto.publicKey;
  const replica = new ReplicaStore(config.dbPath, config.fast.evaluatorKey);
  const deps = {
    crypto: config.crypto,
    retrievals: new RetrievalStore(),
    codec: new WireCodec(pk.cipherBytes),
    log: config.log,
    replica,
    fast: {
      crypto: config.fast,
      replica: () => replica.source(),
      shares: new TicketStore<QueryShares>('query share ticket'),
    },
  };
  const server = createServer(config.transport, config.log);
  const secure = secureComputationService(deps);
  server.addService(SecureComputationService, secure);
  server.addService(RetrievalService, retrievalService(deps, secure.openSessions));
  server.addService(ReplicaService, replicaService(deps));
  const health = addStandardServices(server, ['fnn.v1.SecureComputation', 'fnn.v1.Retrieval', 'fnn.v1.Replica']);
  const address = await bind(server, config.listen, config.transport);
  config.log.info({ address, keyBits: pk.bits }, 'C2 listening');
  return {
    address,
    stop: async () => {
      health.stopping();
      await shutdown(server);
      replica.close();
      config.log.info({}, 'C2 stopped');
    },
  };
}

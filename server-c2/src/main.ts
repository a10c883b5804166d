import { ReplicaService, RetrievalService, SecureComputationService } from '@fnn/proto';
import { serveDaemon } from '@fnn/server-common';
import {
  RetrievalStore,
  TicketStore,
  WireCodec,
  type FastC2Crypto,
  type C2Crypto,
  type Logger,
  type QueryShares,
  type RunningDaemon,
  type Transport,
} from '@fnn/shared';
import { ReplicaStore } from './replica-store';
import { replicaService, retrievalService, secureComputationService } from './services';

export interface C2Config {
  listen: string;
  dbPath: string; // the replica of the packed records (fast protocol)
  crypto: C2Crypto;
  fast: FastC2Crypto;
  log: Logger;
  /** TLS as C2 (callers' roles are checked), or plaintext. */
  transport: Transport;
}

/** C2's main: the key holder's two services; no storage beyond the key. */
export async function startC2(config: C2Config): Promise<RunningDaemon> {
  const pk = config.crypto.publicKey;
  const replica = new ReplicaStore(config.dbPath, config.fast.pk1);
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
  const secure = secureComputationService(deps);
  return serveDaemon({
    name: 'C2',
    listen: config.listen,
    transport: config.transport,
    log: config.log,
    services: [
      { definition: SecureComputationService, implementation: secure },
      { definition: RetrievalService, implementation: retrievalService(deps, secure.openSessions) },
      { definition: ReplicaService, implementation: replicaService(deps) },
    ],
    facts: { keyBits: pk.bits },
    close: () => replica.close(),
  });
}

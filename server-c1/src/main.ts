import { Server } from '@grpc/grpc-js';
import { DatabaseService } from '@fnn/proto';
import { bind, shutdown, WireCodec, type EvaluatorCrypto, type FastEvaluatorCrypto, type Logger, type RunningDaemon } from '@fnn/shared';
import { databaseService } from './database-service';
import { CHANNEL_OPTIONS, KeyHolderLink } from './key-holder-link';
import { RecordStore } from './storage';

export interface C1Config {
  listen: string; // host:port; port 0 picks a free one
  dbPath: string;
  c2Address: string;
  crypto: EvaluatorCrypto;
  fast: FastEvaluatorCrypto;
  log: Logger;
  queryTimeoutMs?: number;
}

/** C1's main: wire storage, the link to C2 and the service; nothing else. */
export async function startC1(config: C1Config): Promise<RunningDaemon> {
  const pk = config.crypto.publicKey;
  const codec = new WireCodec(pk.cipherBytes);
  const store = new RecordStore(config.dbPath, pk);
  const keyHolder = new KeyHolderLink(config.c2Address, codec);
  const server = new Server(CHANNEL_OPTIONS);
  server.addService(
    DatabaseService,
    databaseService({
      store,
      crypto: config.crypto,
      codec,
      keyHolder,
      fast: config.fast,
      log: config.log,
      queryTimeoutMs: config.queryTimeoutMs ?? 60 * 60_000,
    }),
  );
  const address = await bind(server, config.listen);
  config.log.info({ address, records: store.count, c2: config.c2Address, keyBits: pk.bits }, 'C1 listening');
  return {
    address,
    stop: async () => {
      await shutdown(server);
      keyHolder.close();
      store.close();
      config.log.info({}, 'C1 stopped');
    },
  };
}

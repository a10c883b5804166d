import type { ServiceDefinition, UntypedServiceImplementation } from '@grpc/grpc-js';
import {
  addStandardServices,
  bind,
  createServer,
  shutdown,
  type CallObserver,
  type Logger,
  type RunningDaemon,
  type Transport,
} from '@fnn/shared';
import type { LogFields } from './handlers';

// Starting and stopping a daemon the same way in C1 and C2: its services with
// health and reflection, one line when it listens and one when it stopped.

/** One gRPC service a daemon serves. */
export interface ServedService {
  definition: ServiceDefinition;
  implementation: UntypedServiceImplementation;
}

export interface DaemonOptions {
  /** 'C1' or 'C2', in the lines '<name> listening' and '<name> stopped'. */
  name: string;
  listen: string;
  transport: Transport;
  log: Logger;
  services: ServedService[];
  /** Operational facts for the listening line (counts, key size, peers). */
  facts: LogFields;
  /** Hears of every call the access check refuses (the services' own calls reach observers through their handlers). */
  onRefused?: CallObserver;
  /** Whether a caller's certificate serial is revoked (the deployment's CRL); refused before any handler. */
  isRevoked?: (serial: string) => boolean;
  /** Closes what the daemon holds (stores, links): once the server has stopped, or when it cannot bind. */
  close: () => void;
}

/** Serves until stop(): health turns NOT_SERVING first, calls in flight finish, then `close` runs. */
export async function serveDaemon(options: DaemonOptions): Promise<RunningDaemon> {
  const { name, log } = options;
  const server = createServer(options.transport, log, { onRefused: options.onRefused, isRevoked: options.isRevoked });
  for (const s of options.services) server.addService(s.definition, s.implementation);
  const health = addStandardServices(
    server,
    options.services.map((s) => serviceName(s.definition)),
  );
  let address: string;
  try {
    address = await bind(server, options.listen, options.transport);
  } catch (error) {
    options.close();
    throw error;
  }
  log.info({ address, ...options.facts }, `${name} listening`);
  return {
    address,
    stop: async () => {
      health.stopping();
      await shutdown(server);
      options.close();
      log.info({}, `${name} stopped`);
    },
  };
}

/** A service's full name (e.g. fnn.v1.Database), for health and reflection: its methods' paths are /<name>/<method>. */
export function serviceName(definition: ServiceDefinition): string {
  const names = new Set(Object.values(definition).map((m) => m.path.split('/')[1]));
  if (names.size !== 1) throw new Error(`a service definition with methods of ${names.size} services`);
  return [...names][0];
}

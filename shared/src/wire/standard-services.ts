import { dirname } from 'node:path';
import {
  makeClientConstructor,
  Metadata,
  type CallOptions,
  type Client,
  type Server,
  type ServiceDefinition,
  type ServiceError,
} from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation, protoPath as healthProtoPath, service as healthService } from 'grpc-health-check';

// The two services every gRPC operator's tools expect: grpc.health.v1 (load
// balancers, `fnn status`, the demo's readiness wait) and server reflection
// (grpcurl and friends list and call the API without the .proto at hand).

export const HEALTH_SERVICE = 'grpc.health.v1.Health';

/** The full method paths of the health service, for the access table. */
export const HEALTH_METHODS = Object.values(healthService).map((m) => m.path);
export const REFLECTION_METHODS = [
  '/grpc.reflection.v1.ServerReflection/ServerReflectionInfo',
  '/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo',
];

export interface Health {
  /** Tell watchers the daemon is going away, before it stops accepting calls. */
  stopping(): void;
}

/**
 * Health and reflection for a daemon serving `services` (full names, e.g.
 * fnn.v1.Database). Health reports SERVING for each and for "" (the whole
 * server) once this runs, which is just before the daemon binds.
 */
export function addStandardServices(server: Server, services: string[]): Health {
  const names = ['', ...services];
  const health = new HealthImplementation(Object.fromEntries(names.map((n) => [n, 'SERVING' as const])));
  health.addToServer(server);
  new ReflectionService(apiDefinition(), { services: [...services, HEALTH_SERVICE] }).addToServer(server);
  return { stopping: () => names.forEach((n) => health.setStatus(n, 'NOT_SERVING')) };
}

// Reflection describes the API from the .proto files themselves: FNN's (shipped
// in @fnn/proto) and the health service's (shipped in grpc-health-check).
function apiDefinition() {
  const fnnRoot = dirname(require.resolve('@fnn/proto/package.json'));
  const healthRoot = dirname(dirname(dirname(healthProtoPath)));
  return loadSync(['fnn/v1/fnn.proto', 'health/v1/health.proto'], { includeDirs: [fnnRoot, healthRoot] });
}

export type ServingStatus = 'SERVING' | 'NOT_SERVING' | 'UNKNOWN' | 'SERVICE_UNKNOWN';

/** A client of grpc.health.v1.Health (messages as grpc-health-check loads them: enums as names). */
export const HealthClient = makeClientConstructor(healthService as unknown as ServiceDefinition, HEALTH_SERVICE);

/**
 * Ask a daemon's health service about `service` ("" = the whole server).
 * With `wait`, a daemon still starting is waited for (the channel's own
 * readiness, no polling) until the deadline; without, a daemon that cannot be
 * reached fails at once, as any call does.
 */
export function checkHealth(client: Client, service: string, deadline: Date, wait = false): Promise<ServingStatus> {
  const check = () =>
    new Promise<ServingStatus>((resolve, reject) =>
      (client as unknown as HealthCheckMethod).check({ service }, new Metadata(), { deadline }, (error, reply) =>
        error ? reject(error) : resolve(reply!.status),
      ),
    );
  if (!wait) return check();
  return new Promise<void>((resolve, reject) =>
    client.waitForReady(deadline, (notReady) => (notReady ? reject(notReady) : resolve())),
  ).then(check);
}

type HealthCheckMethod = {
  check(
    request: { service: string },
    metadata: Metadata,
    options: CallOptions,
    callback: (error: ServiceError | null, reply?: { status: ServingStatus }) => void,
  ): void;
};

import { Server, type ChannelOptions } from '@grpc/grpc-js';
import type { Logger } from '../logger';
import { accessControl, type AccessOptions } from './access-control';
import { isInsecure, serverCredentials, type Transport } from './credentials';
import { messageSizeOptions } from './message-limit';

// Making, starting and stopping a gRPC server the same way in both daemons.

export interface RunningDaemon {
  address: string; // host:port actually bound
  stop(): Promise<void>;
}

/**
 * A daemon's server. Over TLS every call passes the role check first; without
 * TLS there is no certificate to check, so --insecure also means no roles.
 */
export function createServer(
  transport: Transport,
  log: Logger,
  access: AccessOptions = {},
  options: ChannelOptions = messageSizeOptions(),
): Server {
  return new Server({ ...options, interceptors: isInsecure(transport) ? [] : [accessControl(log, access)] });
}

/** Bind host:port (port 0 picks a free one) and resolve to the address actually bound. */
export function bind(server: Server, listen: string, transport: Transport): Promise<string> {
  return new Promise((resolve, reject) =>
    server.bindAsync(listen, serverCredentials(transport), (err, port) => {
      if (err) return reject(err);
      resolve(`${listen.slice(0, listen.lastIndexOf(':'))}:${port}`);
    }),
  );
}

/** Finish in-flight calls, then stop; force after a grace period. */
export function shutdown(server: Server, graceMs = 10_000): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

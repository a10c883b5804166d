import { checkHealth, describeGrpcError, type Transport } from '@fnn/shared';
import { checkAddress, connectHealth } from '../connect';
import { CliError, type Output } from '../output';

/**
 * `fnn health --c1 ADDR | --c2 ADDR`: does this daemon say SERVING on the
 * standard grpc.health.v1 service? Exit 0 if every daemon named does, else 5.
 * For a service manager's or a container's health check: one daemon, any
 * certificate of the deployment (the daemon's own), nothing else asked.
 */
export async function health(out: Output, options: { c1?: string; c2?: string; timeout: string; transport: Transport }): Promise<void> {
  const timeoutMs = Number(options.timeout) * 1000;
  if (!(timeoutMs > 0) || !Number.isFinite(timeoutMs)) throw new CliError('usage', '--timeout must be a positive number of seconds');
  const daemons = (
    [
      ['c1', options.c1, '--c1', 'FNN_C1'],
      ['c2', options.c2, '--c2', 'FNN_C2'],
    ] as const
  ).filter(([, address]) => address !== undefined && address !== '');
  if (daemons.length === 0) throw new CliError('usage', 'no daemon to check: pass --c1 HOST:PORT or --c2 HOST:PORT. See fnn health --help');
  const states = await Promise.all(
    daemons.map(async ([role, address, flag, env]) => {
      const client = connectHealth(checkAddress(address, flag, env), options.transport, role);
      const name = role.toUpperCase();
      try {
        const state = await checkHealth(client, '', new Date(Date.now() + timeoutMs));
        return { daemon: role, address: address!, serving: state === 'SERVING', line: `${name} ${address}: ${state}` };
      } catch (error) {
        const grpc = describeGrpcError(error);
        const why = grpc ? grpc.code : (error as Error).message;
        return {
          daemon: role,
          address: address!,
          serving: false,
          line: `${name} ${address}: not answering (${why}). Is \`fnn ${role}\` running?`,
        };
      } finally {
        client.close();
      }
    }),
  );
  const down = states.filter((s) => !s.serving);
  if (down.length > 0) throw new CliError('unavailable', down.map((s) => s.line).join('; '));
  out.result({ daemons: states.map(({ daemon, address }) => ({ daemon, address, serving: true })) }, states.map((s) => s.line).join('\n'));
}

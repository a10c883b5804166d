import { dirname, join } from 'node:path';
import { credentials, loadPackageDefinition, Server, status, type Client, type ClientDuplexStream } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../logger';
import { INSECURE } from './credentials';
import { bind, createServer, shutdown } from './server';
import { addStandardServices, checkHealth, HealthClient, type Health } from './standard-services';

// Health and reflection as a grpcurl or a load balancer sees them (plaintext
// here; tls.test.ts in client/ checks health over mutual TLS).

let server: Server;
let address: string;
let health: Health;

type ReflectionReply = {
  listServicesResponse?: { service: { name: string }[] };
  fileDescriptorResponse?: { fileDescriptorProto: Buffer[] };
};

/** One request on grpc.reflection.v1's stream, and its one reply. */
function reflect(request: object): Promise<ReflectionReply> {
  const root = join(dirname(require.resolve('@grpc/reflection/package.json')), 'build', 'proto');
  const definition = loadSync('grpc/reflection/v1/reflection.proto', { includeDirs: [root] });
  const pkg = loadPackageDefinition(definition) as unknown as {
    grpc: {
      reflection: { v1: { ServerReflection: new (address: string, creds: ReturnType<typeof credentials.createInsecure>) => Client } };
    };
  };
  const client = new pkg.grpc.reflection.v1.ServerReflection(address, credentials.createInsecure());
  const stream = (client as unknown as { serverReflectionInfo(): ClientDuplexStream<object, ReflectionReply> }).serverReflectionInfo();
  return new Promise((resolve, reject) => {
    stream.on('data', (reply: ReflectionReply) => {
      resolve(reply);
      stream.end();
      client.close();
    });
    stream.on('error', reject);
    stream.write(request);
  });
}

beforeAll(async () => {
  server = createServer(INSECURE, silentLogger);
  health = addStandardServices(server, ['fnn.v1.Database']);
  address = await bind(server, '127.0.0.1:0', INSECURE);
});

afterAll(async () => {
  await shutdown(server, 1000);
});

describe('standard services', () => {
  it("reflection lists the daemon's service and health, and describes the FNN API from its .proto", async () => {
    const listed = await reflect({ listServices: '' });
    expect(listed.listServicesResponse!.service.map((s) => s.name).sort()).toEqual(['fnn.v1.Database', 'grpc.health.v1.Health']);
    const file = await reflect({ fileContainingSymbol: 'fnn.v1.Database' });
    expect(file.fileDescriptorResponse!.fileDescriptorProto.length).toBeGreaterThan(0);
    expect(Buffer.concat(file.fileDescriptorResponse!.fileDescriptorProto).toString('latin1')).toContain('AllocateSlot');
  });

  it('health says SERVING for the server and its service, NOT_FOUND for a service it does not serve, NOT_SERVING once it is stopping', async () => {
    const client = new HealthClient(address, credentials.createInsecure());
    const deadline = () => new Date(Date.now() + 5000);
    try {
      expect(await checkHealth(client, '', deadline())).toBe('SERVING');
      expect(await checkHealth(client, 'fnn.v1.Database', deadline())).toBe('SERVING');
      await expect(checkHealth(client, 'fnn.v1.Nothing', deadline())).rejects.toMatchObject({ code: status.NOT_FOUND });
      health.stopping();
      expect(await checkHealth(client, 'fnn.v1.Database', deadline())).toBe('NOT_SERVING');
    } finally {
      client.close();
    }
  });
});

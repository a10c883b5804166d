import { credentials } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { DatabaseService, ReplicaService, RetrievalService } from '@fnn/proto';
import { checkHealth, HealthClient, INSECURE } from '@fnn/shared';
import { serveDaemon, serviceName } from './daemon';
import { recordingLogger, rejected } from './testing';

// A daemon served the way C1 and C2 are: health for its services, its lines
// when it listens and stops, and what it holds closed exactly once.

describe('serviceName', () => {
  it("reads a service's full name from its methods' paths", () => {
    expect(serviceName(DatabaseService)).toBe('fnn.v1.Database');
    expect(serviceName(RetrievalService)).toBe('fnn.v1.Retrieval');
  });

  it('refuses a definition mixing two services', () => {
    expect(() => serviceName({ ...DatabaseService, ...ReplicaService })).toThrow(/2 services/);
  });
});

describe('serveDaemon', () => {
  it('serves health for its services, logs its lines, and closes what it holds once, after stopping', async () => {
    const log = recordingLogger();
    let closed = 0;
    const daemon = await serveDaemon({
      name: 'C9',
      listen: '127.0.0.1:0',
      transport: INSECURE,
      log,
      services: [{ definition: RetrievalService, implementation: {} }],
      facts: { keyBits: 512 },
      close: () => closed++,
    });
    expect(daemon.address).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(log.lines[0]).toEqual({ level: 'info', fields: { address: daemon.address, keyBits: 512 }, message: 'C9 listening' });
    const client = new HealthClient(daemon.address, credentials.createInsecure());
    try {
      const deadline = new Date(Date.now() + 10_000);
      expect(await checkHealth(client, 'fnn.v1.Retrieval', deadline, true), 'the served service').toBe('SERVING');
      expect(await checkHealth(client, '', deadline), 'the whole server').toBe('SERVING');
      expect(closed, 'nothing is closed while serving').toBe(0);
    } finally {
      client.close();
    }
    await daemon.stop();
    expect(closed, 'closed once, after the server stopped').toBe(1);
    expect(log.lines.at(-1)?.message).toBe('C9 stopped');
  });

  it('closes what it holds when it cannot bind, and fails', async () => {
    let closed = 0;
    const error = await rejected(
      serveDaemon({
        name: 'C9',
        listen: '256.0.0.1:0',
        transport: INSECURE,
        log: recordingLogger(),
        services: [],
        facts: {},
        close: () => closed++,
      }),
      'binding an impossible address',
    );
    expect(error).toBeInstanceOf(Error);
    expect(closed, 'a daemon that never listened must not keep its stores open').toBe(1);
  });
});

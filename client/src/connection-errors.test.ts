import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { Server } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addStandardServices, bind, checkHealth, INSECURE, type Role, type TlsIdentity, type Transport } from '@fnn/shared';
import { issueAuthority, issueParty, type Authority } from './certificates';
import { connectHealth } from './connect';
import { explainConnectionFailure, type Peer } from './connection-errors';
import { classify, EXIT } from './output';

// A failed connection said in words: which daemon, which address, what to do.
// The raw texts below are what gRPC gave for each case (Node 20, grpc-js 1.14);
// the servers are bare gRPC servers with the health service on 127.0.0.1:0.

const C1: Peer = { daemon: 'C1', address: '127.0.0.1:50051', tls: true };

describe('explainConnectionFailure, from the channel text', () => {
  it.each([
    [
      'nothing listens',
      'No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:1. Resolution note: ',
      /^C1 at 127\.0\.0\.1:50051 cannot be reached \(connection refused\)\. Is `fnn c1` running there\?$/,
    ],
    [
      "another deployment's certificate",
      'No connection established. Last error: Error: self-signed certificate in certificate chain. Resolution note: ',
      /^C1's certificate at 127\.0\.0\.1:50051 is not from your CA \(ca\.pem of --tls-dir\)\. Is this another deployment's C1/,
    ],
    [
      'TLS against a plaintext daemon',
      'No connection established. Last error: Error: 80DC01E0677F0000:error:0A00010B:SSL routines:ssl3_get_record:wrong version number:../deps/openssl/openssl/ssl/record/ssl3_record.c:350:\n. Resolution note: ',
      /^C1 at 127\.0\.0\.1:50051 speaks plaintext \(it runs with --insecure\) and this command TLS/,
    ],
    [
      'the daemons swapped',
      "No connection established. Last error: Error: the server's certificate is for c2, not c1. Resolution note: ",
      /^127\.0\.0\.1:50051 is not C1: its certificate is for c2\. Are --c1 and --c2 swapped\?$/,
    ],
  ])('%s', (_case, raw, want) => {
    expect(explainConnectionFailure(raw, C1)).toMatch(want);
  });

  it('plaintext against a TLS daemon: only a plaintext caller is told to drop --insecure', () => {
    const raw = 'No connection established. Last error: Failed to connect (2026-12-02T06:57:05.004Z). Resolution note: ';
    expect(explainConnectionFailure(raw, { ...C1, tls: false })).toMatch(
      /did not answer in plaintext \(--insecure\).*--tls-dir DIR instead of --insecure/,
    );
    expect(explainConnectionFailure(raw, C1)).not.toMatch(/--insecure/);
  });

  it("C1's report that it cannot reach C2 names the link, without gRPC's wrapping", () => {
    const raw =
      'C2 is unavailable (UNAVAILABLE): No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:9. Resolution note:';
    expect(explainConnectionFailure(raw, C1)).toBe(
      "C1 at 127.0.0.1:50051 cannot reach its C2 (connect ECONNREFUSED 127.0.0.1:9). Is `fnn c2` running, and is C1's --c2 its address?",
    );
  });

  it("C1 that waited for C2 in vain: names C2's address and the hint", () => {
    expect(explainConnectionFailure('C2 at 127.0.0.1:9 is unavailable (no connection within 5 s)', C1)).toBe(
      "C1 at 127.0.0.1:50051 cannot reach its C2 at 127.0.0.1:9 (no connection within 5 s). Is `fnn c2` running there, and is C1's --c2 its address?",
    );
  });

  it("leaves a daemon's own UNAVAILABLE answer as it is", () => {
    expect(explainConnectionFailure('C1 is stopping', C1)).toBeUndefined();
  });
});

describe('a CLI connection that fails says why, as one line with exit 5', () => {
  let ours: Authority;
  const id = {} as Record<'c1' | 'owner' | 'stranger', TlsIdentity>;
  const servers: Server[] = [];

  async function identity(authority: Authority, role: Role): Promise<TlsIdentity> {
    const issued = await issueParty(authority, { role, name: role, hosts: ['127.0.0.1'], days: 1 });
    return { ca: Buffer.from(authority.cert), cert: Buffer.from(issued.cert), key: Buffer.from(issued.key) };
  }

  async function healthServer(transport: Transport): Promise<string> {
    const server = new Server();
    addStandardServices(server, []);
    servers.push(server);
    return bind(server, '127.0.0.1:0', transport);
  }

  /** The reason the CLI prints when a health check of `address` as `transport` fails. */
  async function failure(address: string, transport: Transport) {
    const health = connectHealth(address, transport, 'c1');
    try {
      await checkHealth(health, '', new Date(Date.now() + 10_000));
    } catch (error) {
      return classify(error);
    } finally {
      health.close();
    }
    throw new Error('the health check succeeded');
  }

  beforeAll(async () => {
    ours = await issueAuthority(1);
    const theirs = await issueAuthority(1);
    [id.c1, id.owner, id.stranger] = await Promise.all([identity(ours, 'c1'), identity(ours, 'owner'), identity(theirs, 'c1')]);
  });

  afterAll(() => servers.forEach((s) => s.forceShutdown()));

  it('nothing listening: names C1, its address and `fnn c1`', async () => {
    const address = await new Promise<string>((resolve) => {
      const probe = createNetServer().listen(0, '127.0.0.1', () => {
        const port = (probe.address() as AddressInfo).port;
        probe.close(() => resolve(`127.0.0.1:${port}`));
      });
    });
    const { code, reason } = await failure(address, INSECURE);
    expect(code).toBe(EXIT.unavailable);
    expect(reason).toBe(`UNAVAILABLE: C1 at ${address} cannot be reached (connection refused). Is \`fnn c1\` running there?`);
  });

  it("a daemon with another deployment's certificate: not from your CA", async () => {
    const address = await healthServer(id.stranger);
    const { code, reason } = await failure(address, id.owner);
    expect(code).toBe(EXIT.unavailable);
    expect(reason).toMatch(new RegExp(`^UNAVAILABLE: C1's certificate at ${address} is not from your CA`));
  });

  it('--insecure against a TLS daemon: says to pass --tls-dir', async () => {
    const address = await healthServer(id.c1);
    const { code, reason } = await failure(address, INSECURE);
    expect(code).toBe(EXIT.unavailable);
    expect(reason).toMatch(/did not answer in plaintext \(--insecure\): it probably runs TLS\. Pass --tls-dir DIR instead of --insecure$/);
  });

  it('TLS against a plaintext daemon: says the daemon runs --insecure', async () => {
    const address = await healthServer(INSECURE);
    const { code, reason } = await failure(address, id.owner);
    expect(code).toBe(EXIT.unavailable);
    expect(reason).toMatch(/speaks plaintext \(it runs with --insecure\) and this command TLS/);
  });
});

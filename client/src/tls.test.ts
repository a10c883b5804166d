import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChannelCredentials, Metadata, status as Code, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as wire from '@fnn/proto';
import { startC1 } from '@fnn/server-c1';
import { startC2 } from '@fnn/server-c2';
import {
  checkHealth,
  generateKeyPair,
  localC1Crypto,
  localC2Crypto,
  multiExpFixed,
  type FixedWidthValues,
  type Logger,
  type Role,
  type RunningDaemon,
  type TlsIdentity,
} from '@fnn/shared';
import { issueAuthority, issueParty, type Authority } from './certificates';
import { call, connectC1, connectC2, connectHealth, connectReplica } from './connect';

// C1 and C2 in this process over mutual TLS with certificates from a fresh CA:
// who gets in, who is refused, with which code, and what the daemon logs. The
// CLI over TLS end to end (owner uploads, doctor queries) is cli.e2e.test.ts.

const HOSTS = ['127.0.0.1'];
const localMultiExp = async (bases: FixedWidthValues, exponents: FixedWidthValues, modulus: bigint) =>
  multiExpFixed(bases, exponents, modulus);

let root: string;
let ca: Authority;
const ids = {} as Record<Role, TlsIdentity>;
let strangerDoctor: TlsIdentity; // a doctor's certificate from another CA
let c1: RunningDaemon;
let c2: RunningDaemon;
const logged: { level: string; fields: Record<string, unknown>; message: string }[] = [];

/** A logger that keeps what it is given, to check what a refusal writes. */
function recordingLogger(): Logger {
  const at = (level: string) => (fields: object, message: string) =>
    logged.push({ level, fields: fields as Record<string, unknown>, message });
  const log: Logger = { info: at('info'), warn: at('warn'), error: at('error'), child: () => log };
  return log;
}

async function identity(authority: Authority, role: Role): Promise<TlsIdentity> {
  const issued = await issueParty(authority, { role, name: role, hosts: role === 'c1' || role === 'c2' ? HOSTS : [], days: 1 });
  return { ca: Buffer.from(authority.cert), cert: Buffer.from(issued.cert), key: Buffer.from(issued.key) };
}

/** A unary call's failure code (or OK), for the checks below. */
const codeOf = (promise: Promise<unknown>) =>
  promise.then(
    () => Code.OK,
    (e: ServiceError) => e.code,
  );

const records = async () => {
  const client = connectC1(c1.address, ids.owner);
  try {
    return Number((await call(client.status.bind(client), {}, 10_000)).records);
  } finally {
    client.close();
  }
};

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'fnn-tls-test-'));
  ca = await issueAuthority(1);
  for (const role of ['c1', 'c2', 'owner', 'doctor'] as const) ids[role] = await identity(ca, role);
  strangerDoctor = await identity(await issueAuthority(1), 'doctor');
  const { publicKey: pk, secretKey: sk } = await generateKeyPair(512);
  const { publicKey: pk1, secretKey: sk1 } = await generateKeyPair(512);
  const log = recordingLogger();
  c2 = await startC2({
    listen: '127.0.0.1:0',
    dbPath: join(root, 'c2.db'),
    crypto: localC2Crypto(sk),
    fast: { sk2: sk, pk1: pk1, multiExp: localMultiExp },
    log,
    transport: ids.c2,
  });
  c1 = await startC1({
    listen: '127.0.0.1:0',
    dbPath: join(root, 'c1.db'),
    c2Address: c2.address,
    crypto: localC1Crypto(pk),
    fast: { pk2: pk, sk1: sk1, multiExp: localMultiExp },
    log,
    transport: ids.c1,
  });
});

afterAll(async () => {
  await c1?.stop();
  await c2?.stop();
  rmSync(root, { recursive: true, force: true });
});

describe('mutual TLS', () => {
  it('health reports SERVING for the server and each service, over TLS, to any role', async () => {
    for (const [daemon, role, services] of [
      [c1, 'c1', ['', 'fnn.v1.Database', 'fnn.v1.Audit']],
      [c2, 'c2', ['', 'fnn.v1.SecureComputation', 'fnn.v1.Retrieval', 'fnn.v1.Replica', 'fnn.v1.Audit']],
    ] as const) {
      const health = connectHealth(daemon.address, ids.doctor, role);
      try {
        for (const service of services)
          expect(await checkHealth(health, service, new Date(Date.now() + 10_000), true), `${role} "${service}"`).toBe('SERVING');
      } finally {
        health.close();
      }
    }
  });

  it('C1 reaches C2 over TLS with its own certificate', async () => {
    const client = connectC1(c1.address, ids.doctor);
    try {
      expect((await call(client.status.bind(client), {}, 10_000)).c2Reachable).toBe(true);
    } finally {
      client.close();
    }
  });

  // Both refusals happen in the TLS handshake (the daemons demand a certificate
  // from their CA), before any gRPC call exists, so the caller sees UNAVAILABLE.
  it('refuses a caller without a certificate', async () => {
    const bare = new wire.DatabaseClient(c1.address, ChannelCredentials.createSsl(ids.owner.ca));
    try {
      expect(await codeOf(call(bare.status.bind(bare), {}, 10_000))).toBe(Code.UNAVAILABLE);
    } finally {
      bare.close();
    }
  });

  it('refuses a certificate from another CA, at C1 and at C2', async () => {
    // The stranger trusts our CA (so the server side is what refuses), but its own certificate is another CA's.
    const stranger = { ...strangerDoctor, ca: ids.doctor.ca };
    const db = connectC1(c1.address, stranger);
    const retrieval = connectC2(c2.address, stranger);
    try {
      expect(await codeOf(call(db.status.bind(db), {}, 10_000))).toBe(Code.UNAVAILABLE);
      expect(await codeOf(call(retrieval.status.bind(retrieval), {}, 10_000))).toBe(Code.UNAVAILABLE);
    } finally {
      db.close();
      retrieval.close();
    }
  });

  it('a client does not talk to a server whose certificate is for another role (C1 posing as C2)', async () => {
    const posing = connectC2(c1.address, ids.doctor); // C1's address: its valid certificate says c1, not c2
    try {
      expect(await codeOf(call(posing.status.bind(posing), {}, 10_000))).toBe(Code.UNAVAILABLE);
    } finally {
      posing.close();
    }
  });
});

describe('roles', () => {
  it("refuses a doctor's upload, delete, slot allocation and group read at C1 and replica writes at C2 with PERMISSION_DENIED, changing nothing", async () => {
    const before = await records();
    const db = connectC1(c1.address, ids.doctor);
    const replica = connectReplica(c2.address, ids.doctor);
    try {
      const tag = Buffer.alloc(32);
      const shape = { width: 4, height: 4, maxValue: 255 };
      expect(await codeOf(call(db.allocateSlots.bind(db), { lookupTags: [tag], ...shape }, 10_000))).toBe(Code.PERMISSION_DENIED);
      expect(await codeOf(call(db.getGroup.bind(db), { group: 0 }, 10_000))).toBe(Code.PERMISSION_DENIED);
      expect(await codeOf(call(db.upload.bind(db), wire.UploadRequest.fromPartial({}), 10_000))).toBe(Code.PERMISSION_DENIED);
      expect(await codeOf(call(db.delete.bind(db), { lookupTags: [tag], groups: [] }, 10_000))).toBe(Code.PERMISSION_DENIED);
      expect(await codeOf(call(replica.putGroup.bind(replica), wire.ReplicaGroup.fromPartial({}), 10_000))).toBe(Code.PERMISSION_DENIED);
    } finally {
      db.close();
      replica.close();
    }
    expect(await records()).toBe(before);
  });

  it('logs a refusal with the role and the method, and nothing the caller sent', async () => {
    const db = connectC1(c1.address, ids.doctor);
    const secret = Buffer.alloc(32, 0xab);
    try {
      await codeOf(call(db.delete.bind(db), { lookupTags: [secret], groups: [] }, 10_000, 'refusal-log-test'));
    } finally {
      db.close();
    }
    const line = logged.find((l) => l.message === 'refused' && l.fields.method === wire.DatabaseService.delete.path);
    expect(line).toMatchObject({ level: 'warn', fields: { role: 'doctor', code: Code.PERMISSION_DENIED } });
    expect(JSON.stringify(logged)).not.toMatch(/abab|171,171/);
  });

  it('lets the owner through the same calls: its slot allocation and group read are answered by the handlers, its replica write reaches the handler', async () => {
    const db = connectC1(c1.address, ids.owner);
    const replica = connectReplica(c2.address, ids.owner);
    try {
      const tag = Buffer.alloc(32);
      expect(await codeOf(call(db.allocateSlots.bind(db), { lookupTags: [tag], width: 4, height: 4, maxValue: 255 }, 10_000))).toBe(
        Code.OK,
      );
      expect(await call(db.getGroup.bind(db), { group: 0 }, 10_000)).toEqual({ version: Buffer.alloc(0), members: [] });
      // An empty change is refused by the handler (INVALID_ARGUMENT), not by the role check.
      expect(await codeOf(call(replica.putGroup.bind(replica), wire.ReplicaGroup.fromPartial({}), 10_000))).toBe(Code.INVALID_ARGUMENT);
    } finally {
      db.close();
      replica.close();
    }
  });

  it("refuses a doctor's or the owner's protocol session at C2: only C1 may open one", async () => {
    for (const role of ['doctor', 'owner'] as const) {
      const secure = new wire.SecureComputationClient(c2.address, channelFor(role));
      try {
        const code = await new Promise<number>((resolve) => {
          const session = secure.session(new Metadata(), { deadline: new Date(Date.now() + 10_000) });
          session.on('data', () => {});
          session.on('error', (e: ServiceError) => resolve(e.code));
          session.on('status', (s) => resolve(s.code));
          session.end();
        });
        expect(code, role).toBe(Code.PERMISSION_DENIED);
      } finally {
        secure.close();
      }
    }
  });
});

function channelFor(role: Role) {
  return ChannelCredentials.createSsl(ids[role].ca, ids[role].key, ids[role].cert);
}

import type { PeerCertificate } from 'node:tls';
import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { AuditService, DatabaseService, ReplicaService, RetrievalService, SecureComputationService } from '@fnn/proto';
import { ACCESS_POLICY, callerOf, refusal, rpcName } from './access-control';
import { roleOf, type Role } from './credentials';
import { toStatus } from './status';

// The table decides; these pin what it decides, and that no RPC of the wire is left out of it.

const certFor = (ou: string | string[] | undefined) => ({ subject: { CN: 'x', OU: ou } }) as unknown as PeerCertificate;
const codeOf = (method: string, ou: string | string[] | undefined) => {
  const refused = refusal(method, ou === undefined ? undefined : certFor(ou));
  return refused ? toStatus(refused).code : status.OK;
};

describe('the access table', () => {
  it('names every RPC of every FNN service, so a new one is decided, not open by accident', () => {
    for (const service of [DatabaseService, SecureComputationService, RetrievalService, ReplicaService, AuditService])
      for (const method of Object.values(service)) expect(ACCESS_POLICY, method.path).toHaveProperty([method.path]);
  });

  it('lets only the owner change the collection at C1 and the replica at C2', () => {
    for (const method of [
      DatabaseService.upload,
      DatabaseService.delete,
      DatabaseService.allocateSlots,
      DatabaseService.getGroup,
      ReplicaService.putGroup,
    ]) {
      expect(codeOf(method.path, 'owner'), method.path).toBe(status.OK);
      for (const role of ['doctor', 'c1', 'c2']) expect(codeOf(method.path, role), `${role} ${method.path}`).toBe(status.PERMISSION_DENIED);
    }
  });

  it('lets doctors and the owner query and retrieve, and no server', () => {
    for (const method of [
      DatabaseService.query,
      DatabaseService.queryWithProgress,
      DatabaseService.batchQuery,
      RetrievalService.retrieve,
      RetrievalService.putShare,
    ]) {
      for (const role of ['owner', 'doctor']) expect(codeOf(method.path, role), `${role} ${method.path}`).toBe(status.OK);
      for (const role of ['c1', 'c2']) expect(codeOf(method.path, role), `${role} ${method.path}`).toBe(status.PERMISSION_DENIED);
    }
  });

  it("gives the audit trail (every doctor's name and calls) to the owner only", () => {
    expect(codeOf(AuditService.read.path, 'owner')).toBe(status.OK);
    for (const role of ['doctor', 'c1', 'c2']) expect(codeOf(AuditService.read.path, role), role).toBe(status.PERMISSION_DENIED);
  });

  it('opens protocol sessions at C2 to C1 only', () => {
    expect(codeOf(SecureComputationService.session.path, 'c1')).toBe(status.OK);
    for (const role of ['owner', 'doctor', 'c2'])
      expect(codeOf(SecureComputationService.session.path, role)).toBe(status.PERMISSION_DENIED);
  });

  it('answers status and health to any role', () => {
    for (const role of ['owner', 'doctor', 'c1', 'c2'])
      for (const path of [DatabaseService.status.path, RetrievalService.status.path, '/grpc.health.v1.Health/Check'])
        expect(codeOf(path, role), `${role} ${path}`).toBe(status.OK);
  });

  it('refuses a method it does not name, even to the owner', () => {
    expect(codeOf('/fnn.v1.Database/SomethingNew', 'owner')).toBe(status.PERMISSION_DENIED);
  });

  it('treats no certificate, no role, an unknown role or two roles as unauthenticated', () => {
    expect(codeOf(DatabaseService.status.path, undefined)).toBe(status.UNAUTHENTICATED);
    for (const ou of ['nurse', ['owner', 'doctor']])
      expect(codeOf(DatabaseService.status.path, ou), String(ou)).toBe(status.UNAUTHENTICATED);
    expect(roleOf({ subject: {} })).toBeUndefined();
    expect(roleOf({ subject: { OU: ['Radiology', 'doctor'] } })).toBe<Role>('doctor');
  });
});

describe('the caller C2 counts held values against', () => {
  const cert = (cn: string, serialNumber: string) =>
    ({ subject: { CN: cn, OU: 'doctor', O: 'FNN' }, serialNumber }) as unknown as PeerCertificate;

  it('is the certificate: subject and serial, so doctors sharing a name but not a certificate are two callers', () => {
    expect(callerOf(cert('doctor', '01'))).toBe(callerOf(cert('doctor', '01')));
    expect(callerOf(cert('doctor', '01'))).not.toBe(callerOf(cert('doctor', '02')));
    expect(callerOf(cert('dr-a', '01'))).not.toBe(callerOf(cert('dr-b', '01')));
  });

  it('is "insecure" without TLS, where there is no certificate', () => {
    expect(callerOf(undefined)).toBe('insecure');
  });
});

describe('the name a refused call is reported under', () => {
  it("is the name the daemons' handlers log for it, so a refusal and a served call of one method count together", () => {
    expect(rpcName(DatabaseService.upload.path)).toBe('Upload');
    expect(rpcName(DatabaseService.listGroups.path)).toBe('ListGroups');
    expect(rpcName(RetrievalService.putShare.path)).toBe('PutShare');
    expect(rpcName(SecureComputationService.session.path)).toBe('Session');
    expect(rpcName(ReplicaService.putGroup.path)).toBe('Replica.PutGroup');
    expect(rpcName(ReplicaService.listGroups.path)).toBe('Replica.ListGroups');
    expect(rpcName(AuditService.read.path)).toBe('Audit.Read');
  });
});

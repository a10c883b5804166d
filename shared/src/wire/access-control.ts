import { ServerInterceptingCall, type ServerInterceptingCallInterface, type ServerInterceptor } from '@grpc/grpc-js';
import type { PeerCertificate } from 'node:tls';
import { AuditService, DatabaseService, ReplicaService, RetrievalService, SecureComputationService } from '@fnn/proto';
import { permissionDenied, unauthenticated, type FnnError } from '../errors';
import type { Logger } from '../logger';
import { roleOf, type Role } from './credentials';
import { HEALTH_METHODS, REFLECTION_METHODS } from './standard-services';
import { toStatus } from './status';

// Who may call what: the one table, and the one check both daemons run before
// any handler sees a call. TLS has already verified the caller's certificate
// against the deployment CA; this decides what its role may do.

/** Any caller with a verified certificate and a role: status, health, reflection. */
export const ANY_ROLE = 'any role' as const;
type Allowed = readonly Role[] | typeof ANY_ROLE;

const OWNER: readonly Role[] = ['owner'];
const CLINICIANS: readonly Role[] = ['owner', 'doctor'];

/** Keyed by the full gRPC method path, taken from the generated definitions so a renamed RPC cannot slip past. */
export const ACCESS_POLICY: Readonly<Record<string, Allowed>> = {
  // C1
  [DatabaseService.upload.path]: OWNER,
  [DatabaseService.uploadInParts.path]: OWNER,
  [DatabaseService.delete.path]: OWNER,
  [DatabaseService.allocateSlots.path]: OWNER,
  // The members' sealed images: only the owner's record key opens them, but only the owner needs them.
  [DatabaseService.getGroup.path]: OWNER,
  // Group numbers, digests and member counts: for `fnn check` and `fnn repair`, the owner's only.
  [DatabaseService.listGroups.path]: OWNER,
  [DatabaseService.query.path]: CLINICIANS,
  [DatabaseService.queryWithProgress.path]: CLINICIANS,
  [DatabaseService.batchQuery.path]: CLINICIANS,
  [DatabaseService.status.path]: ANY_ROLE,
  // Every collection's name, size, count and settings: what Status says of one, for all.
  [DatabaseService.listCollections.path]: ANY_ROLE,
  // C2: only C1 runs protocol sessions; doctors fetch results and hand over query shares
  [SecureComputationService.session.path]: ['c1'],
  [RetrievalService.retrieve.path]: CLINICIANS,
  [RetrievalService.putShare.path]: CLINICIANS,
  [RetrievalService.status.path]: ANY_ROLE,
  [ReplicaService.putGroup.path]: OWNER,
  [ReplicaService.commitGroup.path]: OWNER,
  [ReplicaService.listGroups.path]: OWNER,
  // Both daemons: the audit trail names every doctor and what each did.
  [AuditService.read.path]: OWNER,
  // the standard services: health and reflection
  ...Object.fromEntries([...HEALTH_METHODS, ...REFLECTION_METHODS].map((path) => [path, ANY_ROLE])),
};

/** Who called, as the audit trail and the logs name a person: the certificate's public names and serial. */
export interface CallerIdentity {
  /** The subject's CN: a person's name, or a server's role. */
  subject: string;
  role: Role | 'none';
  /** Lower-case hex without leading zeros, as a CRL lists it. */
  serial: string;
}

export function callerIdentity(cert: PeerCertificate | undefined): CallerIdentity | undefined {
  if (!cert?.subject) return undefined;
  const cn = cert.subject.CN as string | string[] | undefined;
  return {
    subject: (Array.isArray(cn) ? cn.join(', ') : cn) ?? '',
    role: roleOf(cert) ?? 'none',
    serial: normalSerial(cert.serialNumber ?? ''),
  };
}

export const normalSerial = (hex: string) => hex.toLowerCase().replace(/^0+(?=.)/, '');

/**
 * One call, once it has ended or was refused: what the audit trail and the
 * metrics hear. `fields` are the call's log fields (counts, protocol, k; never
 * a value a caller sent).
 */
export interface CallRecord {
  rpc: string;
  requestId: string;
  caller: CallerIdentity | undefined;
  fields: Record<string, string | number | boolean>;
  /** The gRPC status code the call ended with (0 = OK). */
  code: number;
  ms: number;
}

export type CallObserver = (record: CallRecord) => void;

/** What a daemon adds to the access check: refusals reported to its observers, and revoked certificates. */
export interface AccessOptions {
  onRefused?: CallObserver;
  /** Whether the deployment CA has revoked the certificate with this serial (lower-case hex, as callerIdentity gives it). */
  isRevoked?: (serial: string) => boolean;
}

/**
 * Whom a caller's held values are counted against (C2's pending shares): its
 * verified certificate, by subject and serial (doctors may share a subject but
 * a reissued certificate is another caller), or "insecure" when TLS is off and
 * every caller is one.
 */
export function callerOf(cert: PeerCertificate | undefined): string {
  if (!cert?.subject) return 'insecure';
  return `${JSON.stringify(cert.subject)}#${cert.serialNumber}`;
}

/**
 * Why a caller with this certificate may not call `method`, or undefined if it may.
 * A method missing from the table is refused: a new RPC is closed until someone decides who may call it.
 */
export function refusal(method: string, cert: PeerCertificate | undefined, policy = ACCESS_POLICY): FnnError | undefined {
  const role = roleOf(cert);
  if (!role) return unauthenticated(cert ? 'the client certificate carries no FNN role' : 'a client certificate is required');
  const allowed = policy[method];
  if (allowed === ANY_ROLE) return undefined;
  if (allowed?.includes(role)) return undefined;
  return permissionDenied(`role ${role} may not call ${method}`);
}

/**
 * A method as the daemons' handlers name it in their log lines, the audit
 * trail and the metrics: the bare method for C1's Database and C2's protocol
 * services, `Service.Method` for the services whose method names repeat
 * another's (Replica.ListGroups beside Database's ListGroups, Audit.Read).
 */
export function rpcName(path: string): string {
  const [, service = '', method = path] = path.split('/');
  const short = service.split('.').pop() ?? service;
  return QUALIFIED_SERVICES.has(short) ? `${short}.${method}` : method;
}
const QUALIFIED_SERVICES = new Set(['Replica', 'Audit']);

/**
 * The server interceptor that enforces the table. It runs when the call's
 * metadata arrives, before the handler is started, so a refused call never
 * reaches a service (nothing is read from or written to a database).
 */
export function accessControl(log: Logger, options: AccessOptions = {}, policy = ACCESS_POLICY): ServerInterceptor {
  return (method, call: ServerInterceptingCallInterface) =>
    new ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (metadata, pass) => {
            const cert = call.getAuthContext()?.sslPeerCertificate;
            const caller = callerIdentity(cert);
            // Revocation first: a revoked certificate is refused whatever its role may call, health and status too.
            const revoked = caller !== undefined && options.isRevoked?.(caller.serial) === true;
            const refused = revoked
              ? unauthenticated(`this certificate (serial ${caller.serial}) is revoked; ask the owner for a new one`)
              : refusal(method.path, cert, policy);
            if (!refused) return pass(metadata);
            const s = toStatus(refused);
            // Role, method and the certificate's public names only: nothing a caller sent is logged.
            // The serial names the one certificate (a person may hold a reissued one): public, like the CN.
            log.warn(
              {
                method: method.path,
                role: roleOf(cert) ?? 'none',
                subject: cert?.subject?.CN,
                serial: caller?.serial,
                ...(revoked ? { revoked: true } : {}),
                peer: call.getPeer(),
                code: s.code,
              },
              'refused',
            );
            options.onRefused?.({
              rpc: rpcName(method.path),
              requestId: '',
              caller,
              fields: revoked ? { refused: true, revoked: true } : { refused: true },
              code: s.code,
              ms: 0,
            });
            call.sendStatus(s);
          },
        }),
    });
}

import { checkServerIdentity } from 'node:tls';
import { ChannelCredentials, ServerCredentials } from '@grpc/grpc-js';

// The one place where gRPC credentials are made, for both daemons, C1's link to
// C2 and the CLI. Every connection is TLS with certificates on both sides,
// issued by the deployment's own CA (`fnn certs`); plaintext exists only for an
// explicit --insecure.

/** Who a certificate speaks for; carried in the subject's OU (see client/src/certificates.ts). */
export const ROLES = ['owner', 'doctor', 'c1', 'c2'] as const;
export type Role = (typeof ROLES)[number];

/** One party's TLS material, PEM: the deployment CA, its certificate, its private key. */
export interface TlsIdentity {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

export const INSECURE = 'insecure' as const;
/** How a party talks: TLS as itself, or plaintext (tests, or an operator's explicit --insecure). */
export type Transport = TlsIdentity | typeof INSECURE;

export const isInsecure = (transport: Transport): transport is typeof INSECURE => transport === INSECURE;

/**
 * The role a certificate carries, or undefined when it carries none we know.
 * Only meaningful for a certificate that TLS already verified against the CA.
 */
export function roleOf(cert: { subject?: { OU?: string | string[] } } | undefined): Role | undefined {
  // TLS gives a repeated field as an array, whatever its declared type says.
  const ou = cert?.subject?.OU;
  const units = ou === undefined ? [] : Array.isArray(ou) ? ou : [ou];
  const roles = units.filter((u): u is Role => (ROLES as readonly string[]).includes(u));
  // Two roles in one certificate would make the check ambiguous: it is then no role at all.
  return roles.length === 1 ? roles[0] : undefined;
}

/**
 * A daemon's server side: presents its certificate and demands one from every
 * caller, verified against the CA (a caller without one, or with one from
 * another CA, fails the handshake).
 */
export function serverCredentials(transport: Transport): ServerCredentials {
  if (isInsecure(transport)) return ServerCredentials.createInsecure();
  return ServerCredentials.createSsl(transport.ca, [{ cert_chain: transport.cert, private_key: transport.key }], true);
}

/** What a caller checks of a server's certificate beyond the CA, the address and the role. */
export interface ServerCertificateCheck {
  /** Whether the deployment CA has revoked this serial: such a server is refused at the handshake. */
  isRevoked?: (serial: string) => boolean;
  /** Hears the serial of every certificate a handshake accepted (so a link can drop a connection whose server is revoked later). */
  accepted?: (serial: string) => void;
}

/**
 * A caller's side of a connection to the server with role `server`: presents
 * its own certificate, checks the server's against the CA and the address, and
 * that it really is that server (a doctor's certificate cannot pose as C2),
 * and, given `check.isRevoked`, that the CA has not revoked it.
 */
export function channelCredentials(transport: Transport, server: Role, check: ServerCertificateCheck = {}): ChannelCredentials {
  if (isInsecure(transport)) return ChannelCredentials.createInsecure();
  return ChannelCredentials.createSsl(transport.ca, transport.key, transport.cert, {
    checkServerIdentity: (host, cert) => {
      const hostError = checkServerIdentity(host, cert);
      if (hostError) return hostError;
      const role = roleOf(cert);
      if (role !== server) return new Error(`the server's certificate is for ${role ?? 'no FNN role'}, not ${server}`);
      // A serial is not a secret: the CRL publishes the revoked ones.
      if (check.isRevoked?.(cert.serialNumber)) return new Error(`the ${server}'s certificate (serial ${cert.serialNumber}) is revoked`);
      check.accepted?.(cert.serialNumber);
      return undefined;
    },
  });
}

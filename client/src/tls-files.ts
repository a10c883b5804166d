import { existsSync, readFileSync } from 'node:fs';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { INSECURE, roleOf, type Role, type TlsIdentity, type Transport } from '@fnn/shared';
import { refuseReadableByOthers } from './key-files';
import { CliError } from './output';

// Reading a party's TLS material. The certificate directory, as `fnn certs
// --out DIR` writes it (certificate-directory.ts); each party
// gets its own subdirectory to copy to its machine and pass as --tls-dir:
//   ca.pem, ca-key.pem          the deployment CA (its key stays with the owner, mode 0600)
//   issued.json, crl.pem        the register of issued certificates, the CRL made from it
//   c1/, c2/, owner/, doctor/   ca.pem, cert.pem, key.pem (mode 0600); c1/ and c2/ also crl.pem
//   people/<name>/              a person's, from `fnn certs issue`
export const CA_FILE = 'ca.pem';
export const CA_KEY_FILE = 'ca-key.pem';
export const CERT_FILE = 'cert.pem';
export const KEY_FILE = 'key.pem';
/** The CA's revocation list: in DIR, and in c1/ and c2/ whose daemons enforce it (`fnn certs revoke`). */
export const CRL_FILE = 'crl.pem';
export const PARTIES: readonly Role[] = ['c1', 'c2', 'owner', 'doctor'];

/** The connection flags every command and daemon takes (environment: FNN_TLS_DIR, FNN_CA, FNN_CERT, FNN_KEY). */
export interface TransportFlags {
  insecure?: boolean;
  tlsDir?: string;
  ca?: string;
  cert?: string;
  key?: string;
}

/**
 * TLS as one of `roles`, from --tls-dir and/or --ca/--cert/--key, or plaintext
 * with --insecure; neither, or both, is a usage error. The files are checked
 * here so a wrong one fails at start with a clear reason, not at the first call.
 */
export function transportFrom(flags: TransportFlags, roles: readonly Role[]): Transport {
  const tls = flags.tlsDir !== undefined || flags.ca !== undefined || flags.cert !== undefined || flags.key !== undefined;
  if (flags.insecure && tls) throw new CliError('usage', '--insecure and TLS files exclude each other');
  if (flags.insecure) return INSECURE;
  if (!tls) throw new CliError('usage', 'no TLS certificate: pass --tls-dir DIR (see `fnn certs`), or --insecure for plaintext');
  const path = (given: string | undefined, file: string, flag: string) => {
    if (given !== undefined) return given;
    if (flags.tlsDir === undefined) throw new CliError('usage', `${flag} is needed (or --tls-dir)`);
    return join(flags.tlsDir, file);
  };
  const caPath = path(flags.ca, CA_FILE, '--ca');
  const certPath = path(flags.cert, CERT_FILE, '--cert');
  const keyPath = path(flags.key, KEY_FILE, '--key');
  const identity: TlsIdentity = { ca: readPem(caPath), cert: readPem(certPath), key: readPem(keyPath, true) };
  checkIdentity(identity, roles, certPath, keyPath);
  return identity;
}

function readPem(path: string, secret = false): Buffer {
  if (!existsSync(path)) throw new CliError('usage', `${path} not found (run \`fnn certs --out DIR\`?)`);
  if (secret) refuseReadableByOthers(path);
  try {
    return readFileSync(path);
  } catch {
    throw new CliError('usage', `${path} could not be read`);
  }
}

/** The certificate is the CA's, is for one of `roles`, is in date, and belongs to the key. */
function checkIdentity(identity: TlsIdentity, roles: readonly Role[], certPath: string, keyPath: string): void {
  let ca: X509Certificate;
  let cert: X509Certificate;
  try {
    ca = new X509Certificate(identity.ca);
    cert = new X509Certificate(identity.cert);
  } catch {
    throw new CliError('usage', `${certPath} or its CA file is not a PEM certificate`);
  }
  if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey))
    throw new CliError('usage', `${certPath} was not issued by the CA given with it`);
  const now = Date.now();
  if (Date.parse(cert.validFrom) > now || Date.parse(cert.validTo) < now)
    throw new CliError('usage', `${certPath} is not valid now (${cert.validFrom} to ${cert.validTo})`);
  const role = roleOf({ subject: subjectFields(cert.subject) });
  if (!role || !roles.includes(role))
    throw new CliError('usage', `${certPath} is for ${role ?? 'no FNN role'}; this program needs ${roles.join(' or ')}`);
  let matches: boolean;
  try {
    matches = cert.checkPrivateKey(createPrivateKey(identity.key));
  } catch {
    throw new CliError('usage', `${keyPath} is not a PEM private key`);
  }
  if (!matches) throw new CliError('usage', `${keyPath} is not the key of ${certPath}`);
}

/** "CN=c1\nOU=c1\nO=FNN" as the fields object TLS gives for a peer's certificate. */
function subjectFields(subject: string): Record<string, string | string[]> {
  const fields: Record<string, string | string[]> = {};
  for (const line of subject.split('\n')) {
    const at = line.indexOf('=');
    if (at < 0) continue;
    const [name, value] = [line.slice(0, at), line.slice(at + 1)];
    const seen = fields[name];
    fields[name] = seen === undefined ? value : [...(Array.isArray(seen) ? seen : [seen]), value];
  }
  return fields;
}

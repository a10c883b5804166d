import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Role } from '@fnn/shared';
import { issueAuthority, issueParty } from './certificates';
import { REGISTER_FILE } from './certificate-register';
import { startRegister } from './person-certificates';
import { CliError } from './output';
import { CA_FILE, CA_KEY_FILE, CERT_FILE, CRL_FILE, KEY_FILE, PARTIES } from './tls-files';

// Writing the certificate directory for `fnn certs` (the layout is in tls-files.ts).

/** Where the servers are reached unless told otherwise: this machine. */
export const LOCAL_HOSTS = ['localhost', '127.0.0.1', '::1'];

export interface CertificateRequest {
  c1Hosts: string[];
  c2Hosts: string[];
  days: number;
}

/** Issue the CA and every party's certificate into `dir`; refuses to overwrite any of it. */
export async function writeCertificateDirectory(dir: string, request: CertificateRequest): Promise<string[]> {
  const targets = [
    join(dir, CA_FILE),
    join(dir, CA_KEY_FILE),
    join(dir, REGISTER_FILE),
    join(dir, CRL_FILE),
    ...PARTIES.flatMap((p) => [join(dir, p, CERT_FILE), join(dir, p, KEY_FILE)]),
  ];
  for (const t of targets) if (existsSync(t)) throw new CliError('usage', `${t} exists; refusing to overwrite a certificate or key`);
  const ca = await issueAuthority(Math.max(request.days, 3650));
  const hostsOf: Record<Role, string[]> = { c1: request.c1Hosts, c2: request.c2Hosts, owner: [], doctor: [] };
  const issued = await Promise.all(PARTIES.map((role) => issueParty(ca, { role, name: role, hosts: hostsOf[role], days: request.days })));
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, CA_FILE), ca.cert, { mode: 0o644 });
  writeSecret(join(dir, CA_KEY_FILE), ca.key);
  PARTIES.forEach((role, i) => {
    mkdirSync(join(dir, role), { recursive: true });
    writeFileSync(join(dir, role, CA_FILE), ca.cert, { mode: 0o644 });
    writeFileSync(join(dir, role, CERT_FILE), issued[i].cert, { mode: 0o644 });
    writeSecret(join(dir, role, KEY_FILE), issued[i].key);
  });
  // Every certificate is registered, so the shared doctor's can be revoked once doctors have their own.
  await startRegister(
    dir,
    ca,
    PARTIES.map((role, i) => ({ role, issued: issued[i] })),
  );
  return PARTIES.map((role) => join(dir, role));
}

function writeSecret(path: string, content: string): void {
  writeFileSync(path, content, { mode: 0o600, flag: 'wx' });
  chmodSync(path, 0o600); // in case the umask interfered
}

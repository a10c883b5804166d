import { CliError, type Output } from '../output';
import { LOCAL_HOSTS, writeCertificateDirectory } from '../certificate-directory';
import { isLive } from '../certificate-register';
import { issuePerson, listCertificates, resignCrl, revokeCertificate } from '../person-certificates';

/** `fnn certs init` (and `fnn certs`): the deployment CA and a certificate for C1, C2, the owner and a doctor. */
export async function certs(out: Output, options: { out: string; c1Host?: string[]; c2Host?: string[]; days: string }): Promise<void> {
  const days = daysOf(options.days);
  const c1Hosts = options.c1Host?.length ? options.c1Host : LOCAL_HOSTS;
  const c2Hosts = options.c2Host?.length ? options.c2Host : LOCAL_HOSTS;
  const parties = await writeCertificateDirectory(options.out, { c1Hosts, c2Hosts, days });
  out.result(
    { out: options.out, parties, c1Hosts, c2Hosts, days },
    [
      `wrote the CA (${options.out}/ca.pem; its key ca-key.pem stays with you, mode 0600) and, each for --tls-dir:`,
      ...parties.map((p) => `  ${p}`),
      `C1 answers as ${c1Hosts.join(', ')}; C2 as ${c2Hosts.join(', ')} (--c1-host/--c2-host to change)`,
      `people: fnn certs issue --dir ${options.out} --role doctor --name NAME`,
    ].join('\n'),
  );
}

/** `fnn certs issue`: one person's certificate from the kept CA. */
export async function issue(
  out: Output,
  options: { dir: string; role: 'doctor' | 'owner'; name: string; days: string; out?: string; replace?: boolean },
): Promise<void> {
  const result = await issuePerson(options.dir, {
    role: options.role,
    name: options.name,
    days: daysOf(options.days),
    out: options.out,
    replace: options.replace,
  });
  const { entry } = result;
  out.result(
    { ...entry, out: result.out, replaced: result.replaced.map((e) => e.serial), crl: result.crl },
    [
      `issued ${entry.name} (${entry.role}) serial ${entry.serial}, valid until ${entry.notAfter}`,
      `  ${result.out}: give this directory to ${entry.name}, for --tls-dir`,
      ...result.replaced.map((e) => `  revoked the certificate it replaces, serial ${e.serial}`),
      ...(result.crl ? crlLines(result.crl) : []),
    ].join('\n'),
  );
}

/** `fnn certs revoke`: the certificate named, into a new CRL. */
export async function revoke(out: Output, nameOrSerial: string, options: { dir: string }): Promise<void> {
  const { entry, crl, ownersLeft } = await revokeCertificate(options.dir, nameOrSerial);
  if (ownersLeft === 0)
    out.note(`warning: no live owner certificate is left; nobody can upload or delete until \`fnn certs issue --role owner\``);
  out.result({ ...entry, crl }, [`revoked ${entry.name} (${entry.role}) serial ${entry.serial}`, ...crlLines(crl)].join('\n'));
}

/** `fnn certs crl`: the CRL signed again from the register. */
export async function crl(out: Output, options: { dir: string }): Promise<void> {
  const written = await resignCrl(options.dir);
  out.result({ crl: written }, crlLines(written).join('\n'));
}

/** `fnn certs list`: every certificate the CA issued. */
export async function list(out: Output, options: { dir: string }): Promise<void> {
  const entries = listCertificates(options.dir);
  if (out.json) {
    for (const e of entries) out.result(e, '');
    return;
  }
  const rows = [
    ['NAME', 'ROLE', 'SERIAL', 'VALID UNTIL', 'REVOKED'],
    ...entries.map((e) => [e.name, e.role, e.serial, e.notAfter.slice(0, 10), isLive(e) ? '-' : e.revokedAt!.slice(0, 19) + 'Z']),
  ];
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => [...r[i]].length)));
  out.result(
    {},
    rows
      .map((r) =>
        r
          .map((c, i) => c.padEnd(widths[i]))
          .join('  ')
          .trimEnd(),
      )
      .join('\n'),
  );
}

function crlLines(crl: { number: number; revoked: number; paths: string[] }): string[] {
  return [
    `wrote CRL number ${crl.number} (${crl.revoked} revoked) to ${crl.paths.join(', ')}`,
    '  copy it to C1 and C2 beside their certificates (their crl.pem); they read it within a second, or on SIGHUP',
  ];
}

function daysOf(value: string): number {
  const days = Number(value);
  if (!Number.isInteger(days) || days < 1 || days > 3650) throw new CliError('usage', '--days must be an integer from 1 to 3650');
  return days;
}

import { CliError, type Output } from '../output';
import { LOCAL_HOSTS, writeCertificateDirectory } from '../certificate-directory';

/** `fnn certs`: the deployment CA and a certificate for C1, C2, the owner and a doctor. */
export async function certs(out: Output, options: { out: string; c1Host?: string[]; c2Host?: string[]; days: string }): Promise<void> {
  const days = Number(options.days);
  if (!Number.isInteger(days) || days < 1 || days > 3650) throw new CliError('usage', '--days must be an integer from 1 to 3650');
  const c1Hosts = options.c1Host?.length ? options.c1Host : LOCAL_HOSTS;
  const c2Hosts = options.c2Host?.length ? options.c2Host : LOCAL_HOSTS;
  const parties = await writeCertificateDirectory(options.out, { c1Hosts, c2Hosts, days });
  out.result(
    { out: options.out, parties, c1Hosts, c2Hosts, days },
    [
      `wrote the CA (${options.out}/ca.pem; its key ca-key.pem stays with you, mode 0600) and, each for --tls-dir:`,
      ...parties.map((p) => `  ${p}`),
      `C1 answers as ${c1Hosts.join(', ')}; C2 as ${c2Hosts.join(', ')} (--c1-host/--c2-host to change)`,
    ].join('\n'),
  );
}

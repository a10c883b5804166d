import { openDoctorSession, parseProtocol, type DoctorSessionOptions } from '../doctor-session';
import { parseImageOptions } from '../image-files';
import { CliError, type Output } from '../output';
import { isLoopback, newToken } from '../viewer/guard';
import { splitHostPort, startViewer } from '../viewer/server';

export interface ViewerCommandOptions extends DoctorSessionOptions {
  listen: string;
  protocol: string;
  maxFile: string;
}

/**
 * `fnn viewer`: the doctor's local web page over this machine's keys. Runs
 * until SIGINT or SIGTERM; the URL it prints carries the launch's token.
 */
export async function viewer(out: Output, options: ViewerCommandOptions): Promise<void> {
  const flags = parseImageOptions(options); // a malformed flag is reported before anything is connected
  const protocol = parseProtocol(options.protocol);
  const maxFileMiB = Number(options.maxFile);
  if (!Number.isInteger(maxFileMiB) || maxFileMiB < 1 || maxFileMiB > 4096)
    throw new CliError('usage', '--max-file must be a whole number of MiB from 1 to 4096');
  const [host] = splitHostPort(options.listen);
  const session = openDoctorSession(options);
  let server: Awaited<ReturnType<typeof startViewer>>;
  try {
    server = await startViewer({
      session,
      listen: options.listen,
      token: newToken(),
      maxFileBytes: maxFileMiB * 2 ** 20,
      defaultProtocol: protocol,
      flags,
    });
  } catch (error) {
    await session.close();
    const code = (error as { code?: string }).code;
    if (code === 'EADDRINUSE') throw new CliError('usage', `--listen ${options.listen}: that address is in use (pass another port)`);
    if (code === 'EADDRNOTAVAIL' || code === 'EACCES') throw new CliError('usage', `--listen ${options.listen}: cannot bind that address`);
    throw error;
  }
  if (!isLoopback(host))
    out.note(`fnn viewer: listening on ${server.address}, not loopback: anyone who can reach it and has the URL can search with your keys`);
  out.result({ event: 'listening', address: server.address, url: server.url }, `fnn viewer: open ${server.url}\n(Ctrl-C stops it)`);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await server.close();
  await session.close();
}

import { existsSync, readFileSync, statSync, unwatchFile, watchFile, type Stats } from 'node:fs';
import { normalSerial, type Logger } from '@fnn/shared';
import { MAX_CRL_BYTES, readCrl, type RevocationList } from './crl';
import { CliError } from './output';

// A daemon's revocation list: read and verified against the deployment CA at
// start, then again on SIGHUP and whenever the file changes, so revoking a
// person needs no restart. The daemons see only isRevoked(serial).

/** How often the file is looked at: a revocation is enforced within about this long of the file arriving. */
export const CRL_POLL_MS = 1000;

export interface RevocationWatch {
  isRevoked(serial: string): boolean;
  /** Read the file again; false (and one error line) if it is unreadable, not the CA's, or older than the list held. */
  reload(): Promise<boolean>;
  /** The list held now (empty before a file exists). */
  current(): RevocationList | undefined;
  close(): void;
}

export interface WatchOptions {
  path: string;
  /** The deployment CA (PEM): a list must be signed by it. */
  ca: Buffer | string;
  log: Logger;
  /** The file must exist at start (it was named with --tls-crl); otherwise it is awaited. */
  required: boolean;
  pollMs?: number;
}

/**
 * Load the list at `path` and keep it current. At start a bad list is a usage
 * error (the daemon does not start); later a bad one is logged and the list
 * held stays: a revoked certificate never gets back in because a file broke.
 */
export async function watchRevocations(options: WatchOptions): Promise<RevocationWatch> {
  const { path, ca, log } = options;
  let held: RevocationList | undefined;
  if (existsSync(path)) {
    try {
      held = await readCrl(readBounded(path), ca);
    } catch (error) {
      throw new CliError('usage', `${path} is not a usable revocation list: ${(error as Error).message}`);
    }
    log.info({ file: path, number: held.number.toString(), revoked: held.serials.size }, 'revocation list loaded');
    warnIfStale(held, path, log);
  } else if (options.required) {
    throw new CliError('usage', `${path} not found (--tls-crl: the crl.pem \`fnn certs revoke\` writes)`);
  } else {
    log.info({ file: path }, 'no revocation list yet; it is read when it appears');
  }

  // One reload at a time: SIGHUP and a file change may arrive together.
  let pending: Promise<boolean> = Promise.resolve(true);
  const load = async (): Promise<boolean> => {
    let next: RevocationList;
    try {
      next = await readCrl(readBounded(path), ca);
    } catch (error) {
      log.error({ file: path, reason: (error as Error).message }, 'revocation list not reloaded; the previous one stays');
      return false;
    }
    if (held && next.number < held.number) {
      log.error(
        { file: path, number: next.number.toString(), held: held.number.toString() },
        'revocation list not reloaded: older than the one held',
      );
      return false;
    }
    const changed = !held || next.number !== held.number;
    held = next;
    if (changed) log.info({ file: path, number: next.number.toString(), revoked: next.serials.size }, 'revocation list loaded');
    warnIfStale(next, path, log);
    return true;
  };
  const reload = () => (pending = pending.then(load));

  // Polling the path, not watching the inode: an editor's save and `fnn certs revoke` both replace the file by a rename.
  const onChange = (now: Stats, before: Stats) => {
    if (now.mtimeMs === before.mtimeMs && now.size === before.size && now.ino === before.ino) return;
    if (now.nlink === 0 && !existsSync(path)) {
      log.error({ file: path }, 'revocation list removed; the previous one stays');
      return;
    }
    void reload();
  };
  watchFile(path, { interval: options.pollMs ?? CRL_POLL_MS, persistent: false }, onChange);

  return {
    isRevoked: (serial) => held?.serials.has(normalSerial(serial)) ?? false,
    reload,
    current: () => held,
    close: () => unwatchFile(path, onChange),
  };
}

function readBounded(path: string): Buffer {
  if (!existsSync(path)) throw new Error('the file is not there');
  if (statSync(path).size > MAX_CRL_BYTES) throw new Error(`larger than ${MAX_CRL_BYTES} bytes`);
  return readFileSync(path);
}

function warnIfStale(list: RevocationList, path: string, log: Logger): void {
  if (list.nextUpdate && list.nextUpdate.getTime() < Date.now())
    log.warn(
      { file: path, nextUpdate: list.nextUpdate.toISOString() },
      'revocation list past its next update: sign it again with `fnn certs crl`',
    );
}

import { spawnSync } from 'node:child_process';
import { statfsSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { fileBytes, peakRss } from './point';

// What `npm run bench:scale` measures of the daemons from outside them: their
// databases' size and their peak memory, per phase. Read through SQLite and
// /proc, so the daemons run unchanged.

export interface Stored {
  /** File and WAL, after the checkpoint. */
  bytes: number;
  /** The checkpoint could not empty the whole WAL (a reader held it): the bytes include what is left there. */
  busy: boolean;
}

/**
 * The database's size once its WAL is copied into the file and truncated
 * (what the daemon itself does after a delete), from a second connection:
 * WAL mode allows it while the daemon has the file open. Otherwise the size
 * would count each group's superseded pages still in the WAL.
 */
export function storedBytes(path: string): Stored {
  const db = new Database(path, { fileMustExist: true });
  try {
    const [row] = db.pragma('wal_checkpoint(TRUNCATE)') as { busy: number }[];
    return { bytes: fileBytes(path), busy: row?.busy !== 0 };
  } finally {
    db.close();
  }
}

/**
 * Sets the process's VmHWM back to its current RSS (Linux >= 4.0, our own
 * child), so the next reading is the peak of what ran since: the queries
 * apart from the upload. False where /proc does not allow it; VmHWM is then
 * the peak since the daemon started.
 */
export function resetPeakRss(pid: number | undefined): boolean {
  if (pid === undefined) return false;
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

export { peakRss };

/** Free bytes on the file system that holds `path`. */
export function freeBytes(path: string): number {
  const fs = statfsSync(dirname(path));
  return fs.bavail * fs.bsize;
}

/**
 * The machine's speed check (docs/BENCHMARKS.md): `node -e` summing 10^8
 * integers at top level, wall time in ms, Node's start included, as it is
 * run by hand. Issue 11's upload target is stated for a machine where this is
 * under a second; the figure says how far this one is from that.
 */
export function speedCheckMs(): number {
  const started = process.hrtime.bigint();
  const run = spawnSync(process.execPath, ['-e', 'let s = 0; for (let i = 0; i < 1e8; i++) s += i; process.stdout.write(String(s))'], {
    encoding: 'utf8',
  });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (run.status !== 0 || run.stdout !== '4999999950000000') throw new Error('the speed check (node -e) did not run');
  return ms;
}

import { closeSync, createReadStream, fchmodSync, fdatasync, fdatasyncSync, fstatSync, openSync, readSync, writeSync } from 'node:fs';
import type { Logger } from '../logger';
import { AUDIT_RESUMED, chainEntry, parseEntry, type AuditEntry, type AuditEvent } from './chain';

// The audit trail on disk: one JSON line per entry, appended, never
// rewritten. Each entry is one write(2) of its whole line to a file opened
// for appending (O_APPEND: the kernel places it at the end), made from the
// event loop's thread, so no reader of the file (the Audit service) ever
// sees half an entry of this process.
//
// Durability: the write reaches the page cache before the call's observer
// returns, so a crash of the daemon loses nothing; fdatasync follows in the
// background, coalesced (one at a time, another if entries came meanwhile),
// so a power cut loses at most the entries of the last sync's few
// milliseconds. Syncing each entry before answering would cost a disk flush
// per call on the event loop, which every other call would wait behind.

/** Longer than any entry (counts, a protocol name, 64 group numbers, a CN): a line this long is not one. */
export const MAX_ENTRY_BYTES = 4096;
/** How far back from its end a file is read on open to find its last entry. */
const TAIL_SCAN_BYTES = 64 * 1024;

export class AuditFile {
  private fd: number | undefined;
  /** The file's length up to and including the last entry written whole. */
  private goodSize: number;
  private seq: number;
  private lastLine: string | undefined;
  /** A write failed: what it left after goodSize, if anything, is skipped before the next entry. */
  private damaged = false;
  private syncing = false;
  private syncAgain = false;
  private failed = 0;

  private constructor(
    readonly path: string,
    private readonly log: Logger,
  ) {
    // Created 0600 (the trail names people); an existing file is narrowed too.
    try {
      this.fd = openSync(path, 'a+', 0o600);
    } catch (error) {
      throw new Error(
        `cannot open the audit file ${path} (${(error as NodeJS.ErrnoException).code}): is its directory there and writable?`,
      );
    }
    try {
      fchmodSync(this.fd, 0o600);
      const tail = lastEntry(this.fd, path);
      // A last entry whole but for its newline: ended, so the next entry starts a line of its own.
      if (tail.unterminated) writeSync(this.fd, '\n');
      this.goodSize = tail.goodSize + (tail.unterminated ? 1 : 0);
      this.seq = tail.entry?.seq ?? 0;
      this.lastLine = tail.line;
      if (fstatSync(this.fd).size > this.goodSize) this.damaged = true;
    } catch (error) {
      closeSync(this.fd);
      throw error;
    }
  }

  /**
   * Opens (or creates) the trail and continues its chain. A file whose tail
   * holds lines that are not entries (a write cut short by a crash or a full
   * disk) gets an AuditResumed entry that counts them, so the chain goes on
   * and `fnn audit --verify` still shows where it was damaged. A file with no
   * entry near its end is not an audit trail: refused, naming it.
   */
  static open(path: string, log: Logger): AuditFile {
    const file = new AuditFile(path, log);
    if (file.damaged && !file.resume()) {
      file.close();
      throw new Error(`the audit file ${path} has a damaged end that could not be marked (is its disk full?)`);
    }
    return file;
  }

  /** Entries that could not be written since the daemon started (each also logged once). */
  get failures(): number {
    return this.failed;
  }

  /** Append one entry; false (logged, counted) when it could not be written. */
  append(event: AuditEvent): boolean {
    if (this.fd === undefined) return false;
    if (this.damaged && !this.resume()) {
      this.failed++;
      return false;
    }
    return this.write(event);
  }

  close(): void {
    if (this.fd === undefined) return;
    const fd = this.fd;
    this.fd = undefined;
    try {
      fdatasyncSync(fd);
    } catch {
      // Nothing more can be done for a file being closed; the entries were written.
    }
    closeSync(fd);
  }

  private write(event: AuditEvent): boolean {
    const { entry, line } = chainEntry(event, this.seq + 1, this.lastLine);
    const bytes = Buffer.from(line + '\n', 'utf8');
    try {
      let at = 0;
      while (at < bytes.length) at += writeSync(this.fd!, bytes, at);
    } catch (error) {
      this.damaged = true;
      this.failed++;
      // The file's path and the system's code: nothing of the entry.
      this.log.error({ audit: this.path, code: (error as NodeJS.ErrnoException).code, failures: this.failed }, 'audit write failed');
      return false;
    }
    this.seq = entry.seq;
    this.lastLine = line;
    this.goodSize += bytes.length;
    this.sync();
    return true;
  }

  /** Counts what follows the last whole entry as skipped, in an AuditResumed entry. */
  private resume(): boolean {
    const fd = this.fd!;
    let size: number;
    try {
      size = fstatSync(fd).size;
    } catch {
      return false;
    }
    this.damaged = false;
    if (size <= this.goodSize) return true;
    const skippedBytes = size - this.goodSize;
    const scan = Buffer.alloc(Math.min(skippedBytes, TAIL_SCAN_BYTES));
    readSync(fd, scan, 0, scan.length, size - scan.length);
    const endsLine = scan[scan.length - 1] === 0x0a;
    if (!endsLine) {
      // The cut line ends here, so the entry below starts a line of its own.
      try {
        writeSync(fd, '\n');
      } catch {
        this.damaged = true;
        return false;
      }
    }
    const newlines = countNewlines(fd, this.goodSize, size) + (endsLine ? 0 : 1);
    this.log.warn({ audit: this.path, skippedLines: newlines, skippedBytes }, 'audit file: lines that are not entries skipped');
    // If this entry cannot be written either, the next try counts the same lines again (with the newline added here).
    const before = this.goodSize;
    this.goodSize = size + (endsLine ? 0 : 1);
    const written = this.write({
      time: new Date().toISOString(),
      who: 'daemon',
      rpc: AUDIT_RESUMED,
      outcome: 'DATA_LOSS',
      what: { skippedLines: newlines, skippedBytes },
    });
    if (!written) this.goodSize = before;
    return written;
  }

  private sync(): void {
    if (this.syncing) {
      this.syncAgain = true;
      return;
    }
    const fd = this.fd;
    if (fd === undefined) return;
    this.syncing = true;
    fdatasync(fd, (error) => {
      this.syncing = false;
      if (error && this.fd !== undefined) this.log.error({ audit: this.path, code: error.code }, 'audit sync failed');
      if (this.syncAgain) {
        this.syncAgain = false;
        this.sync();
      }
    });
  }
}

/** The last whole entry near the end of the file, and where it ends. */
function lastEntry(fd: number, path: string): { entry?: AuditEntry; line?: string; goodSize: number; unterminated?: boolean } {
  const size = fstatSync(fd).size;
  if (size === 0) return { goodSize: 0 };
  const length = Math.min(size, TAIL_SCAN_BYTES);
  const start = size - length;
  const buf = Buffer.alloc(length);
  readSync(fd, buf, 0, length, start);
  const lastNewline = buf.lastIndexOf(0x0a);
  if (lastNewline < length - 1 && (lastNewline >= 0 || start === 0)) {
    const line = buf.subarray(lastNewline + 1).toString('utf8');
    const entry = parseEntry(line);
    if (entry) return { entry, line, goodSize: size, unterminated: true };
  }
  // Line ends, from the last: the piece before each "\n" is a candidate entry.
  let end = buf.lastIndexOf(0x0a);
  while (end >= 0) {
    const from = buf.lastIndexOf(0x0a, end - 1) + 1;
    // A piece cut by the scan's start is not read as an entry: it may be the end of a longer line.
    if (from === 0 && start > 0) break;
    const line = buf.subarray(from, end).toString('utf8');
    const entry = parseEntry(line);
    if (entry) return { entry, line, goodSize: start + end + 1 };
    if (end === 0) break;
    end = from - 1;
  }
  throw new Error(
    `the audit file ${path} has no audit entry in its last ${length} bytes: not an FNN audit trail, or damaged; move it aside (keep it) and start again`,
  );
}

function countNewlines(fd: number, from: number, to: number): number {
  const buf = Buffer.alloc(64 * 1024);
  let count = 0;
  for (let at = from; at < to;) {
    const n = readSync(fd, buf, 0, Math.min(buf.length, to - at), at);
    if (n === 0) break;
    for (let i = 0; i < n; i++) if (buf[i] === 0x0a) count++;
    at += n;
  }
  return count;
}

/**
 * The file's lines (without their newlines) up to `size` bytes, read in
 * chunks. A line longer than any entry is cut to MAX_ENTRY_BYTES (it is not
 * an entry either way, and memory stays bounded); a last line without its
 * newline is given as it is.
 */
export async function* readAuditLines(path: string, size: number): AsyncGenerator<string> {
  if (size === 0) return;
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  for await (const chunk of createReadStream(path, { start: 0, end: size - 1, highWaterMark: 64 * 1024 }) as AsyncIterable<Buffer>) {
    let from = 0;
    for (let nl = chunk.indexOf(0x0a); nl >= 0; nl = chunk.indexOf(0x0a, from)) {
      const piece = chunk.subarray(from, nl);
      if (pendingBytes + piece.length <= MAX_ENTRY_BYTES) pending.push(piece);
      else pending.push(piece.subarray(0, Math.max(0, MAX_ENTRY_BYTES - pendingBytes)));
      yield Buffer.concat(pending).toString('utf8');
      pending = [];
      pendingBytes = 0;
      from = nl + 1;
    }
    const rest = chunk.subarray(from);
    if (pendingBytes < MAX_ENTRY_BYTES && rest.length > 0) {
      const kept = rest.subarray(0, MAX_ENTRY_BYTES - pendingBytes);
      pending.push(Buffer.from(kept));
      pendingBytes += kept.length;
    }
  }
  if (pending.length > 0) yield Buffer.concat(pending).toString('utf8');
}

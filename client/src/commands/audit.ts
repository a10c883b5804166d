import { Metadata } from '@grpc/grpc-js';
import type { AuditLines } from '@fnn/proto';
import { ChainVerifier, parseEntry, type AuditEntry, type ChainHead, type Transport } from '@fnn/shared';
import { checkAddress, connectAudit } from '../connect';
import { CliError, type Output } from '../output';

// `fnn audit`: the owner reads a daemon's audit trail. The daemon sends its
// file's lines as written and the chain is verified here, by the owner's
// machine: a daemon whose file was edited cannot vouch for it.

/** Reading a long trail over a slow link takes a while; a daemon that stops sending is given up on after this. */
const READ_DEADLINE_MS = 10 * 60_000;

export interface AuditOptions {
  daemon: 'c1' | 'c2';
  address: string;
  /** Entries from this time on: an ISO date or time, or a duration back from now (90m, 24h, 7d). */
  since?: string;
  /** Walk the whole chain (with --since: all of it, printing only the entries since). */
  verify?: boolean;
  /** SEQ:HASH printed by an earlier --verify: the chain must still hold that entry. */
  head?: string;
  transport: Transport;
}

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** --since as ms since 1970: a duration back from `now`, or a date/time as Date.parse reads it (a date alone is UTC midnight). */
export function parseSince(text: string, now = Date.now()): number {
  const duration = /^(\d{1,6})([smhd])$/.exec(text);
  if (duration) return now - Number(duration[1]) * UNITS[duration[2]];
  const at = /^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(text) ? Date.parse(text) : NaN;
  if (Number.isFinite(at)) return at;
  throw new CliError(
    'usage',
    `--since must be a date or time (2026-12-01, 2026-12-01T08:00Z) or a duration (90m, 24h, 7d), not "${text}". See fnn audit --help`,
  );
}

export function parseHead(text: string): ChainHead {
  const m = /^(\d{1,15}):([0-9a-f]{64})$/.exec(text);
  if (!m) throw new CliError('usage', `--head must be SEQ:HASH as \`fnn audit --verify\` printed it, not "${text}". See fnn audit --help`);
  return { seq: Number(m[1]), hash: m[2] };
}

export async function audit(out: Output, options: AuditOptions): Promise<void> {
  const name = options.daemon.toUpperCase();
  const address = checkAddress(options.address, `--${options.daemon}`, `FNN_${name}`);
  const since = options.since === undefined ? 0 : parseSince(options.since);
  const verifier = options.verify ? new ChainVerifier(options.head === undefined ? undefined : parseHead(options.head)) : undefined;
  if (options.head !== undefined && !verifier)
    throw new CliError('usage', '--head is checked by --verify: pass both. See fnn audit --help');
  const client = connectAudit(address, options.transport, options.daemon);
  try {
    // To verify, every line is needed; the entries since are picked here.
    const call = client.read({ sinceMs: BigInt(verifier ? 0 : since) }, new Metadata(), {
      deadline: new Date(Date.now() + READ_DEADLINE_MS),
    });
    let lineNo = 0;
    let shown = 0;
    for await (const message of call as AsyncIterable<AuditLines>) {
      for (const line of message.lines) {
        lineNo++;
        verifier?.push(line);
        const entry = parseEntry(line);
        if (!entry) {
          out.result({ line: lineNo, notAnEntry: true }, `line ${lineNo}: not an audit entry`);
          continue;
        }
        if (!(Date.parse(entry.time) >= since)) continue;
        shown++;
        out.result({ line: lineNo, ...entry }, humanLine(entry));
      }
    }
    if (!verifier) {
      out.note(`${shown} entries`);
      return;
    }
    const verdict = verifier.end();
    if (!verdict.ok) {
      const which = verdict.seq === undefined ? `line ${verdict.line}` : `entry ${verdict.seq} (line ${verdict.line})`;
      throw new CliError('dataLoss', `${name}'s audit chain does not hold at ${which}: ${verdict.reason}`);
    }
    const head = verdict.head;
    out.result(
      { verified: true, entries: verdict.entries, head },
      `chain of ${verdict.entries} entries verified` +
        (head
          ? `; head ${head.seq}:${head.hash} (keep it: a later \`fnn audit --verify --head ${head.seq}:${head.hash}\` shows no entry was cut from the end)`
          : ''),
    );
  } finally {
    client.close();
  }
}

/** time, who, rpc, outcome, what: one line per entry. */
export function humanLine(entry: AuditEntry): string {
  const who = typeof entry.who === 'string' ? entry.who : `${entry.who.subject} (${entry.who.role}, serial ${entry.who.serial})`;
  const what = Object.entries(entry.what)
    .map(([k, v]) => `${k}=${String(v)}`)
    .join(' ');
  return [entry.time, who, entry.rpc, entry.outcome, what].filter((s) => s !== '').join('  ');
}

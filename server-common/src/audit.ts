import { statSync } from 'node:fs';
import type { ServerWritableStream } from '@grpc/grpc-js';
import { AuditService, type AuditLines, type AuditReadRequest, type AuditServer } from '@fnn/proto';
import {
  AuditFile,
  auditEvent,
  isAudited,
  isInsecure,
  parseEntry,
  protocolState,
  readAuditLines,
  type CallObserver,
  type Logger,
  type Transport,
} from '@fnn/shared';
import type { ServedService } from './daemon';
import { handlers } from './handlers';

// A daemon's audit trail: the observer that writes an entry per audited call
// (shared/src/audit/), and the owner's Audit service that sends the file's
// lines back for `fnn audit` to verify. The same for C1 and C2.

/** Lines per message, and the bytes at which a message is sent sooner: well below the message limit. */
const LINES_PER_MESSAGE = 512;
const BYTES_PER_MESSAGE = 256 * 1024;

export interface DaemonAudit {
  /** Writes the entry of each audited call (none when the daemon keeps no trail). */
  observers: CallObserver[];
  /** The Audit service; its calls are heard by `observe` (so a read of the trail is in the trail). */
  service(observe: CallObserver): ServedService;
  /** Entries that could not be written since start (disk full): logged each time, counted here. */
  failures(): number;
  close(): void;
}

/** The trail at `path` (opened, its chain continued), or none: then Audit.Read says so. */
export function daemonAudit(path: string | undefined, log: Logger, transport: Transport): DaemonAudit {
  const file = path === undefined ? undefined : AuditFile.open(path, log);
  const tls = !isInsecure(transport);
  return {
    // A call that ended is already answered: an entry that cannot be written is logged and counted, the call stands (docs/SECURITY.md).
    observers: file ? [(record) => void (isAudited(record) && file.append(auditEvent(record, tls)))] : [],
    service: (observe) => ({ definition: AuditService, implementation: auditService(log, observe, file?.path) }),
    failures: () => file?.failures ?? 0,
    close: () => file?.close(),
  };
}

export function auditService(log: Logger, observe: CallObserver, path: string | undefined): AuditServer {
  const { stream } = handlers(log, observe);
  return {
    read: (call: ServerWritableStream<AuditReadRequest, AuditLines>) =>
      void stream('Audit.Read', call, async (_requestId, fields) => {
        if (path === undefined) throw protocolState('this daemon keeps no audit trail (started without --audit)');
        // Read synchronously, between entries: every entry is one synchronous write on this thread, so none is half written here.
        const size = statSync(path).size;
        const since = Number(call.request.sinceMs);
        let lines: string[] = [];
        let bytes = 0;
        let sent = 0;
        const flush = async () => {
          if (lines.length === 0) return;
          const more = call.write({ lines });
          sent += lines.length;
          lines = [];
          bytes = 0;
          if (!more) await drained(call);
        };
        for await (const line of readAuditLines(path, size)) {
          if (call.cancelled) break;
          // A line that is not an entry is always sent: the reader must see where the file is damaged.
          if (since > 0) {
            const entry = parseEntry(line);
            if (entry && !(Date.parse(entry.time) >= since)) continue;
          }
          lines.push(line);
          bytes += line.length;
          if (lines.length >= LINES_PER_MESSAGE || bytes >= BYTES_PER_MESSAGE) await flush();
        }
        await flush();
        fields.entries = sent;
        call.end();
      }),
  };
}

/** Resolves once the stream's buffer has room again, or the stream is gone. */
function drained(call: ServerWritableStream<unknown, unknown>): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      for (const event of ['drain', 'cancelled', 'close', 'error']) call.off(event, done);
      resolve();
    };
    for (const event of ['drain', 'cancelled', 'close', 'error']) call.once(event, done);
  });
}

import { randomBytes } from 'node:crypto';
import type { Metadata, sendUnaryData, ServerUnaryCall } from '@grpc/grpc-js';
import { toStatus, type Logger, type StatusObject } from '@fnn/shared';
import { DataLossError, DiskFullError } from './collection-database';

// The one wrapper between a daemon's gRPC handlers and its callers: errors
// become statuses through shared's toStatus (one closed set of codes), every
// call is logged once under its request id, and a failure is logged without
// its cause, which may hold secrets (a bigint, a path, a key): only the status
// the caller gets, plus the error's class name when it is an internal one.

/** Operational facts a handler adds to its call's log line (counts, session ids; never a value a caller sent). */
export type LogFields = Record<string, string | number | boolean>;

/** The caller's x-request-id (C1 passes the doctor's on to C2), or a new one. */
export function requestIdOf(metadata: Metadata): string {
  const given = metadata.get('x-request-id')[0];
  return typeof given === 'string' && /^[\w.-]{1,64}$/.test(given) ? given : randomBytes(8).toString('hex');
}

/** What a streaming call needs for the wrapper: its metadata, and a way to end it with a status. */
export interface StreamCall {
  metadata: Metadata;
  cancelled: boolean;
  emit(event: 'error', status: StatusObject): boolean;
}

export interface LogLines {
  ok: string;
  failed: string;
}

export interface Handlers {
  /** A unary handler: the reply, or the status of what it threw. */
  unary<Req, Res>(
    rpc: string,
    handler: (req: Req, requestId: string, fields: LogFields) => Res | Promise<Res>,
  ): (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => void;
  /**
   * A streaming call: `run` writes the replies and ends the call; if it throws,
   * the call ends with the status of what it threw (unless the caller hung up).
   * Settles, never rejects, once the call's line is logged.
   */
  stream(rpc: string, call: StreamCall, run: (requestId: string, fields: LogFields) => Promise<void>, lines?: LogLines): Promise<void>;
  /** The status a failed call (or one query of a batch) ends with, logged. */
  failed(rpc: string, requestId: string, started: number, error: unknown, fields?: LogFields, line?: string): StatusObject;
}

export function handlers(log: Logger): Handlers {
  const failed: Handlers['failed'] = (rpc, requestId, started, error, fields = {}, line = 'failed') => {
    const s = toStatus(error);
    log.warn({ rpc, requestId, ...fields, code: s.code, reason: s.details, ms: Date.now() - started }, line);
    if (s.details === 'internal error') log.error({ rpc, requestId, kind: errorKind(error) }, 'internal');
    // The operator's line: which file filled up (a path, no secret), so that space can be freed.
    if (error instanceof DiskFullError) log.error({ rpc, requestId, sqlite: 'SQLITE_FULL', database: error.path }, 'disk full');
    // Which record or group of which file is damaged (a position and a column name, no ID, no byte), for fnn check and repair.
    if (error instanceof DataLossError)
      log.error({ rpc, requestId, database: error.path, damaged: error.where, column: error.column }, 'data loss');
    return s;
  };

  /** Runs one call's work and logs its one line; `work` runs a tick later, so that nothing it throws escapes. */
  const settle = async <T>(
    rpc: string,
    requestId: string,
    work: (fields: LogFields) => T | Promise<T>,
    lines: LogLines,
  ): Promise<{ ok: true; value: T } | { ok: false; status: StatusObject }> => {
    const started = Date.now();
    const fields: LogFields = {};
    try {
      const value = await Promise.resolve().then(() => work(fields));
      log.info({ rpc, requestId, ...fields, ms: Date.now() - started }, lines.ok);
      return { ok: true, value };
    } catch (error) {
      return { ok: false, status: failed(rpc, requestId, started, error, fields, lines.failed) };
    }
  };

  return {
    failed,
    unary: (rpc, handler) => (call, callback) => {
      const requestId = requestIdOf(call.metadata);
      void settle(rpc, requestId, (fields) => handler(call.request, requestId, fields), OK_FAILED).then((r) =>
        r.ok ? callback(null, r.value) : callback(r.status),
      );
    },
    stream: async (rpc, call, work, lines = OK_FAILED) => {
      const requestId = requestIdOf(call.metadata);
      const r = await settle(rpc, requestId, (fields) => work(requestId, fields), lines);
      if (!r.ok && !call.cancelled) call.emit('error', r.status);
    },
  };
}

const OK_FAILED: LogLines = { ok: 'ok', failed: 'failed' };

function errorKind(error: unknown): string {
  return error instanceof Error ? error.name : typeof error;
}

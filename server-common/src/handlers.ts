import { randomBytes } from 'node:crypto';
import { status, type Metadata, type sendUnaryData, type ServerReadableStream, type ServerUnaryCall } from '@grpc/grpc-js';
import { callerIdentity, invalidInput, resourceExhausted, toStatus, type CallObserver, type Logger, type StatusObject } from '@fnn/shared';
import { DataLossError, DiskFullError } from './collection-database';
import { collectionField } from './collections';

/** What grpc-js tells a handler of its caller's TLS (its AuthContext type is not exported). */
type AuthContext = ReturnType<ServerUnaryCall<unknown, unknown>['getAuthContext']>;

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
  /** The caller's verified certificate, for the call's observers (absent in plaintext and in tests). */
  getAuthContext?(): AuthContext;
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
    handler: (req: Req, requestId: string, fields: LogFields, metadata: Metadata) => Res | Promise<Res>,
  ): (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => void;
  /**
   * A client-streaming handler: the reply to the parts the caller sent, or the
   * status of what it threw. The parts end in a refusal when the caller
   * cancels, or sends no part for `idleMs` (a silent caller does not hold what
   * the handler took until its own deadline, which it may not have set).
   */
  clientStream<Part, Res>(
    rpc: string,
    idleMs: number,
    handler: (parts: AsyncIterable<Part>, requestId: string, fields: LogFields, metadata: Metadata) => Promise<Res>,
  ): (call: ServerReadableStream<Part, Res>, callback: sendUnaryData<Res>) => void;
  /**
   * A streaming call: `run` writes the replies and ends the call; if it throws,
   * the call ends with the status of what it threw (unless the caller hung up).
   * Settles, never rejects, once the call's line is logged.
   */
  stream(rpc: string, call: StreamCall, run: (requestId: string, fields: LogFields) => Promise<void>, lines?: LogLines): Promise<void>;
  /** The status a failed call (or one query of a batch) ends with, logged. */
  failed(rpc: string, requestId: string, started: number, error: unknown, fields?: LogFields, line?: string): StatusObject;
}

/**
 * The wrapper for one service. `observe` hears of every call once it has
 * ended (the audit trail and the metrics listen here), with the same fields
 * as its log line: nothing a caller sent.
 */
export function handlers(log: Logger, observe: CallObserver = () => {}): Handlers {
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
    call: { metadata: Metadata; getAuthContext?(): AuthContext },
    work: (fields: LogFields) => T | Promise<T>,
    lines: LogLines,
  ): Promise<{ ok: true; value: T } | { ok: false; status: StatusObject }> => {
    const started = Date.now();
    const auth = call.getAuthContext?.();
    // The collection the call named, on its log line and audit entry (a bad name is the handler's to refuse).
    const fields: LogFields = collectionField(call.metadata);
    const observed = (code: status) =>
      observe({ rpc, requestId, caller: callerIdentity(auth?.sslPeerCertificate), fields, code, ms: Date.now() - started });
    try {
      const value = await Promise.resolve().then(() => work(fields));
      log.info({ rpc, requestId, ...fields, ms: Date.now() - started }, lines.ok);
      observed(status.OK);
      return { ok: true, value };
    } catch (error) {
      const s = failed(rpc, requestId, started, error, fields, lines.failed);
      observed(s.code);
      return { ok: false, status: s };
    }
  };

  return {
    failed,
    unary: (rpc, handler) => (call, callback) => {
      const requestId = requestIdOf(call.metadata);
      void settle(rpc, requestId, call, (fields) => handler(call.request, requestId, fields, call.metadata), OK_FAILED).then((r) =>
        r.ok ? callback(null, r.value) : callback(r.status),
      );
    },
    clientStream: (rpc, idleMs, handler) => (call, callback) => {
      const requestId = requestIdOf(call.metadata);
      void settle(rpc, requestId, call, (fields) => handler(partsOf(call, idleMs), requestId, fields, call.metadata), OK_FAILED).then(
        (r) => (r.ok ? callback(null, r.value) : callback(r.status)),
      );
    },
    stream: async (rpc, call, work, lines = OK_FAILED) => {
      const requestId = requestIdOf(call.metadata);
      const r = await settle(rpc, requestId, call, (fields) => work(requestId, fields), lines);
      if (!r.ok && !call.cancelled) call.emit('error', r.status);
    },
  };
}

/**
 * A client stream's parts, ending in a refusal when the caller cancels (grpc-js
 * then ends the stream with neither 'end' nor 'error': a handler waiting for
 * the next part would wait for good) or goes `idleMs` without a part.
 */
async function* partsOf<Part>(call: ServerReadableStream<Part, unknown>, idleMs: number): AsyncGenerator<Part> {
  let onCancel!: () => void;
  const cancelled = new Promise<never>((_, reject) => {
    onCancel = () => reject(invalidInput('the caller cancelled the stream before its end'));
  });
  cancelled.catch(() => {});
  call.on('cancelled', onCancel);
  if (call.cancelled) onCancel();
  const parts = call[Symbol.asyncIterator]() as AsyncIterator<Part>;
  let timer: NodeJS.Timeout | undefined;
  const idle = () =>
    new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(resourceExhausted(`no part of the stream arrived for ${idleMs / 1000} s: its place is given up`)),
        idleMs,
      );
    });
  try {
    for (;;) {
      const next = await Promise.race([parts.next(), cancelled, idle()]);
      clearTimeout(timer);
      if (next.done) return;
      yield next.value;
    }
  } finally {
    clearTimeout(timer);
    call.off('cancelled', onCancel);
    // The stream is done with: grpc-js stops reading it and frees what it buffered.
    call.destroy();
    void parts.return?.();
  }
}

/** Several observers as one (audit and metrics); one that throws does not keep the others from hearing. */
export function observeAll(observers: readonly CallObserver[] = []): CallObserver {
  return (record) => {
    for (const o of observers) {
      try {
        o(record);
      } catch {
        // An observer's failure is its own to report; the call has ended either way.
      }
    }
  };
}

const OK_FAILED: LogLines = { ok: 'ok', failed: 'failed' };

function errorKind(error: unknown): string {
  return error instanceof Error ? error.name : typeof error;
}

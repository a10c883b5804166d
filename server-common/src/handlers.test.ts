import { EventEmitter } from 'node:events';
import { Metadata, status, type sendUnaryData, type ServerUnaryCall } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { invalidInput, protocolState, type CallRecord, type StatusObject } from '@fnn/shared';
import { DiskFullError } from './collection-database';
import { handlers, observeAll, requestIdOf, type StreamCall } from './handlers';
import { recordingLogger } from './testing';

// The one gRPC handler wrapper: statuses through toStatus, one log line per
// call under its request id, no cause of a failure in any log line.

const metadataWith = (requestId?: string) => {
  const m = new Metadata();
  if (requestId !== undefined) m.set('x-request-id', requestId);
  return m;
};

/** Calls a wrapped unary handler as grpc-js would; resolves with what it passed to the callback. */
function callUnary<Req, Res>(
  handler: (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => void,
  request: Req,
  requestId?: string,
): Promise<{ error: Parameters<sendUnaryData<Res>>[0]; reply?: Res | null }> {
  return new Promise((resolve) =>
    handler({ request, metadata: metadataWith(requestId) } as ServerUnaryCall<Req, Res>, (error, reply) => resolve({ error, reply })),
  );
}

function streamCall(requestId?: string, cancelled = false): StreamCall & { emitted: StatusObject[] } {
  const emitter = new EventEmitter();
  const emitted: StatusObject[] = [];
  emitter.on('error', (s: StatusObject) => emitted.push(s));
  return Object.assign(emitter, { metadata: metadataWith(requestId), cancelled, emitted }) as StreamCall & { emitted: StatusObject[] };
}

const SECRET = 'pixel 1234 of key 0xdeadbeef';

describe('requestIdOf', () => {
  it("keeps a caller's id of up to 64 word characters, dots and dashes", () => {
    expect(requestIdOf(metadataWith('a1b2.c3-d_4'))).toBe('a1b2.c3-d_4');
    expect(requestIdOf(metadataWith('x'.repeat(64)))).toBe('x'.repeat(64));
  });

  it('gives a new random id when none is sent or the one sent could smuggle text into the logs', () => {
    for (const given of [undefined, '', 'x'.repeat(65), 'a b', 'a;b', '{"msg":"x"}']) {
      const id = requestIdOf(metadataWith(given));
      expect(id, `for ${JSON.stringify(given)}`).toMatch(/^[0-9a-f]{16}$/);
    }
    expect(requestIdOf(metadataWith())).not.toBe(requestIdOf(metadataWith()));
  });
});

describe('handlers: unary', () => {
  it('answers a full disk with RESOURCE_EXHAUSTED naming the file, and logs one error line naming SQLITE_FULL and the file', async () => {
    const log = recordingLogger();
    const names = { daemon: 'C2', file: 'replica', key: 'key of C1', images: 'the replica', remedy: '' };
    const handler = handlers(log).unary<object, object>('PutGroup', () => {
      throw new DiskFullError('/var/lib/fnn/c2.db', names);
    });
    const { error } = await callUnary(handler, {}, 'req-full');
    expect(error, 'a full disk is RESOURCE_EXHAUSTED with the file named').toMatchObject({
      code: status.RESOURCE_EXHAUSTED,
      details: "C2's disk is full (replica at /var/lib/fnn/c2.db)",
    });
    expect(
      log.lines.filter((l) => l.level === 'error'),
      'one error line for the operator',
    ).toEqual([
      {
        level: 'error',
        fields: { rpc: 'PutGroup', requestId: 'req-full', sqlite: 'SQLITE_FULL', database: '/var/lib/fnn/c2.db' },
        message: 'disk full',
      },
    ]);
  });

  it('answers with the reply and logs one ok line with the rpc, the request id and the fields the handler added', async () => {
    const log = recordingLogger();
    const handler = handlers(log).unary<{ n: number }, { twice: number }>('Twice', (req, requestId, fields) => {
      fields.results = 2;
      expect(requestId).toBe('req-1');
      return { twice: 2 * req.n };
    });
    expect(await callUnary(handler, { n: 21 }, 'req-1')).toEqual({ error: null, reply: { twice: 42 } });
    expect(log.lines).toHaveLength(1);
    expect(log.lines[0]).toMatchObject({ level: 'info', message: 'ok', fields: { rpc: 'Twice', requestId: 'req-1', results: 2 } });
    expect(typeof log.lines[0].fields.ms).toBe('number');
  });

  it("ends a refused call with the error's status and message, and logs code and reason without an internal line", async () => {
    const log = recordingLogger();
    const handler = handlers(log).unary('Upload', async () => {
      throw protocolState('group 3 changed since it was read');
    });
    const { error } = await callUnary(handler, {}, 'req-2');
    expect(error).toMatchObject({ code: status.FAILED_PRECONDITION, details: 'group 3 changed since it was read' });
    expect(log.lines.map((l) => [l.level, l.message])).toEqual([['warn', 'failed']]);
    expect(log.lines[0].fields).toMatchObject({
      rpc: 'Upload',
      requestId: 'req-2',
      code: status.FAILED_PRECONDITION,
      reason: 'group 3 changed since it was read',
    });
  });

  it('catches a handler that throws synchronously', async () => {
    const handler = handlers(recordingLogger()).unary('Delete', () => {
      throw invalidInput('no records named');
    });
    expect((await callUnary(handler, {})).error).toMatchObject({ code: status.INVALID_ARGUMENT, details: 'no records named' });
  });

  it('turns any other error into INTERNAL with no details, and logs its class name, never its message', async () => {
    const log = recordingLogger();
    const handler = handlers(log).unary('Query', () => {
      throw new TypeError(SECRET);
    });
    const { error } = await callUnary(handler, {}, 'req-3');
    expect(error).toMatchObject({ code: status.INTERNAL, details: 'internal error' });
    expect(log.lines.map((l) => [l.level, l.message])).toEqual([
      ['warn', 'failed'],
      ['error', 'internal'],
    ]);
    expect(log.lines[1].fields).toEqual({ rpc: 'Query', requestId: 'req-3', kind: 'TypeError' });
    expect(JSON.stringify(log.lines), 'the cause of an internal error must not reach the log').not.toContain('deadbeef');
    expect(error?.details).not.toContain('deadbeef');
  });

  it('names what was thrown when it is not an Error', async () => {
    const log = recordingLogger();
    await callUnary(
      handlers(log).unary('Status', () => {
        throw SECRET;
      }),
      {},
    );
    expect(log.lines[1].fields.kind).toBe('string');
    expect(JSON.stringify(log.lines)).not.toContain('deadbeef');
  });
});

describe('handlers: stream', () => {
  it('logs the lines it is given with the fields the run added, and emits nothing on success', async () => {
    const log = recordingLogger();
    const call = streamCall('req-4');
    await handlers(log).stream(
      'Session',
      call,
      async (requestId, fields) => {
        expect(requestId).toBe('req-4');
        fields.steps = 3;
      },
      { ok: 'session done', failed: 'session failed' },
    );
    expect(call.emitted).toEqual([]);
    expect(log.lines).toHaveLength(1);
    expect(log.lines[0]).toMatchObject({
      level: 'info',
      message: 'session done',
      fields: { rpc: 'Session', requestId: 'req-4', steps: 3 },
    });
  });

  it("ends a failed stream with the error's status, logging the fields set before the failure", async () => {
    const log = recordingLogger();
    const call = streamCall('req-5');
    await handlers(log).stream('QueryWithProgress', call, async (_id, fields) => {
      fields.steps = 1;
      throw protocolState('message for another session');
    });
    expect(call.emitted).toHaveLength(1);
    expect(call.emitted[0]).toMatchObject({ code: status.FAILED_PRECONDITION, details: 'message for another session' });
    expect(log.lines[0]).toMatchObject({
      level: 'warn',
      message: 'failed',
      fields: { rpc: 'QueryWithProgress', steps: 1, code: status.FAILED_PRECONDITION },
    });
  });

  it('emits nothing to a caller who hung up, but still logs the failure', async () => {
    const log = recordingLogger();
    const call = streamCall(undefined, true);
    await handlers(log).stream('BatchQuery', call, async () => {
      throw new Error(SECRET);
    });
    expect(call.emitted).toEqual([]);
    expect(log.lines.map((l) => l.message)).toEqual(['failed', 'internal']);
    expect(JSON.stringify(log.lines)).not.toContain('deadbeef');
  });
});

describe('handlers: failed', () => {
  it('gives the status of one failed part of a stream (a batch query) and logs it', () => {
    const log = recordingLogger();
    const s = handlers(log).failed('BatchQuery', 'batch.2', Date.now(), invalidInput('k above 100 is not supported'));
    expect(s).toMatchObject({ code: status.INVALID_ARGUMENT, details: 'k above 100 is not supported' });
    expect(log.lines[0]).toMatchObject({
      message: 'failed',
      fields: { rpc: 'BatchQuery', requestId: 'batch.2', code: status.INVALID_ARGUMENT },
    });
  });
});

describe('handlers: observers', () => {
  const caller = { subject: { CN: 'Dr Ada', OU: 'doctor', O: 'FNN' }, serialNumber: '00AB12' };
  const withCert = <T extends object>(call: T) =>
    Object.assign(call, { getAuthContext: () => ({ transportSecurityType: 'ssl', sslPeerCertificate: caller }) });

  it('hears every ended call once, with its code, its log fields and who called (CN, role, serial), never a cause', async () => {
    const heard: CallRecord[] = [];
    const h = handlers(recordingLogger(), (r) => heard.push(r));
    const ok = h.unary<object, object>('Upload', (_req, _id, fields) => {
      fields.stored = 3;
      return {};
    });
    const refused = h.unary<object, object>('Delete', () => {
      throw invalidInput(SECRET);
    });
    await new Promise<void>((resolve) => ok(withCert({ request: {}, metadata: metadataWith('r1') }) as never, () => resolve()));
    await callUnary(refused, {}, 'r2');
    expect(heard.map((r) => [r.rpc, r.requestId, r.code])).toEqual([
      ['Upload', 'r1', status.OK],
      ['Delete', 'r2', status.INVALID_ARGUMENT],
    ]);
    expect(heard[0].fields).toEqual({ stored: 3 });
    expect(heard[0].caller).toEqual({ subject: 'Dr Ada', role: 'doctor', serial: 'ab12' });
    expect(heard[1].caller).toBeUndefined();
    expect(JSON.stringify(heard)).not.toContain('1234');
  });

  it('keeps telling the other observers when one throws', async () => {
    const heard: string[] = [];
    const observe = observeAll([
      () => {
        throw new Error('a full audit disk');
      },
      (r) => heard.push(r.rpc),
    ]);
    await handlers(recordingLogger(), observe).stream('QueryWithProgress', streamCall('s1'), async () => {});
    expect(heard).toEqual(['QueryWithProgress']);
  });
});

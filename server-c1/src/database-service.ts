import { status, type ServerDuplexStream, type ServerWritableStream } from '@grpc/grpc-js';
import * as wire from '@fnn/proto';
import {
  checkImageSize,
  checkLookupTag,
  checkLookupTags,
  checkPixelDepth,
  handlers,
  MAX_K,
  requestIdOf,
} from '@fnn/server-common';
import {
  concurrencyLimit,
  invalidInput,
  protocolOfQuery,
  layoutsFromWire,
  layoutsToWire,
  toStatus,
  throttleProgress,
  progressToWire,
  type FastC1Crypto,
  type C1Crypto,
  type Logger,
  type ProgressListener,
  type WireCodec,
} from '@fnn/shared';
import type { C2Link } from './c2-link';
import type { GroupChange, RecordStore, StoredRecord } from './storage';

/** Slots one AllocateSlots call may ask for (an upload goes in batches). */
const MAX_SLOTS_PER_CALL = 10_000;
/** QueryWithProgress: at most ~10 progress events a second (phase changes and a phase's end always go). */
const PROGRESS_INTERVAL_MS = 100;

export interface DatabaseDeps {
  store: RecordStore;
  crypto: C1Crypto;
  codec: WireCodec;
  keyHolder: C2Link;
  /** C1's own key pair and the multi-exponentiation pool, for the fast protocol. */
  fast: FastC1Crypto;
  log: Logger;
  queryTimeoutMs: number;
  /** Queries of one BatchQuery stream that run at once (default BATCH_CONCURRENCY). */
  batchConcurrency?: number;
}

/** Two at once keep both cores busy between one query's rounds with C2. */
export const BATCH_CONCURRENCY = 2;

/** C1's gRPC service: the owner's uploads and deletes, the doctors' queries. */
export function databaseService(deps: DatabaseDeps): wire.DatabaseServer {
  const { store, crypto, codec, log } = deps;
  const pk = crypto.publicKey;
  const { unary, stream, failed } = handlers(log);

  const checkKey = (fingerprint: string) => {
    if (fingerprint !== pk.fingerprint())
      throw invalidInput('encrypted under another Paillier key than this collection');
  };

  const ciphers = (list: Uint8Array[], what: string): bigint[] => {
    const values = codec.fromCiphers(list);
    if (!pk.areValidCiphertexts(values)) throw invalidInput(`${what}: invalid ciphertext`);
    return values;
  };
  const cipher = (b: Uint8Array, what: string) => ciphers([b], what)[0];

  /** A group change from the wire, its columns checked to be ciphertexts under C2's key. */
  const groupChange = (g: wire.GroupChange): GroupChange => {
    const columns = g.columns ? codec.columnsFromWire(g.columns, true) : undefined;
    if (columns && !pk.areValidCiphertexts([...columns.distance, ...columns.bound, columns.distanceConstant!, columns.boundConstant!]))
      throw invalidInput(`group ${g.group}: invalid ciphertext`);
    return { group: g.group, baseVersion: Buffer.from(g.baseVersion), version: Buffer.from(g.version), columns };
  };

  /** What every protocol's query shares: C1's key, the collection's image size. */
  const checkHeader = (h: wire.QueryHeader | undefined) => {
    if (!h) throw invalidInput('query without its image size and key');
    checkKey(h.keyFingerprint);
    const shape = store.shape();
    if (!shape) throw invalidInput('the collection is empty');
    if (h.width !== shape.width || h.height !== shape.height)
      throw invalidInput(`query is ${h.width}x${h.height}, the collection's images are ${shape.width}x${shape.height}`);
  };

  /** One query of any protocol: the header checked here, the rest by the protocol's module (registry). */
  const runQuery = async (req: wire.QueryRequest, requestId: string, onProgress?: ProgressListener): Promise<wire.QueryReply> => {
    const protocol = protocolOfQuery(req.protocol);
    const k = req.k === 0 ? 1 : req.k;
    if (k > MAX_K) throw invalidInput(`k above ${MAX_K} is not supported`);
    checkHeader(req.header);
    const started = Date.now();
    const { answer, stats } = await protocol.c1.answer(
      {
        collection: store,
        crypto,
        fast: deps.fast,
        codec,
        openSession: () => deps.keyHolder.openSession(requestId, new Date(Date.now() + deps.queryTimeoutMs)),
        k,
        requestId,
        onProgress,
      },
      req.protocol!,
    );
    const rejected = stats.bound?.rejected ?? 0n;
    log.info({ requestId, protocol: protocol.name, k, total: stats.total, rejected, ms: Date.now() - started }, 'query done');
    return { tag: req.tag, stats, answer };
  };

  return {
    upload: unary<wire.UploadRequest, wire.UploadReply>('Upload', (req) => {
      checkKey(req.keyFingerprint);
      checkImageSize(req.width, req.height);
      checkPixelDepth(req.maxValue);
      if (req.records.length === 0) throw invalidInput('no records to upload');
      if (!req.group) throw invalidInput('an upload names no group');
      const d = req.width * req.height;
      const layouts = layoutsFromWire(req.layouts);
      if (!layouts.includes('packed')) throw invalidInput('an upload must carry the packed layout (every group is packed)');
      // The per-record ciphertexts of the paper's layout (§2.1) travel with the record; the packed layout with the group.
      const perRecord = layouts.includes('paper');
      const records: StoredRecord[] = req.records.map((r, i) => {
        const what = `record ${i + 1}`;
        checkLookupTag(r.lookupTag, what);
        if (r.encryptedId.length < 29 || r.encryptedId.length > 1024)
          throw invalidInput(`${what}: encrypted identifier has an impossible size`);
        if (r.sealedImage.length < 29 || r.sealedImage.length > 2 * d + 1024)
          throw invalidInput(`${what}: sealed image has an impossible size`);
        if (perRecord && r.pixels.length !== d) throw invalidInput(`${what} has ${r.pixels.length} pixels, expected ${d}`);
        if (!perRecord && (r.pixels.length > 0 || r.sum.length > 0 || r.spread.length > 0))
          throw invalidInput(`${what} carries the paper's layout, but the upload says it has none`);
        return {
          lookupTag: Buffer.from(r.lookupTag),
          encryptedId: Buffer.from(r.encryptedId),
          sealedImage: Buffer.from(r.sealedImage),
          slot: r.slot,
          paper: perRecord
            ? { pixels: ciphers(r.pixels, what), sum: cipher(r.sum, what), spread: cipher(r.spread, what) }
            : undefined,
        };
      });
      const { stored, replaced } = store.upsertGroup(
        { width: req.width, height: req.height, maxValue: req.maxValue, layouts },
        groupChange(req.group),
        records,
      );
      return { stored, replaced, total: BigInt(store.count) };
    }),

    delete: unary<wire.DeleteRequest, wire.DeleteReply>('Delete', (req) => {
      if (req.lookupTags.length === 0) throw invalidInput('no records named');
      checkLookupTags(req.lookupTags);
      const deleted = store.delete(
        req.lookupTags.map((t) => Buffer.from(t)),
        req.groups.map(groupChange),
      );
      return { deleted, total: BigInt(store.count) };
    }),

    query: unary<wire.QueryRequest, wire.QueryReply>('Query', (req, requestId) => runQuery(req, requestId)),

    queryWithProgress: (call: ServerWritableStream<wire.QueryRequest, wire.QueryEvent>) =>
      void stream('QueryWithProgress', call, async (requestId) => {
        // A doctor who hung up gets no more events; the search itself runs to its end, as for Query.
        const send = (event: wire.QueryEvent['event']) => {
          if (!call.cancelled && call.writable) call.write({ event });
        };
        const onProgress = throttleProgress((p) => send({ $case: 'progress', value: progressToWire(p) }), PROGRESS_INTERVAL_MS);
        const reply = await runQuery(call.request, requestId, onProgress);
        send({ $case: 'reply', value: reply });
        call.end();
      }),

    allocateSlots: unary<wire.AllocateSlotsRequest, wire.SlotAssignments>('AllocateSlots', (req) => {
      checkImageSize(req.width, req.height);
      checkPixelDepth(req.maxValue);
      if (req.lookupTags.length === 0 || req.lookupTags.length > MAX_SLOTS_PER_CALL)
        throw invalidInput(`name between 1 and ${MAX_SLOTS_PER_CALL} records`);
      checkLookupTags(req.lookupTags);
      const shape = { width: req.width, height: req.height, maxValue: req.maxValue };
      return { slots: store.allocateSlots(shape, req.lookupTags.map((t) => Buffer.from(t))) };
    }),

    getGroup: unary<wire.GetGroupRequest, wire.GroupContents>('GetGroup', (req) => {
      const { version, members } = store.group(req.group);
      return { version, members: members.map((m) => ({ slot: m.slot, lookupTag: m.lookupTag, sealedImage: m.sealedImage })) };
    }),

    batchQuery: (call: ServerDuplexStream<wire.QueryRequest, wire.QueryReply>) => {
      const batchId = requestIdOf(call.metadata);
      // At most a few queries of one stream run at once: a batch of hundreds
      // would otherwise fill the crypto pool's queue, and every other doctor's
      // query would wait behind all of it. The rest of the batch waits here.
      const limit = concurrencyLimit(deps.batchConcurrency ?? BATCH_CONCURRENCY);
      const running: Promise<void>[] = [];
      let n = 0;
      call.on('data', (req: wire.QueryRequest) => {
        const requestId = `${batchId}.${++n}`;
        const started = Date.now();
        running.push(
          limit(() => runQuery(req, requestId)).then(
            (reply) => void call.write(reply),
            (error) => {
              const s = failed('BatchQuery', requestId, started, error);
              const failure = { code: status[s.code] ?? String(s.code), message: s.details };
              call.write({ tag: req.tag, stats: undefined, answer: { $case: 'failure', value: failure } });
            },
          ),
        );
      });
      call.on('end', () => {
        void Promise.all(running).then(() => call.end());
      });
      call.on('error', () => {});
    },

    status: unary<wire.StatusRequest, wire.DatabaseStatus>('Status', async () => {
      const shape = store.shape();
      return {
        records: BigInt(store.count),
        width: shape?.width ?? 0,
        height: shape?.height ?? 0,
        maxValue: shape?.maxValue ?? 0,
        keyBits: pk.bits,
        keyFingerprint: pk.fingerprint(),
        c2Reachable: await deps.keyHolder.reachable(),
        layouts: layoutsToWire(shape?.layouts ?? []),
      };
    }),
  };
}

import {
  status,
  type Deadline,
  type Metadata,
  type ServerDuplexStream,
  type ServerUnaryCall,
  type ServerWritableStream,
} from '@grpc/grpc-js';
import * as wire from '@fnn/proto';
import { collectionField, collectionOf, damagedToWire, handlers, requestIdOf, type Collections, type LogFields } from '@fnn/server-common';
import {
  callerIdentity,
  callerOf,
  concurrencyLimit,
  layoutsToWire,
  settingsToWire,
  resourceExhausted,
  throttleProgress,
  UploadAssembly,
  progressToWire,
  type FastC1Crypto,
  type C1Crypto,
  type CallObserver,
  type Logger,
  type ProgressListener,
  type WireCodec,
} from '@fnn/shared';
import { UNKNOWN_CALLER, type AdmissionQueue } from './admission';
import type { C2Link } from './c2-link';
import { RequestChecks } from './requests';
import type { RecordStore } from './storage';

/** QueryWithProgress: at most ~10 progress events a second (phase changes and a phase's end always go). */
const PROGRESS_INTERVAL_MS = 100;

export interface DatabaseDeps {
  /** Every collection's store; a call names its own (`fnn-collection`), the default one when it names none. */
  collections: Collections<RecordStore>;
  crypto: C1Crypto;
  codec: WireCodec;
  c2: C2Link;
  /** C1's own key pair and the multi-exponentiation pool, for the fast protocol. */
  fast: FastC1Crypto;
  log: Logger;
  queryTimeoutMs: number;
  /** Queries of one BatchQuery stream that run at once (default BATCH_CONCURRENCY). */
  batchConcurrency?: number;
  /** Where every query waits for its place (admission.ts). */
  admission: AdmissionQueue;
  /** An upload in parts idle this long is refused (default UPLOAD_PART_IDLE_MS). */
  uploadPartIdleMs?: number;
  /** Hears of every call once it has ended (the audit trail and the metrics). */
  observe?: CallObserver;
}

/** What admission reads from a query's call: who calls (the verified certificate), until when, and whether it hung up. */
interface QueryCall {
  getAuthContext: ServerUnaryCall<unknown, unknown>['getAuthContext'];
  getDeadline(): Deadline;
  on(event: 'cancelled', listener: () => void): unknown;
}

/** Aborted when the call is cancelled (the caller hung up, or its deadline passed): one listener per call, not per query. */
function cancelSignal(call: QueryCall): AbortSignal {
  const aborted = new AbortController();
  call.on('cancelled', () => aborted.abort());
  return aborted.signal;
}

const deadlineMs = (deadline: Deadline): number => (deadline instanceof Date ? deadline.getTime() : deadline);

/**
 * Uploads in parts C1 takes at once, and the bulk each may announce: what
 * uploads in parts can make C1 hold is at most their product (2 GiB). 1 GiB
 * is a group of 30 records of 256x256 in the paper's layout at 2048 bits.
 */
export const UPLOADS_IN_PARTS = 2;
export const MAX_UPLOAD_IN_PARTS_BYTES = 2 ** 30;
/** An upload in parts that sends nothing for this long gives up its place (the owner's parts come seconds apart). */
export const UPLOAD_PART_IDLE_MS = 60_000;

/** Two at once keep both cores busy between one query's rounds with C2. */
export const BATCH_CONCURRENCY = 2;

/** C1's gRPC service: the owner's uploads and deletes, the doctors' queries. */
export function databaseService(deps: DatabaseDeps): wire.DatabaseServer {
  const { collections, crypto, codec, log } = deps;
  const pk = crypto.publicKey;
  const { unary, clientStream, stream, failed } = handlers(log, deps.observe);
  let uploadsInParts = 0;

  const checks = new RequestChecks(pk, codec);

  /**
   * `work` once the admission queue gives the call's caller a place, within the
   * call's deadline. Over TLS every caller has a verified certificate (C1
   * demands one); without TLS none is known, and the queue caps those queries in all only.
   */
  const admitted = <T>(call: QueryCall, signal: AbortSignal, work: () => Promise<T>): Promise<T> => {
    const cert = call.getAuthContext()?.sslPeerCertificate;
    return deps.admission.run(cert?.subject ? callerOf(cert) : UNKNOWN_CALLER, work, { deadline: deadlineMs(call.getDeadline()), signal });
  };

  /** One query of any protocol: the shared part checked here, the rest by the protocol's module (registry). */
  const runQuery = async (
    req: wire.QueryRequest,
    requestId: string,
    fields: LogFields,
    metadata: Metadata,
    onProgress?: ProgressListener,
  ): Promise<wire.QueryReply> => {
    // An unknown collection is NOT_FOUND before any check or protocol work: nothing is created by a query.
    const collection = collectionOf(metadata);
    const store = collections.find(collection);
    const { protocol, k, query } = checks.query(req, store.shape());
    // What the call's log line, the audit trail and the metrics say of it: the protocol and k, and how many records it weighed.
    fields.protocol = protocol.name;
    fields.k = k;
    const started = Date.now();
    const { answer, stats } = await protocol.c1.answer(
      {
        collection: store,
        crypto,
        fast: deps.fast,
        codec,
        openSession: () => deps.c2.openSession(requestId, new Date(Date.now() + deps.queryTimeoutMs), collection),
        k,
        requestId,
        onProgress,
      },
      query,
    );
    const rejected = stats.bound?.rejected ?? 0n;
    fields.records = Number(stats.total);
    fields.rejected = Number(rejected);
    log.info({ requestId, protocol: protocol.name, k, total: stats.total, rejected, ms: Date.now() - started }, 'query done');
    return { tag: req.tag, stats: { ...stats, levels: stats.levels ?? [] }, answer };
  };

  return {
    upload: unary<wire.UploadRequest, wire.UploadReply>('Upload', (req, _requestId, fields, metadata) => {
      const { shape, change, records } = checks.upload(req);
      const store = collections.create(collectionOf(metadata));
      const { stored, replaced } = store.upsertGroup(shape, change, records);
      Object.assign(fields, { group: change.group, stored, replaced });
      return { stored, replaced, total: BigInt(store.count) };
    }),

    // The same checks and the one transaction as Upload, once the last part is in: a stream cut off stores nothing.
    uploadInParts: clientStream<wire.UploadPart, wire.UploadReply>(
      'UploadInParts',
      deps.uploadPartIdleMs ?? UPLOAD_PART_IDLE_MS,
      async (parts, _requestId, fields, metadata) => {
        // Named before the parts are read: a bad or unknown name costs the caller nothing of C1's memory.
        const collection = collectionOf(metadata);
        if (uploadsInParts >= UPLOADS_IN_PARTS)
          throw resourceExhausted(`C1 is taking ${UPLOADS_IN_PARTS} uploads in parts already: try again when one is done`);
        uploadsInParts++;
        try {
          const assembly = new UploadAssembly(pk.cipherBytes, MAX_UPLOAD_IN_PARTS_BYTES);
          let count = 0;
          for await (const part of parts) {
            assembly.add(part);
            count++;
          }
          fields.parts = count;
          const { shape, change, records } = checks.upload(assembly.finish());
          const store = collections.create(collection);
          const { stored, replaced } = store.upsertGroup(shape, change, records);
          Object.assign(fields, { group: change.group, stored, replaced });
          return { stored, replaced, total: BigInt(store.count) };
        } finally {
          uploadsInParts--;
        }
      },
    ),

    delete: unary<wire.DeleteRequest, wire.DeleteReply>('Delete', (req, _requestId, fields, metadata) => {
      const store = collections.find(collectionOf(metadata));
      const { tags, changes } = checks.delete(req);
      const deleted = store.delete(tags, changes);
      Object.assign(fields, { groups: changes.map((c) => c.group).join(','), deleted });
      return { deleted, total: BigInt(store.count) };
    }),

    // The caller's verified certificate is on the call, not the request: read it there.
    query: (call: ServerUnaryCall<wire.QueryRequest, wire.QueryReply>, callback) => {
      const signal = cancelSignal(call);
      unary<wire.QueryRequest, wire.QueryReply>('Query', (req, requestId, fields, metadata) =>
        admitted(call, signal, () => runQuery(req, requestId, fields, metadata)),
      )(call, callback);
    },

    queryWithProgress: (call: ServerWritableStream<wire.QueryRequest, wire.QueryEvent>) =>
      void stream('QueryWithProgress', call, async (requestId, fields) => {
        // A doctor who hung up gets no more events; the search itself runs to its end, as for Query.
        const send = (event: wire.QueryEvent['event']) => {
          if (!call.cancelled && call.writable) call.write({ event });
        };
        const onProgress = throttleProgress((p) => send({ $case: 'progress', value: progressToWire(p) }), PROGRESS_INTERVAL_MS);
        const reply = await admitted(call, cancelSignal(call), () => runQuery(call.request, requestId, fields, call.metadata, onProgress));
        send({ $case: 'reply', value: reply });
        call.end();
      }),

    // A collection's first AllocateSlots creates it (its file, within the daemon's bound), before its first upload.
    allocateSlots: unary<wire.AllocateSlotsRequest, wire.SlotAssignments>('AllocateSlots', (req, _requestId, _fields, metadata) => {
      const { shape, tags } = checks.allocateSlots(req);
      const store = collections.create(collectionOf(metadata));
      const slots = store.allocateSlots(shape, tags);
      return { slots, collectionId: store.fixCollectionId() };
    }),

    getGroup: unary<wire.GetGroupRequest, wire.GroupContents>('GetGroup', (req, _requestId, _fields, metadata) => {
      const store = collections.find(collectionOf(metadata));
      const { version, members } = store.group(req.group);
      return { version, members: members.map((m) => ({ slot: m.slot, lookupTag: m.lookupTag, sealedImage: m.sealedImage })) };
    }),

    listGroups: unary<wire.ListGroupsRequest, wire.GroupList>('ListGroups', (_req, _requestId, _fields, metadata) => {
      const store = collections.find(collectionOf(metadata));
      const shape = store.shape();
      return {
        collectionId: store.collectionId() ?? Buffer.alloc(0),
        width: shape?.width ?? 0,
        height: shape?.height ?? 0,
        maxValue: shape?.maxValue ?? 0,
        groups: store.groupStates().map((g) => ({ ...g, pending: false, pendingDigest: '', pendingMembers: 0 })),
        // The whole file read and hashed: `fnn check` is the owner's occasional look, not a query's.
        damaged: damagedToWire(store.verify()),
      };
    }),

    batchQuery: (call: ServerDuplexStream<wire.QueryRequest, wire.QueryReply>) => {
      const batchId = requestIdOf(call.metadata);
      // At most a few queries of one stream run at once: a batch of hundreds
      // would otherwise fill the crypto pool's queue, and every other doctor's
      // query would wait behind all of it. The rest of the batch waits here.
      // Each of those then waits in the admission queue like any other query.
      const limit = concurrencyLimit(deps.batchConcurrency ?? BATCH_CONCURRENCY);
      const signal = cancelSignal(call);
      const running: Promise<void>[] = [];
      let n = 0;
      call.on('data', (req: wire.QueryRequest) => {
        const requestId = `${batchId}.${++n}`;
        const started = Date.now();
        const fields: LogFields = collectionField(call.metadata);
        // Each query of a batch is its own call for the audit trail and the metrics.
        const observed = (code: status) =>
          deps.observe?.({
            rpc: 'BatchQuery',
            requestId,
            caller: callerIdentity(call.getAuthContext()?.sslPeerCertificate),
            fields,
            code,
            ms: Date.now() - started,
          });
        running.push(
          limit(() => admitted(call, signal, () => runQuery(req, requestId, fields, call.metadata))).then(
            (reply) => {
              observed(status.OK);
              call.write(reply);
            },
            (error) => {
              const s = failed('BatchQuery', requestId, started, error, fields);
              observed(s.code);
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

    listCollections: unary<wire.ListCollectionsRequest, wire.CollectionList>('ListCollections', () => ({
      collections: collections.entries().map(([name, store]) => {
        const shape = store.shape();
        return {
          name,
          records: BigInt(store.count),
          width: shape?.width ?? 0,
          height: shape?.height ?? 0,
          maxValue: shape?.maxValue ?? 0,
          layouts: layoutsToWire(shape?.layouts ?? []),
          settings: shape?.settings && settingsToWire(shape.settings),
        };
      }),
    })),

    // A collection not created yet is NOT_FOUND here too: the doctor's query asks Status first (the owner's upload takes it as new).
    status: unary<wire.StatusRequest, wire.DatabaseStatus>('Status', async (_req, _requestId, _fields, metadata) => {
      const store = collections.find(collectionOf(metadata));
      const shape = store.shape();
      return {
        records: BigInt(store.count),
        width: shape?.width ?? 0,
        height: shape?.height ?? 0,
        maxValue: shape?.maxValue ?? 0,
        keyBits: pk.bits,
        keyFingerprint: pk.fingerprint(),
        c2Reachable: await deps.c2.reachable(),
        layouts: layoutsToWire(shape?.layouts ?? []),
        settings: shape?.settings && settingsToWire(shape.settings),
      };
    }),
  };
}

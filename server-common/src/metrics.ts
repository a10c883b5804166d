import { statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { status as Code } from '@grpc/grpc-js';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { ACCESS_POLICY, PROTOCOL_NAMES, rpcName, type CallObserver, type CallRecord } from '@fnn/shared';

// A daemon's Prometheus metrics (`--metrics HOST:PORT`): what an operator
// graphs and alerts on, from the calls the daemon's observers hear and a few
// gauges read at scrape time. Labels are bounded sets only (protocol, RPC,
// status name): never a caller's subject, a record ID or anything a caller
// sent, which would leak and make the series unbounded. Each daemon has its
// own Registry, so two daemons in one process (the tests) do not mix.

/** Query latency from 50 ms (fast, small collections) to 2 h (the paper's protocols at 256x256). */
export const QUERY_SECONDS_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200];

const QUERY_RPCS = new Set(['Query', 'QueryWithProgress', 'BatchQuery']);
const UPLOAD_RPCS = new Set(['Upload', 'UploadInParts']);
/** The method names a refusal may carry: a path outside the table is labelled `other`, so a caller cannot mint series. */
const KNOWN_METHODS = new Set(Object.keys(ACCESS_POLICY).map(rpcName));
const PROTOCOLS = new Set<string>(PROTOCOL_NAMES);

/** What the gauges read at scrape time; each absent until the daemon that has it is started. */
export interface MetricSources {
  /** Protocol sessions open now (C2: sessions it serves; C1: sessions to C2 it holds). */
  sessions?: () => number;
  /** C1's admission queue: queries running and waiting. */
  queries?: () => { running: number; queued: number };
  /** The daemon's SQLite files; their -wal beside each is counted too. */
  databases?: readonly string[] | (() => readonly string[]);
}

export interface MetricsServer {
  /** host:port the /metrics endpoint is bound to (port 0 resolved). */
  address: string;
  close(): Promise<void>;
}

/** The metrics server could not bind its address (in use, not local, not permitted): one line for the operator. */
export class MetricsListenError extends Error {
  constructor(
    readonly address: string,
    readonly code: string,
  ) {
    super(`cannot serve metrics at ${address} (${code})`);
  }
}

/** A scrape is small and quick: a slow or piling-up client is cut off, not waited for. */
const HTTP_LIMITS = { requestTimeoutMs: 10_000, headersTimeoutMs: 5_000, maxConnections: 16 };

export class DaemonMetrics {
  readonly registry = new Registry();
  private sources: MetricSources = {};
  private readonly querySeconds: Histogram<'protocol'>;
  private readonly calls: Counter<'rpc' | 'code'>;
  private readonly uploads: Counter;
  private readonly uploadedRecords: Counter<'outcome'>;
  private readonly deletes: Counter;
  private readonly deletedRecords: Counter;

  constructor(daemon: 'c1' | 'c2') {
    const registers = [this.registry];
    this.registry.setDefaultLabels({ daemon });
    collectDefaultMetrics({ register: this.registry });
    this.querySeconds = new Histogram({
      name: 'fnn_query_seconds',
      help: 'Time of each answered query at C1, from its arrival (the admission wait included) to the reply, by protocol',
      labelNames: ['protocol'],
      buckets: QUERY_SECONDS_BUCKETS,
      registers,
    });
    this.calls = new Counter({
      name: 'fnn_calls_total',
      help: 'Calls ended or refused, by RPC and status code',
      labelNames: ['rpc', 'code'],
      registers,
    });
    this.uploads = new Counter({ name: 'fnn_uploads_total', help: 'Upload calls that stored a group (Upload, UploadInParts)', registers });
    this.uploadedRecords = new Counter({
      name: 'fnn_uploaded_records_total',
      help: 'Records written by uploads: stored new, or replaced in place',
      labelNames: ['outcome'],
      registers,
    });
    this.deletes = new Counter({ name: 'fnn_deletes_total', help: 'Delete calls that succeeded', registers });
    this.deletedRecords = new Counter({ name: 'fnn_deleted_records_total', help: 'Records removed by deletes', registers });
    const sources = () => this.sources;
    new Gauge({
      name: 'fnn_sessions_in_flight',
      help: 'Protocol sessions open now (C2: served; C1: held to C2)',
      registers,
      collect() {
        this.set(sources().sessions?.() ?? 0);
      },
    });
    new Gauge({
      name: 'fnn_queries_in_flight',
      help: "Queries in C1's admission queue, running or waiting",
      labelNames: ['state'],
      registers,
      collect() {
        const q = sources().queries?.();
        if (!q) return;
        this.set({ state: 'running' }, q.running);
        this.set({ state: 'waiting' }, q.queued);
      },
    });
    new Gauge({
      name: 'fnn_database_bytes',
      help: "Size of the daemon's SQLite files on disk, write-ahead log included",
      registers,
      collect() {
        const databases = sources().databases ?? [];
        this.set(
          (typeof databases === 'function' ? databases() : databases).reduce(
            (sum, path) => sum + fileBytes(path) + fileBytes(`${path}-wal`),
            0,
          ),
        );
      },
    });
  }

  /** Tells the gauges where to read (once the daemon is started; until then they read 0). */
  watch(sources: MetricSources): void {
    this.sources = { ...this.sources, ...sources };
  }

  /** The observer to pass the daemon: counts every call it hears. */
  readonly observe: CallObserver = (record: CallRecord) => {
    const rpc = record.fields.refused === true && !KNOWN_METHODS.has(record.rpc) ? 'other' : record.rpc;
    this.calls.inc({ rpc, code: Code[record.code] ?? 'UNKNOWN' });
    if (record.code !== Code.OK) return;
    const { protocol, stored, replaced, deleted } = record.fields;
    if (QUERY_RPCS.has(record.rpc) && typeof protocol === 'string' && PROTOCOLS.has(protocol))
      this.querySeconds.observe({ protocol }, record.ms / 1000);
    if (UPLOAD_RPCS.has(record.rpc)) {
      this.uploads.inc();
      if (typeof stored === 'number') this.uploadedRecords.inc({ outcome: 'stored' }, stored);
      if (typeof replaced === 'number') this.uploadedRecords.inc({ outcome: 'replaced' }, replaced);
    }
    if (record.rpc === 'Delete') {
      this.deletes.inc();
      if (typeof deleted === 'number') this.deletedRecords.inc(deleted);
    }
  };

  /** Serves GET /metrics at `listen` (host:port; port 0 picks a free one) until close(). */
  serve(listen: string): Promise<MetricsServer> {
    const { host, port } = splitAddress(listen);
    const server = createServer((req, res) => {
      const path = (req.url ?? '').split('?')[0];
      if (path !== '/metrics')
        return void res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found: the metrics are at /metrics\n');
      if (req.method !== 'GET' && req.method !== 'HEAD') return void res.writeHead(405, { Allow: 'GET, HEAD' }).end();
      this.registry.metrics().then(
        (body) => res.writeHead(200, { 'Content-Type': this.registry.contentType }).end(req.method === 'HEAD' ? undefined : body),
        () => res.writeHead(500, { 'Content-Type': 'text/plain' }).end('metrics unavailable\n'),
      );
    });
    server.requestTimeout = HTTP_LIMITS.requestTimeoutMs;
    server.headersTimeout = HTTP_LIMITS.headersTimeoutMs;
    server.maxConnections = HTTP_LIMITS.maxConnections;
    return new Promise((resolve, reject) => {
      server.once('error', (error: NodeJS.ErrnoException) => reject(new MetricsListenError(listen, error.code ?? error.message)));
      server.listen(port, host, () => {
        const bound = server.address() as AddressInfo;
        const address = bound.family === 'IPv6' ? `[${bound.address}]:${bound.port}` : `${bound.address}:${bound.port}`;
        resolve({ address, close: () => closeServer(server) });
      });
    });
  }
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    // A scraper's kept-alive connection would hold the daemon's exit for its idle timeout.
    server.closeAllConnections();
  });
}

function splitAddress(address: string): { host: string; port: number } {
  const match = /^\[([0-9a-fA-F:]+)\]:(\d{1,5})$|^([\w.-]+):(\d{1,5})$/.exec(address);
  const port = Number(match?.[2] ?? match?.[4]);
  if (!match || port > 65535) throw new MetricsListenError(address, 'not HOST:PORT');
  return { host: match[1] ?? match[3], port };
}

function fileBytes(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status as Code } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, startDaemon, type Daemon } from './harness';
import {
  connect,
  grpcError,
  INSECURE,
  makeKeys,
  randomPixels,
  rawUnary,
  startC1,
  startC2,
  writeImage,
  type Connections,
  type Keys,
} from './testing/deployment';

// `fnn c1 --metrics` and `fnn c2 --metrics`: the real daemons serve
// Prometheus' text format at /metrics, and what they count moves with the
// calls they answer: an upload, a fast query, a refused request.

const W = 4;
const H = 4;
let work: string;
let keys: Keys;
let c1: Daemon;
let c2: Daemon;
let c: Connections;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'fnn-metrics-'));
  keys = await makeKeys(join(work, 'keys'));
  // FNN_METRICS is --metrics (a free port each); the listening line says where.
  const metrics = { FNN_METRICS: '127.0.0.1:0' };
  c2 = await startC2(keys, join(work, 'c2.db'), '127.0.0.1:0', metrics);
  c1 = await startC1(keys, join(work, 'c1.db'), c2.address, '127.0.0.1:0', metrics);
  c = connect(c1.address, c2.address);
});

afterAll(async () => {
  c?.close();
  await c1?.stop();
  await c2?.stop();
  rmSync(work, { recursive: true, force: true });
});

interface Reply {
  status: number;
  type: string;
  body: string;
}

function get(address: string, path: string, method = 'GET'): Promise<Reply> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path, method, agent: false, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path} at ${address} took more than 10 s`)));
    req.on('error', reject);
    req.end();
  });
}

const metricsOf = (d: Daemon) => String(d.listening.metrics);

/** One scrape: each sample's value by its name and labels as printed (`name{a="b"}`), the daemon label left out. */
async function scrape(d: Daemon): Promise<Map<string, number>> {
  const reply = await get(metricsOf(d), '/metrics');
  expect(reply.status).toBe(200);
  expect(reply.type).toMatch(/^text\/plain; version=0\.0\.4/);
  const samples = new Map<string, number>();
  for (const line of reply.body.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    const key = line
      .slice(0, at)
      .replace(/,?daemon="c[12]"/, '')
      .replace('{}', '');
    samples.set(key.replace('{,', '{'), Number(line.slice(at + 1)));
  }
  return samples;
}

const value = (samples: Map<string, number>, key: string) => samples.get(key) ?? 0;

/**
 * Scrapes until `holds` is true of the samples, for at most 5 s: a session's
 * end reaches C2 (and its stream's status C1) just after the doctor has the
 * answer, so those counts settle a moment later.
 */
async function settled(d: Daemon, holds: (samples: Map<string, number>) => boolean): Promise<Map<string, number>> {
  const until = Date.now() + 5000;
  for (;;) {
    const samples = await scrape(d);
    if (holds(samples) || Date.now() > until) return samples;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('the daemons serve /metrics with --metrics', () => {
  it('print the bound metrics address in their listening line', () => {
    for (const d of [c1, c2]) expect(metricsOf(d)).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(metricsOf(c1)).not.toBe(metricsOf(c2));
  });

  it('count an upload, a fast query and a refused call; the gauges read the database and the queues', async () => {
    const before1 = await scrape(c1);
    const before2 = await scrape(c2);
    // Labelled per daemon, with Node's process metrics beside FNN's.
    expect(before1.has('process_cpu_user_seconds_total')).toBe(true);
    expect(value(before1, 'fnn_query_seconds_count{protocol="fast"}')).toBe(0);

    const images = join(work, 'images');
    mkdirSync(images);
    for (let i = 0; i < 5; i++) writeImage(join(images, `scan-${i}.png`), randomPixels(W * H), W, H);
    const conn = ['--c1', c1.address, '--c2', c2.address, '--keys', keys.dir, INSECURE, '--json'];
    const up = await runCli(['upload', images, ...conn]);
    expect(up.code, up.stderr).toBe(0);
    const query = await runCli(['query', join(images, 'scan-3.png'), '--protocol', 'fast', ...conn]);
    expect(query.code, query.stderr).toBe(0);
    const refused = await grpcError(rawUnary(c.rawC1, '/fnn.v1.Database/Query', Buffer.alloc(0)), 'a query without a header');
    expect(refused.code).toBe(Code.INVALID_ARGUMENT);

    const moved = (before: Map<string, number>, after: Map<string, number>, key: string) => value(after, key) - value(before, key);
    const after1 = await settled(c1, (s) => value(s, 'fnn_sessions_in_flight') === 0);
    const after2 = await settled(
      c2,
      (s) => value(s, 'fnn_sessions_in_flight') === 0 && moved(before2, s, 'fnn_calls_total{rpc="Session",code="OK"}') === 1,
    );
    expect(moved(before1, after1, 'fnn_query_seconds_count{protocol="fast"}')).toBe(1);
    expect(value(after1, 'fnn_query_seconds_sum{protocol="fast"}')).toBeGreaterThan(0);
    expect(moved(before1, after1, 'fnn_uploads_total')).toBeGreaterThanOrEqual(1);
    expect(moved(before1, after1, 'fnn_uploaded_records_total{outcome="stored"}')).toBe(5);
    expect(moved(before1, after1, 'fnn_calls_total{rpc="Query",code="INVALID_ARGUMENT"}')).toBe(1);
    expect(value(after1, 'fnn_database_bytes')).toBeGreaterThan(0);
    expect(value(after2, 'fnn_database_bytes')).toBeGreaterThan(0);
    // The query's session with C2 was counted at C2, and is over at both ends.
    expect(moved(before2, after2, 'fnn_calls_total{rpc="Session",code="OK"}')).toBe(1);
    expect(value(after1, 'fnn_sessions_in_flight')).toBe(0);
    expect(value(after2, 'fnn_sessions_in_flight')).toBe(0);
    expect(after1.get('fnn_queries_in_flight{state="running"}')).toBe(0);
    expect(after1.get('fnn_queries_in_flight{state="waiting"}')).toBe(0);
    // Record IDs never become labels.
    expect([...after1.keys(), ...after2.keys()].filter((k) => k.includes('scan-'))).toEqual([]);
  });

  it('answer only GET /metrics', async () => {
    expect((await get(metricsOf(c1), '/')).status).toBe(404);
    expect((await get(metricsOf(c1), '/metrics', 'POST')).status).toBe(405);
  });

  it('refuse a metrics address in use before opening the database: one line, exit 2', async () => {
    const db = join(work, 'never.db');
    const run = await runCli(['c1', '--listen', '127.0.0.1:0', '--keys', keys.dir, '--db', db, '--metrics', metricsOf(c1), INSECURE]);
    expect(run.code).toBe(2);
    expect(run.stderr.trim()).toBe(
      `fnn: cannot serve metrics at ${metricsOf(c1)}: the port is in use. Pick another --metrics (FNN_METRICS) or stop what holds it`,
    );
    expect(existsSync(db)).toBe(false);
  });

  it('stop serving metrics when the daemon stops', async () => {
    const d = await startDaemon('c2', [
      '--listen',
      '127.0.0.1:0',
      '--keys',
      keys.dir,
      '--db',
      join(work, 'c2b.db'),
      '--metrics',
      '127.0.0.1:0',
      INSECURE,
    ]);
    expect((await get(metricsOf(d), '/metrics')).status).toBe(200);
    expect(await d.stop()).toBe(0);
    await expect(get(metricsOf(d), '/metrics')).rejects.toThrow(/ECONNREFUSED/);
  });
});

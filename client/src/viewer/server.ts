import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify';
import fastifyMultipart from '@fastify/multipart';
import fastifyStatic from '@fastify/static';
import {
  DEFAULT_PROTOCOL,
  encodePng,
  isProtocolName,
  PROTOCOL_NAMES,
  protocolModule,
  type DoctorAnswer,
  presentMetadata,
  type GrayImage,
  type ProtocolName,
  type RecordMetadata,
} from '@fnn/shared';
import { rmsPerPixel } from '../commands/query';
import type { DoctorSession } from '../doctor-session';
import { parseK } from '../doctor-session';
import { openImageBytes, parseImageOptions, recordIdOf, ruledImage, type ImageOptions } from '../image-files';
import { classify, CliError, EXIT } from '../output';
import { HeldFiles } from './files';
import { allowedHosts, refusal, TOKEN_HEADER } from './guard';
import { Searches, SEARCH_LIMITS, type SearchEvent, type SearchLimits } from './searches';

// `fnn viewer`'s web server: the page (client/viewer/) and the JSON and
// server-sent-event routes it calls. It runs on the doctor's machine with the
// doctor's keys; the page gets images, IDs and distances, never a key.
// Fastify parses HTTP and multipart; every request passes guard.ts first.

/** The page's files: client/viewer/, beside src/ and dist/ alike. */
export const PAGE_DIR = resolve(__dirname, '..', '..', 'viewer');

/** A collection as the page offers it: its name, size and rule, and the protocols it answers. */
export interface CollectionChoice {
  name: string;
  records: number;
  /** 0 while empty. */
  width: number;
  height: number;
  protocols: ProtocolName[];
  /** What every query of it applies: the collection's own when it remembers them, else this viewer's flags. */
  offset: number;
  fit: 'refuse' | 'crop';
}

export interface ViewerOptions {
  session: DoctorSession;
  /** host:port; port 0 takes a free one. */
  listen: string;
  token: string;
  /** Largest file the page may send. */
  maxFileBytes: number;
  defaultProtocol?: ProtocolName;
  /** The viewer's image flags (--offset, --fit, --size, --axis): what a collection that does not remember its own is read with. */
  flags?: ImageOptions;
  limits?: SearchLimits;
}

/** The deployment's collections as the page's picker offers them (C1's ListCollections), the default first. */
export async function listCollections(session: DoctorSession, flags: ImageOptions): Promise<CollectionChoice[]> {
  return (await session.collections()).map((c) => ({
    name: c.name,
    records: c.records,
    width: c.width,
    height: c.height,
    protocols: PROTOCOL_NAMES.filter((p) => c.layouts.includes(protocolModule(p).layout)),
    offset: c.settings?.offset ?? flags.rule.offset,
    fit: c.settings?.fit ?? flags.fit,
  }));
}

/** A DICOM file's own display window, in its units (before the collection's offset). */
export interface QueryWindow {
  windowCenter: number;
  windowWidth: number;
}

/** One neighbour as the page shows it. */
export interface ViewerNeighbour {
  rank: number;
  id: string;
  /** Squared Euclidean distance, exact (a decimal string: it can pass 2^53). */
  distance: string;
  /** sqrt(distance / pixels): a typical pixel's difference, in the collection's units (as `fnn query --json`). */
  rmsPerPixel: number;
  /** What the owner sealed with the record (modality, study, date, DICOM window, label...), only the fields present; absent for none. */
  metadata?: RecordMetadata;
  maxValue: number;
  pixels: string;
}

export interface ViewerResult {
  search: string;
  query: string;
  collection: string;
  protocol: ProtocolName;
  k: number;
  total: number;
  rejected?: number;
  elapsedMs: number;
  width: number;
  height: number;
  maxValue: number;
  /** The collection's offset: a record's DICOM window is in its values before it (stored = file value + offset). */
  offset: number;
  pixels: string;
  /** The query file's DICOM window, when it has one. */
  window?: QueryWindow;
  neighbours: ViewerNeighbour[];
}

/** Pixels as base64 of little-endian uint16: what the page's canvases draw under any window. */
export function pixelsBase64(pixels: Uint16Array): string {
  const out = Buffer.alloc(pixels.length * 2);
  pixels.forEach((v, i) => out.writeUInt16LE(v, i * 2));
  return out.toString('base64');
}

function toResult(
  search: string,
  collection: string,
  k: number,
  image: GrayImage,
  answer: DoctorAnswer,
  started: number,
  offset: number,
): ViewerResult {
  return {
    search,
    query: answer.tag,
    collection,
    protocol: answer.protocol,
    k,
    total: answer.total,
    ...(answer.bound ? { rejected: answer.bound.rejected } : {}),
    elapsedMs: Date.now() - started,
    width: image.width,
    height: image.height,
    maxValue: image.maxValue,
    offset,
    pixels: pixelsBase64(image.pixels),
    neighbours: answer.neighbours.map((nb, i) => {
      const metadata = presentMetadata(nb.metadata);
      return {
        rank: i + 1,
        id: nb.id,
        distance: nb.distance.toString(),
        rmsPerPixel: rmsPerPixel(nb.distance, image.pixels.length),
        ...(Object.keys(metadata).length > 0 ? { metadata } : {}),
        maxValue: nb.image.maxValue,
        pixels: pixelsBase64(nb.image.pixels),
      };
    }),
  };
}

const HTTP_STATUS: Record<number, number> = {
  [EXIT.usage]: 400,
  [EXIT.invalid]: 422,
  [EXIT.notFound]: 404,
  [EXIT.unavailable]: 503,
  [EXIT.refused]: 403,
  [EXIT.dataLoss]: 500,
  [EXIT.failure]: 500,
};

/** The CLI's one-line reason and exit code for a failure, with the HTTP status that goes with it. */
function failure(error: unknown, maxFileBytes: number): { status: number; body: { error: string; exitCode: number } } {
  const e = error as { code?: unknown; statusCode?: number };
  if (e.code === 'FST_REQ_FILE_TOO_LARGE' || e.code === 'FST_FILES_LIMIT' || e.statusCode === 413)
    return {
      status: 413,
      body: {
        error: `the file is larger than this viewer accepts (${maxFileBytes >= 2 ** 20 ? `${Math.floor(maxFileBytes / 2 ** 20)} MiB` : `${maxFileBytes} bytes`}: --max-file)`,
        exitCode: EXIT.usage,
      },
    };
  if (typeof e.code === 'string' && e.code.startsWith('FST_') && typeof e.statusCode === 'number' && e.statusCode < 500)
    return { status: e.statusCode, body: { error: (error as Error).message, exitCode: EXIT.usage } };
  const { code, reason } = classify(error);
  return { status: HTTP_STATUS[code] ?? 500, body: { error: reason, exitCode: code } };
}

const intParam = (text: unknown, what: string, max: number) => {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0 || n > max) throw new CliError('usage', `${what} must be an integer from 0 to ${max}`);
  return n;
};

const SECURITY_HEADERS = {
  // Only the page's own files and its own API: no CDN, nothing inline, no framing.
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
  'cache-control': 'no-store',
};

export async function startViewer(options: ViewerOptions) {
  const { session, token, maxFileBytes } = options;
  const defaultProtocol = options.defaultProtocol ?? DEFAULT_PROTOCOL;
  const limits = options.limits ?? SEARCH_LIMITS;
  const flags = options.flags ?? parseImageOptions({});
  const files = new HeldFiles();
  const searches = new Searches<ViewerResult>(limits);
  const images = new Map<string, { query: GrayImage; neighbours: GrayImage[] }>();
  const index = readFileSync(join(PAGE_DIR, 'index.html'), 'utf8');
  let hosts = new Set<string>();

  // No logger: URLs carry the token, and requests name patients' files.
  // forceCloseConnections: a page's open event streams must not hold the viewer up when the doctor stops it.
  const app = Fastify({ logger: false, bodyLimit: 64 * 1024, forceCloseConnections: true });
  app.addHook('onRequest', async (request, reply) => {
    const why = refusal(
      { method: request.method, headers: request.headers, queryToken: (request.query as { t?: string } | undefined)?.t },
      token,
      hosts,
    );
    if (why) return reply.code(403).headers(SECURITY_HEADERS).type('text/plain; charset=utf-8').send(`refused: ${why}\n`);
    reply.headers(SECURITY_HEADERS);
  });
  app.setErrorHandler((error, _request, reply) => {
    const { status, body } = failure(error, maxFileBytes);
    void reply.code(status).send(body);
  });
  await app.register(fastifyMultipart, { limits: { fileSize: maxFileBytes, files: 1, fields: 4, parts: 5 }, throwFileSizeLimit: true });
  await app.register(fastifyStatic, {
    root: PAGE_DIR,
    prefix: '/static/',
    index: false,
    list: false,
    allowedPath: (p) => /^\/(app\.js|style\.css)$/.test(p),
  });

  app.get('/', async (_request, reply) => reply.type('text/html; charset=utf-8').send(index.replaceAll('__FNN_TOKEN__', token)));

  app.get('/api/collections', async () => ({
    collections: await listCollections(session, flags),
    defaultCollection: session.collection,
    protocols: PROTOCOL_NAMES,
    defaultProtocol,
    maxK: 100,
    maxFileBytes,
  }));

  app.post('/api/files', async (request) => {
    const part = await request.file();
    if (!part) throw new CliError('usage', 'no file was sent');
    const bytes = await part.toBuffer();
    const name = (part.filename || 'image').slice(0, 255);
    const stack = await openImageBytes(bytes, name, flags);
    const held = files.add(name, stack, bytes.length);
    const labels = Array.from({ length: stack.count }, (_, i) => stack.label(i));
    return {
      file: held.id,
      name,
      format: stack.format,
      width: stack.width,
      height: stack.height,
      count: stack.count,
      labels,
      index: stack.count > 1 ? Math.floor(stack.count / 2) : 0,
    };
  });

  /** Image i of a held file as it will be searched in a collection: its pixel rule and size (its fit) applied. */
  async function searched(
    fileId: string,
    i: number,
    collection: string,
  ): Promise<{ name: string; image: GrayImage; options: ImageOptions; window?: QueryWindow }> {
    const held = files.get(fileId);
    if (i >= held.stack.count) throw new CliError('usage', `${held.name}: has no image ${i + 1} (it holds ${held.stack.count})`);
    const options = await session.imageOptions(collection);
    if (options.fit === 'crop' && !options.size)
      throw new CliError('usage', "--fit crop needs --size WIDTHxHEIGHT (the collection's image size)");
    // The file's own DICOM window (in its units; no patient identity is read), for the page's default window.
    const m = held.stack.metadata?.(i);
    const window =
      m?.windowCenter !== undefined && m.windowWidth !== undefined
        ? { windowCenter: m.windowCenter, windowWidth: m.windowWidth }
        : undefined;
    return { name: recordIdOf(held.name, held.stack, i), image: ruledImage(held.stack, i, options, options.size), options, window };
  }

  const collectionOf = (text: unknown) => (text === undefined || text === '' ? session.collection : String(text));

  app.get('/api/files/:file/images/:index', async (request) => {
    const { file, index: i } = request.params as { file: string; index: string };
    const collection = collectionOf((request.query as { collection?: string }).collection);
    const { name, image, options, window } = await searched(file, intParam(i, 'the image number', 1 << 20), collection);
    return {
      name,
      ...(window ? { window } : {}),
      width: image.width,
      height: image.height,
      maxValue: image.maxValue,
      pixels: pixelsBase64(image.pixels),
      offset: options.rule.offset,
      fit: options.fit,
    };
  });

  app.post('/api/searches', async (request, reply) => {
    const body = (request.body ?? {}) as { file?: unknown; index?: unknown; k?: unknown; protocol?: unknown; collection?: unknown };
    const k = parseK(body.k as number);
    const protocol = String(body.protocol ?? defaultProtocol);
    if (!isProtocolName(protocol)) throw new CliError('usage', `--protocol must be one of ${PROTOCOL_NAMES.join(', ')}`);
    const collection = collectionOf(body.collection);
    const chosen = (await listCollections(session, flags)).find((c) => c.name === collection);
    if (!chosen) throw new CliError('notFound', `no collection named "${collection.slice(0, 64)}" at C1 (fnn collections lists them)`);
    if (chosen.records === 0) throw new CliError('notFound', `the collection ${collection} is empty: nothing to search`);
    if (!chosen.protocols.includes(protocol))
      throw new CliError('usage', 'this collection was uploaded with --no-paper-layout: it answers only --protocol fast');
    const { name, image, options, window } = await searched(
      String(body.file),
      intParam(body.index ?? 0, 'the image number', 1 << 20),
      collection,
    );
    const doctor = session.doctor(protocol, k, collection);
    const search = searches.start(async (onProgress) => {
      const started = Date.now();
      const answer = await doctor.query(name, image, onProgress);
      images.set(search.id, { query: image, neighbours: answer.neighbours.map((n) => n.image) });
      for (const id of images.keys()) if (!searches.get(id)) images.delete(id);
      return { ...toResult(search.id, collection, k, image, answer, started, options.rule.offset), ...(window ? { window } : {}) };
    });
    return reply.code(202).send({ search: search.id, query: name });
  });

  const found = (id: string) => {
    const search = searches.get(id);
    if (!search) throw new CliError('notFound', 'no such search (the viewer keeps the latest ones only)');
    return search;
  };

  app.get('/api/searches/:id/events', (request: FastifyRequest, reply: FastifyReply) => {
    const search = found((request.params as { id: string }).id);
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'text/event-stream; charset=utf-8', connection: 'keep-alive' });
    const send = (event: SearchEvent) => {
      if (res.writableEnded) return;
      res.write(`event: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`);
      if (event.type === 'result' || event.type === 'failure') res.end();
    };
    // A finished search replays its outcome at once and the stream ends; otherwise it ends with the search or the page.
    const stop = searches.listen(search, send);
    if (!stop) send({ type: 'failure', error: 'too many pages are watching searches; close one', exitCode: EXIT.unavailable });
    else if (res.writableEnded) stop();
    else res.on('close', stop);
  });

  const finished = (id: string) => {
    const search = found(id);
    const held = images.get(id);
    if (!search.result || !held) throw new CliError('notFound', 'this search has no result (yet)');
    return { result: search.result, held };
  };

  app.get('/api/searches/:id/result.json', async (request, reply) => {
    const { result } = finished((request.params as { id: string }).id);
    const file = (n: number) => `${n === 0 ? 'query' : `neighbour-${n}`}.png`;
    const body = {
      query: result.query,
      collection: result.collection,
      protocol: result.protocol,
      k: result.k,
      total: result.total,
      ...(result.rejected !== undefined ? { rejected: result.rejected } : {}),
      elapsedMs: result.elapsedMs,
      image: file(0),
      results: result.neighbours.map(({ rank, id, distance, rmsPerPixel, metadata }) => ({
        rank,
        id,
        distance,
        rmsPerPixel,
        ...(metadata ? { metadata } : {}),
        image: file(rank),
      })),
    };
    return reply.header('content-disposition', 'attachment; filename="result.json"').send(body);
  });

  app.get('/api/searches/:id/images/:n', async (request, reply) => {
    const { id, n } = request.params as { id: string; n: string };
    const { held } = finished(id);
    const rank = intParam(n.replace(/\.png$/, ''), 'the image number', held.neighbours.length);
    const image =
      rank === 0 ? held.query : { ...held.query, maxValue: held.neighbours[rank - 1].maxValue, pixels: held.neighbours[rank - 1].pixels };
    const name = rank === 0 ? 'query.png' : `neighbour-${rank}.png`;
    return reply.type('image/png').header('content-disposition', `attachment; filename="${name}"`).send(encodePng(image));
  });

  const [host, portText] = splitHostPort(options.listen);
  await app.listen({ host, port: Number(portText) });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : Number(portText);
  hosts = allowedHosts(host, port);
  const shown = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${shown}:${port}/?t=${token}`,
    address: `${shown}:${port}`,
    /** Stops at once: waiting searches fail, running ones end with the session's connections (a search can run an hour). */
    close: async () => {
      void searches.close();
      await app.close();
    },
  };
}

/** host:port or [v6]:port. */
export function splitHostPort(listen: string): [string, string] {
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(listen) ?? /^([^:]+):(\d{1,5})$/.exec(listen);
  if (!m || Number(m[2]) > 65535) throw new CliError('usage', `--listen must be HOST:PORT, e.g. 127.0.0.1:8080, not "${listen}"`);
  return [m[1], m[2]];
}

export { TOKEN_HEADER };

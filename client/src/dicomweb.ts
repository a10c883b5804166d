import { readFileSync, statSync } from 'node:fs';
import { CliError } from './output';

// A DICOMweb client for `fnn upload --dicomweb`: QIDO-RS to find a PACS's
// instances, WADO-RS to fetch each as the DICOM file the PACS stores. Every
// answer is bounded (instances, bytes, time) before it is read, since the
// PACS is another party's server. Credentials go in a header only: never in
// a URL, a message or a log line.

/** Instances one import may name: a search that finds more must be narrowed. */
export const MAX_INSTANCES = 100_000;
/** One instance's DICOM file: the largest multi-frame studies stay well under it. */
export const MAX_INSTANCE_BYTES = 512 * 1024 * 1024;
/** One page of QIDO-RS JSON (a few KiB an instance). */
const MAX_PAGE_BYTES = 64 * 1024 * 1024;
/** Instances asked for per QIDO-RS page. */
export const PAGE_SIZE = 500;
const SEARCH_TIMEOUT_MS = 60_000;
const FETCH_TIMEOUT_MS = 10 * 60_000;
/** A bearer token file is a line, not a database named by mistake. */
const MAX_TOKEN_BYTES = 16 * 1024;

/** What to import: whole studies, whole series, or everything, optionally from a study date on. */
export type DicomWebSelection = { studies: string[] } | { series: string[] } | { all: true };

export interface DicomWebFilter {
  selection: DicomWebSelection;
  /** StudyDate from this day on, as YYYYMMDD. */
  since?: string;
}

/** One instance as QIDO-RS names it. */
export interface InstanceRef {
  study: string;
  series: string;
  sop: string;
  /** NumberOfFrames when the PACS says (its records are UID#frame1..N), else undefined. */
  frames?: number;
  /** InstanceNumber, for the upload order within a series. */
  number?: number;
}

export interface DicomWebAuth {
  /** The Authorization header's value; never shown. */
  header?: string;
  /** How the credentials were given, for the hint of a 401: flags and variables, never values. */
  hint: string;
}

const UID = /^[0-9]+(\.[0-9]+)*$/;

/** A UID as DICOM defines it (digits and dots, at most 64 characters): anything else never reaches a URL. */
export function checkUid(uid: string, what: string): string {
  if (uid.length > 64 || !UID.test(uid))
    throw new CliError('usage', `${what} must be a DICOM UID (digits and dots, up to 64), not "${uid}"`);
  return uid;
}

/** The DICOMweb root (e.g. http://pacs:8042/dicom-web), without a trailing slash. */
export function parseDicomWebUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new CliError('usage', `--dicomweb must be the PACS's DICOMweb root URL, e.g. http://pacs:8042/dicom-web, not "${text}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new CliError('usage', `--dicomweb must be an http:// or https:// URL, not ${url.protocol}`);
  // A password in the URL would be in the shell's history and the process list.
  if (url.username || url.password)
    throw new CliError(
      'usage',
      '--dicomweb must not hold credentials: pass --dicomweb-user (password in FNN_DICOMWEB_PASSWORD) or a token',
    );
  if (url.search || url.hash) throw new CliError('usage', '--dicomweb is the DICOMweb root: no query (?...) or fragment (#...)');
  url.pathname = url.pathname.replace(/\/+$/, '');
  return url;
}

/** --since YYYY-MM-DD or YYYYMMDD: a real day, as QIDO-RS's YYYYMMDD. */
export function parseSince(text: string): string {
  const m = /^(\d{4})-?(\d{2})-?(\d{2})$/.exec(text.trim());
  const day = m ? new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]))) : undefined;
  if (!m || !day || day.getUTCFullYear() !== Number(m[1]) || day.getUTCMonth() !== Number(m[2]) - 1 || day.getUTCDate() !== Number(m[3]))
    throw new CliError('usage', `--since must be a date, YYYY-MM-DD (e.g. 2024-01-31), not "${text}"`);
  return `${m[1]}${m[2]}${m[3]}`;
}

export interface AuthFlags {
  dicomwebUser?: string;
  dicomwebTokenFile?: string;
}

const isLoopback = (url: URL) => url.hostname === 'localhost' || url.hostname === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(url.hostname);

/**
 * HTTP basic auth (--dicomweb-user, the password from FNN_DICOMWEB_PASSWORD)
 * or a bearer token (--dicomweb-token-file, or FNN_DICOMWEB_TOKEN), or none.
 * Never a password on the command line: it would be in the process list.
 */
export function dicomWebAuth(flags: AuthFlags, url: URL, env: NodeJS.ProcessEnv = process.env): DicomWebAuth {
  const tokenEnv = env.FNN_DICOMWEB_TOKEN;
  const ways = [flags.dicomwebUser !== undefined, flags.dicomwebTokenFile !== undefined, !!tokenEnv].filter(Boolean).length;
  if (ways > 1)
    throw new CliError(
      'usage',
      'give one of --dicomweb-user, --dicomweb-token-file and FNN_DICOMWEB_TOKEN: they are different credentials',
    );
  let auth: DicomWebAuth = {
    hint: 'the PACS may need credentials: pass --dicomweb-user (password in FNN_DICOMWEB_PASSWORD) or --dicomweb-token-file',
  };
  if (flags.dicomwebUser !== undefined) {
    const user = flags.dicomwebUser;
    if (!user || user.includes(':') || user.length > 256 || /[\r\n]/.test(user))
      throw new CliError('usage', '--dicomweb-user must be a user name (no colon, up to 256 characters)');
    const password = env.FNN_DICOMWEB_PASSWORD;
    if (!password) throw new CliError('usage', '--dicomweb-user needs the password in FNN_DICOMWEB_PASSWORD (never on the command line)');
    auth = {
      header: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`,
      hint: 'check --dicomweb-user and FNN_DICOMWEB_PASSWORD',
    };
  } else if (flags.dicomwebTokenFile !== undefined) {
    auth = { header: `Bearer ${readToken(flags.dicomwebTokenFile)}`, hint: 'check the token in --dicomweb-token-file' };
  } else if (tokenEnv) {
    auth = { header: `Bearer ${checkToken(tokenEnv.trim(), 'FNN_DICOMWEB_TOKEN')}`, hint: 'check the token in FNN_DICOMWEB_TOKEN' };
  }
  // Basic auth and bearer tokens are readable by anyone on the path of plain HTTP.
  if (auth.header && url.protocol === 'http:' && !isLoopback(url))
    throw new CliError('usage', `credentials go to a PACS over https:// only (plain http:// is for localhost): ${url.origin}`);
  return auth;
}

function readToken(path: string): string {
  let text: string;
  try {
    if (statSync(path).size > MAX_TOKEN_BYTES) throw new CliError('usage', `--dicomweb-token-file ${path}: larger than a token`);
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if (e instanceof CliError) throw e;
    throw new CliError('usage', `--dicomweb-token-file ${path}: cannot be read`);
  }
  return checkToken(text.trim(), `--dicomweb-token-file ${path}`);
}

function checkToken(token: string, where: string): string {
  if (!token || !/^[\x21-\x7e]+$/.test(token))
    throw new CliError('usage', `${where}: not a bearer token (one line of printable characters)`);
  return token;
}

/** The PACS's URL for messages: its origin and path, which hold no credential. */
const shown = (url: URL) => `${url.origin}${url.pathname}`;

export class DicomWebClient {
  constructor(
    readonly root: URL,
    private readonly auth: DicomWebAuth,
    private readonly fetchImpl: typeof fetch = fetch,
  ) {}

  /**
   * Every instance the filter names, page by page (limit/offset), deduplicated
   * by SOPInstanceUID and in a stable order (study, series, instance number):
   * the order of the records, as a directory's sorted names are for files.
   */
  async search(filter: DicomWebFilter, maxInstances = MAX_INSTANCES): Promise<InstanceRef[]> {
    const found = new Map<string, InstanceRef>();
    const queries =
      'studies' in filter.selection
        ? filter.selection.studies.map((uid) => ({ StudyInstanceUID: uid }))
        : 'series' in filter.selection
          ? filter.selection.series.map((uid) => ({ SeriesInstanceUID: uid }))
          : [{}];
    for (const keys of queries) {
      // Until an empty page: a PACS may cap a page below our limit (a short
      // page is not the last then), and offset moves by what came.
      for (let offset = 0; ;) {
        const params = new URLSearchParams({ ...keys, ...(filter.since ? { StudyDate: `${filter.since}-` } : {}) });
        params.set('includefield', '00280008');
        params.set('limit', String(PAGE_SIZE));
        params.set('offset', String(offset));
        const page = await this.searchPage(`${this.root.pathname}/instances?${params}`);
        const before = found.size;
        for (const ref of page) {
          found.set(ref.sop, ref);
          if (found.size > maxInstances)
            throw new CliError(
              'usage',
              `the PACS has more than ${maxInstances} instances matching: import fewer at a time (--study, --series or --since)`,
            );
        }
        // A page with nothing new is the end too: a PACS that ignores offset sends its first page again.
        if (page.length === 0 || found.size === before) break;
        offset += page.length;
      }
    }
    return [...found.values()].sort(
      (a, b) => compare(a.study, b.study) || compare(a.series, b.series) || (a.number ?? 0) - (b.number ?? 0) || compare(a.sop, b.sop),
    );
  }

  private async searchPage(path: string): Promise<InstanceRef[]> {
    const response = await this.get(path, 'application/dicom+json, application/json', SEARCH_TIMEOUT_MS, 'search');
    // No match: 204 for some PACSs, [] for others.
    if (response.status === 204) return [];
    const text = (await readBounded(response, MAX_PAGE_BYTES, `the PACS's search answer`)).toString('utf8');
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new CliError('failure', `the PACS's search answer is not JSON (is ${shown(this.root)} its DICOMweb root?)`);
    }
    if (!Array.isArray(json)) throw new CliError('failure', "the PACS's search answer is not a list of instances");
    return json.map((entry) => instanceOf(entry));
  }

  /**
   * One instance's DICOM file as the PACS stores it (transfer-syntax=*: no
   * transcoding, so the bytes are those a file upload would read), out of
   * WADO-RS's multipart/related answer.
   */
  async fetchInstance(ref: InstanceRef, maxBytes = MAX_INSTANCE_BYTES): Promise<Buffer> {
    const path = `${this.root.pathname}/studies/${ref.study}/series/${ref.series}/instances/${ref.sop}`;
    const response = await this.get(
      path,
      'multipart/related; type="application/dicom"; transfer-syntax=*',
      FETCH_TIMEOUT_MS,
      `instance ${ref.sop}`,
    );
    const type = response.headers.get('content-type') ?? '';
    const declared = Number(response.headers.get('content-length') ?? NaN);
    if (declared > maxBytes + 64 * 1024) {
      await response.body?.cancel();
      throw new CliError('invalid', `instance ${ref.sop}: larger than ${maxBytes / 2 ** 20} MiB`);
    }
    // A PACS may answer a single instance with the file itself.
    if (/^application\/dicom\s*(;|$)/i.test(type)) return readBounded(response, maxBytes, `instance ${ref.sop}`);
    const { getMultipartBoundary, parseMultipartStream, MaxFileSizeExceededError, MaxPartsExceededError } =
      await import('@remix-run/multipart-parser');
    const boundary = /^multipart\/related\s*;/i.test(type) ? getMultipartBoundary(type) : null;
    if (!boundary || !response.body) {
      await response.body?.cancel();
      throw new CliError('failure', `instance ${ref.sop}: the PACS answered ${type || 'without a type'}, not multipart/related DICOM`);
    }
    const parts: Buffer[] = [];
    try {
      for await (const part of parseMultipartStream(response.body, {
        boundary,
        maxFileSize: maxBytes,
        maxTotalSize: maxBytes,
        maxParts: 1,
      })) {
        const media = part.mediaType?.toLowerCase();
        if (media !== undefined && media !== 'application/dicom')
          throw new CliError('failure', `instance ${ref.sop}: the PACS sent ${media}, not application/dicom`);
        parts.push(Buffer.from(part.bytes));
      }
    } catch (e) {
      if (e instanceof CliError) throw e;
      if (e instanceof MaxFileSizeExceededError)
        throw new CliError('invalid', `instance ${ref.sop}: larger than ${maxBytes / 2 ** 20} MiB`);
      if (e instanceof MaxPartsExceededError) throw new CliError('failure', `instance ${ref.sop}: the PACS sent more than one file`);
      throw new CliError('failure', `instance ${ref.sop}: the PACS's answer is not well-formed multipart (${(e as Error).message})`);
    }
    if (parts.length !== 1) throw new CliError('failure', `instance ${ref.sop}: the PACS sent no file`);
    return parts[0];
  }

  private async get(path: string, accept: string, timeoutMs: number, what: string): Promise<Response> {
    const url = new URL(path, this.root);
    const headers: Record<string, string> = { accept };
    if (this.auth.header) headers.authorization = this.auth.header;
    let response: Response;
    try {
      response = await this.fetchImpl(url, { headers, signal: AbortSignal.timeout(timeoutMs), redirect: 'error' });
    } catch (e) {
      throw unreachable(this.root, e, timeoutMs);
    }
    if (response.ok) return response;
    await response.body?.cancel();
    const status = `${response.status}${response.statusText ? ` ${response.statusText}` : ''}`;
    if (response.status === 401) throw new CliError('refused', `the PACS refused the credentials (${status}): ${this.auth.hint}`);
    if (response.status === 403) throw new CliError('refused', `the PACS refused this ${what} (${status}): ${this.auth.hint}`);
    if (response.status === 404)
      throw new CliError(
        'notFound',
        what === 'search'
          ? `no DICOMweb service at ${shown(this.root)} (404): --dicomweb is its root, e.g. http://pacs:8042/dicom-web`
          : `${what}: not found at the PACS (404; deleted since the search?)`,
      );
    if (response.status >= 500 || response.status === 429)
      throw new CliError('unavailable', `the PACS at ${shown(this.root)} answered ${status}: try later`);
    throw new CliError('failure', `the PACS at ${shown(this.root)} answered the ${what} with ${status}`);
  }
}

function unreachable(root: URL, error: unknown, timeoutMs: number): CliError {
  const e = error as { name?: string; cause?: { code?: string; message?: string } };
  if (e.name === 'TimeoutError' || e.name === 'AbortError')
    return new CliError('unavailable', `the PACS at ${shown(root)} did not answer within ${timeoutMs / 1000} s`);
  const why = e.cause?.code ?? e.cause?.message ?? (error as Error).message;
  return new CliError('unavailable', `the PACS at ${shown(root)} cannot be reached (${why})`);
}

/** A response body up to `max` bytes; a longer one is cut off and refused. */
async function readBounded(response: Response, max: number, what: string): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (!response.body) return Buffer.alloc(0);
  const reader = response.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      await reader.cancel();
      throw new CliError('invalid', `${what}: larger than ${max / 2 ** 20} MiB`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks);
}

const compare = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** One QIDO-RS entry (DICOM JSON): its UIDs, checked, as they will go into WADO-RS URLs. */
function instanceOf(entry: unknown): InstanceRef {
  const value = (tag: string): unknown => {
    const element = (entry as Record<string, { Value?: unknown[] } | undefined> | null)?.[tag];
    return Array.isArray(element?.Value) ? element.Value[0] : undefined;
  };
  const uid = (tag: string, name: string) => {
    const v = value(tag);
    if (typeof v !== 'string' || v.length > 64 || !UID.test(v))
      throw new CliError('failure', `the PACS's search answer has an instance without a valid ${name}`);
    return v;
  };
  const count = (tag: string) => {
    const v = Number(value(tag));
    return Number.isSafeInteger(v) && v > 0 ? v : undefined;
  };
  return {
    study: uid('0020000D', 'StudyInstanceUID'),
    series: uid('0020000E', 'SeriesInstanceUID'),
    sop: uid('00080018', 'SOPInstanceUID'),
    frames: count('00280008'),
    number: count('00200013'),
  };
}

/** The record IDs an instance becomes (as a file named by its SOPInstanceUID would): UID, or UID#frame1..N. */
export function instanceRecordIds(ref: InstanceRef): string[] {
  if (!ref.frames || ref.frames === 1) return [ref.sop];
  return Array.from({ length: ref.frames }, (_, i) => `${ref.sop}#frame${i + 1}`);
}

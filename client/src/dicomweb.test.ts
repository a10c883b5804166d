import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkUid, DicomWebClient, dicomWebAuth, instanceRecordIds, PAGE_SIZE, parseDicomWebUrl, parseSince } from './dicomweb';
import { CliError } from './output';

// The DICOMweb client's checks and bounds, against answers made here (the
// real PACS is dicomweb.e2e.test.ts's Orthanc): what a flag may be, which
// credentials go where, and what an oversized or malformed answer gets.

const work = mkdtempSync(join(tmpdir(), 'fnn-dicomweb-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const refusal = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(CliError);
    return e as CliError;
  }
  throw new Error('no refusal');
};

const root = parseDicomWebUrl('http://127.0.0.1:8042/dicom-web/');
const entry = (sop: string, frames?: number) => ({
  '0020000D': { vr: 'UI', Value: ['1.2.3'] },
  '0020000E': { vr: 'UI', Value: ['1.2.3.4'] },
  '00080018': { vr: 'UI', Value: [sop] },
  ...(frames ? { '00280008': { vr: 'IS', Value: [frames] } } : {}),
});

/** A PACS made of a function: each request's URL and headers in, a Response out. */
function pacs(answer: (url: URL, headers: Record<string, string>) => Response) {
  const seen: { url: URL; headers: Record<string, string> }[] = [];
  const fake = (async (input: URL, init?: RequestInit) => {
    const headers = init?.headers as Record<string, string>;
    seen.push({ url: input, headers });
    return answer(input, headers);
  }) as unknown as typeof fetch;
  return { seen, client: (header?: string) => new DicomWebClient(root, { header, hint: 'check X' }, fake) };
}

describe('DICOMweb flags', () => {
  it('takes a DICOMweb root URL without credentials, query or fragment', () => {
    expect(parseDicomWebUrl('https://pacs.example:8443/dicom-web//').href).toBe('https://pacs.example:8443/dicom-web');
    expect(refusal(() => parseDicomWebUrl('http://alice:secret@pacs/dicom-web')).message).not.toContain('secret');
    expect(refusal(() => parseDicomWebUrl('ftp://pacs/dicom-web')).kind).toBe('usage');
    expect(refusal(() => parseDicomWebUrl('http://pacs/dicom-web?x=1')).kind).toBe('usage');
    expect(refusal(() => parseDicomWebUrl('pacs:8042')).kind).toBe('usage');
  });

  it('takes --since as a real day and gives QIDO-RS its YYYYMMDD', () => {
    expect(parseSince('2024-02-29')).toBe('20240229');
    expect(parseSince('20240131')).toBe('20240131');
    for (const bad of ['2023-02-29', '2024-13-01', 'yesterday', '2024-1-1']) expect(refusal(() => parseSince(bad)).kind).toBe('usage');
  });

  it('lets only DICOM UIDs into URLs', () => {
    expect(checkUid('1.2.840.10008.1', '--study')).toBe('1.2.840.10008.1');
    for (const bad of ['../../system', '1.2.3/instances', '1..2', '', '1'.repeat(65)])
      expect(() => checkUid(bad, '--study')).toThrow(CliError);
  });

  it('names an instance of frames UID#frame1..N, one frame or an unknown count UID', () => {
    expect(instanceRecordIds({ study: '1', series: '2', sop: '3', frames: 3 })).toEqual(['3#frame1', '3#frame2', '3#frame3']);
    expect(instanceRecordIds({ study: '1', series: '2', sop: '3', frames: 1 })).toEqual(['3']);
    expect(instanceRecordIds({ study: '1', series: '2', sop: '3' })).toEqual(['3']);
  });
});

describe('DICOMweb credentials', () => {
  it('reads the basic-auth password from FNN_DICOMWEB_PASSWORD only', () => {
    const auth = dicomWebAuth({ dicomwebUser: 'alice' }, root, { FNN_DICOMWEB_PASSWORD: 'pw' });
    expect(auth.header).toBe(`Basic ${Buffer.from('alice:pw').toString('base64')}`);
    expect(auth.hint).toBe('check --dicomweb-user and FNN_DICOMWEB_PASSWORD');
    expect(refusal(() => dicomWebAuth({ dicomwebUser: 'alice' }, root, {})).message).toMatch(/FNN_DICOMWEB_PASSWORD/);
    expect(refusal(() => dicomWebAuth({ dicomwebUser: 'a:b' }, root, { FNN_DICOMWEB_PASSWORD: 'pw' })).kind).toBe('usage');
  });

  it('reads a bearer token from a file or FNN_DICOMWEB_TOKEN, and refuses two kinds of credentials at once', () => {
    const file = join(work, 'token');
    writeFileSync(file, 'abc.def-123\n');
    expect(dicomWebAuth({ dicomwebTokenFile: file }, root, {}).header).toBe('Bearer abc.def-123');
    expect(dicomWebAuth({}, root, { FNN_DICOMWEB_TOKEN: 'xyz' }).header).toBe('Bearer xyz');
    expect(dicomWebAuth({}, root, {}).header).toBeUndefined();
    expect(refusal(() => dicomWebAuth({ dicomwebUser: 'a', dicomwebTokenFile: file }, root, { FNN_DICOMWEB_PASSWORD: 'p' })).kind).toBe(
      'usage',
    );
    writeFileSync(file, 'two words');
    expect(refusal(() => dicomWebAuth({ dicomwebTokenFile: file }, root, {})).message).not.toContain('two words');
    writeFileSync(file, 'x'.repeat(17 * 1024));
    expect(refusal(() => dicomWebAuth({ dicomwebTokenFile: file }, root, {})).message).toMatch(/larger than a token/);
  });

  it('sends credentials over plain http to localhost only', () => {
    const remote = parseDicomWebUrl('http://pacs.example/dicom-web');
    expect(refusal(() => dicomWebAuth({}, remote, { FNN_DICOMWEB_TOKEN: 't' })).message).toMatch(/https:\/\/ only/);
    expect(dicomWebAuth({}, parseDicomWebUrl('https://pacs.example/dicom-web'), { FNN_DICOMWEB_TOKEN: 't' }).header).toBe('Bearer t');
    expect(dicomWebAuth({}, remote, {}).header).toBeUndefined();
  });
});

describe('DICOMweb answers', () => {
  it('pages QIDO-RS with limit and offset until an empty page, with the filter and the credentials', async () => {
    // A PACS that caps its pages at 300 instances, holding 602.
    const { seen, client } = pacs((url) => {
      const offset = Number(url.searchParams.get('offset'));
      const n = Math.max(0, Math.min(300, 602 - offset));
      return Response.json(Array.from({ length: n }, (_, i) => entry(`1.9.${offset + i}`)));
    });
    const refs = await client('Bearer t').search({ selection: { studies: ['1.2.3'] }, since: '20240101' });
    expect(refs).toHaveLength(602);
    expect(seen.map((s) => s.url.searchParams.get('offset'))).toEqual(['0', '300', '600', '602']);
    expect(seen[0].url.searchParams.get('limit')).toBe(String(PAGE_SIZE));
    expect(seen[0].url.pathname).toBe('/dicom-web/instances');
    expect(seen[0].url.searchParams.get('StudyInstanceUID')).toBe('1.2.3');
    expect(seen[0].url.searchParams.get('StudyDate')).toBe('20240101-');
    expect(seen[0].headers.authorization).toBe('Bearer t');
  });

  it('stops at a page with nothing new (a PACS that ignores offset)', async () => {
    const { seen, client } = pacs(() => Response.json([entry('1.9.1'), entry('1.9.2')]));
    expect(await client().search({ selection: { all: true } })).toHaveLength(2);
    expect(seen).toHaveLength(2);
  });

  it('stops a search that finds more than the instance bound', async () => {
    let calls = 0;
    const { client } = pacs((url) => {
      calls++;
      const offset = Number(url.searchParams.get('offset'));
      return Response.json(Array.from({ length: PAGE_SIZE }, (_, i) => entry(`1.9.${offset + i}`)));
    });
    await expect(client().search({ selection: { all: true } }, 3 * PAGE_SIZE)).rejects.toThrow(/more than 1500 instances matching/);
    expect(calls).toBe(4);
  });

  it('refuses a search answer with an instance whose UID could be a path', async () => {
    const { client } = pacs(() => Response.json([entry('1.2/../../x')]));
    await expect(client().search({ selection: { all: true } })).rejects.toThrow(/without a valid SOPInstanceUID/);
  });

  it('takes one application/dicom part out of multipart/related, and refuses more than one, another type or too many bytes', async () => {
    const ref = { study: '1.2', series: '1.2.3', sop: '1.2.3.4' };
    const file = Buffer.concat([Buffer.alloc(128), Buffer.from('DICM'), Buffer.from([0, 1, 2, 255, 13, 10, 45, 45])]);
    const multipart = (parts: Buffer[], type = 'application/dicom') =>
      new Response(
        Buffer.concat([
          ...parts.flatMap((p) => [Buffer.from(`--XyZ\r\nContent-Type: ${type}\r\n\r\n`), p, Buffer.from('\r\n')]),
          Buffer.from('--XyZ--\r\n'),
        ]),
        { headers: { 'content-type': 'multipart/related; type="application/dicom"; boundary=XyZ' } },
      );
    let reply = () => multipart([file]);
    const { seen, client } = pacs(() => reply());
    expect(await client().fetchInstance(ref)).toEqual(file);
    expect(seen[0].url.pathname).toBe('/dicom-web/studies/1.2/series/1.2.3/instances/1.2.3.4');
    expect(seen[0].headers.accept).toBe('multipart/related; type="application/dicom"; transfer-syntax=*');
    reply = () => multipart([file, file]);
    await expect(client().fetchInstance(ref)).rejects.toThrow(/more than one file/);
    reply = () => multipart([file], 'image/jpeg');
    await expect(client().fetchInstance(ref)).rejects.toThrow(/sent image\/jpeg, not application\/dicom/);
    reply = () => multipart([file]);
    await expect(client().fetchInstance(ref, 100)).rejects.toThrow(/larger than/);
    reply = () => new Response('<html>', { headers: { 'content-type': 'text/html' } });
    await expect(client().fetchInstance(ref)).rejects.toThrow(/answered text\/html, not multipart\/related DICOM/);
  });

  it('says a PACS that does not answer in time or cannot be reached is unavailable, naming no credential', async () => {
    const failing = (error: Error) =>
      new DicomWebClient(root, { header: 'Basic c2VjcmV0', hint: '' }, (async () => {
        throw error;
      }) as unknown as typeof fetch);
    const timeout = Object.assign(new Error('The operation was aborted due to timeout'), { name: 'TimeoutError' });
    await expect(failing(timeout).search({ selection: { all: true } })).rejects.toMatchObject({
      kind: 'unavailable',
      message: 'the PACS at http://127.0.0.1:8042/dicom-web did not answer within 60 s',
    });
    const refused = Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNREFUSED' } });
    const e = await failing(refused)
      .search({ selection: { all: true } })
      .catch((x: CliError) => x);
    expect(e).toMatchObject({
      kind: 'unavailable',
      message: 'the PACS at http://127.0.0.1:8042/dicom-web cannot be reached (ECONNREFUSED)',
    });
    expect((e as CliError).message).not.toContain('c2VjcmV0');
  });

  it('maps HTTP failures to one line and an exit kind: 401 with the hint, 404, 5xx', async () => {
    let status = 401;
    const { client } = pacs(() => new Response('no', { status }));
    await expect(client().search({ selection: { all: true } })).rejects.toMatchObject({ kind: 'refused', message: /401.*check X/ });
    status = 404;
    await expect(client().search({ selection: { all: true } })).rejects.toMatchObject({ kind: 'notFound', message: /no DICOMweb service/ });
    status = 503;
    await expect(client().search({ selection: { all: true } })).rejects.toMatchObject({ kind: 'unavailable' });
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodePng } from '@fnn/shared';
import type { DoctorSession } from '../doctor-session';
import { parseImageOptions } from '../image-files';
import { startViewer } from './server';

// The viewer's routes without daemons: a session that has an empty
// collection and never reaches C1 for a query. What the real deployment
// answers is the browser test's (viewer.browser.test.ts).

const TOKEN = 'c'.repeat(64);
const session = {
  collection: 'default',
  collections: async () => [{ name: 'default', width: 0, height: 0, maxValue: 0, records: 0, layouts: [] }],
  imageOptions: async () => parseImageOptions({}),
  doctor: () => {
    throw new Error('no query is asked in this test');
  },
} as unknown as DoctorSession;

let viewer: Awaited<ReturnType<typeof startViewer>>;
let base: string;
beforeAll(async () => {
  viewer = await startViewer({ session, listen: '127.0.0.1:0', token: TOKEN, maxFileBytes: 1024 });
  base = `http://${viewer.address}`;
});
afterAll(() => viewer.close());

const send = (bytes: Uint8Array, headers: Record<string, string> = { 'x-fnn-token': TOKEN }) => {
  const form = new FormData();
  form.append('file', new Blob([new Uint8Array(bytes)]), 'q.png');
  return fetch(`${base}/api/files`, { method: 'POST', body: form, headers });
};

describe('the viewer server', () => {
  it('serves the page with its token and a policy that allows only its own files', async () => {
    const page = await fetch(`${base}/?t=${TOKEN}`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain(`<script src="/static/app.js?t=${TOKEN}"`);
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(page.headers.get('referrer-policy')).toBe('no-referrer');
    expect((await fetch(`${base}/static/app.js?t=${TOKEN}`)).status).toBe(200);
    expect((await fetch(`${base}/static/index.html?t=${TOKEN}`)).status).toBe(404);
  });

  it('opens a dropped PNG and refuses a POST whose token is only in the URL', async () => {
    const png = encodePng({ width: 2, height: 2, maxValue: 255, pixels: Uint16Array.from([1, 2, 3, 4]) });
    const held = await send(png);
    expect(held.status).toBe(200);
    expect(await held.json()).toMatchObject({ name: 'q.png', format: 'png', count: 1, width: 2, height: 2 });
    const form = new FormData();
    form.append('file', new Blob([new Uint8Array(png)]), 'q.png');
    expect((await fetch(`${base}/api/files?t=${TOKEN}`, { method: 'POST', body: form })).status).toBe(403);
  });

  it('refuses a file over --max-file with 413 and says so, and an unreadable one as the CLI does', async () => {
    const big = await send(new Uint8Array(4096));
    expect(big.status).toBe(413);
    expect(await big.json()).toEqual({ error: 'the file is larger than this viewer accepts (1024 bytes: --max-file)', exitCode: 2 });
    const bad = await send(new TextEncoder().encode('not an image'));
    expect(bad.status).toBe(400);
    expect((await bad.json()).error).toMatch(/^q\.png: not a readable PNG/);
  });

  it('refuses a search of an empty collection, and an unknown search, in words', async () => {
    const search = await fetch(`${base}/api/searches`, {
      method: 'POST',
      headers: { 'x-fnn-token': TOKEN, 'content-type': 'application/json' },
      body: JSON.stringify({ file: 'x', index: 0, k: 1 }),
    });
    expect(search.status).toBe(404);
    expect((await search.json()).error).toBe('the collection default is empty: nothing to search');
    const other = await fetch(`${base}/api/searches`, {
      method: 'POST',
      headers: { 'x-fnn-token': TOKEN, 'content-type': 'application/json' },
      body: JSON.stringify({ file: 'x', index: 0, k: 1, collection: 'elsewhere' }),
    });
    expect(other.status).toBe(404);
    expect((await other.json()).error).toBe('no collection named "elsewhere" at C1 (fnn collections lists them)');
    const k = await fetch(`${base}/api/searches`, {
      method: 'POST',
      headers: { 'x-fnn-token': TOKEN, 'content-type': 'application/json' },
      body: JSON.stringify({ file: 'x', index: 0, k: 1000 }),
    });
    expect((await k.json()).error).toBe('--k must be an integer from 1 to 100');
    expect((await fetch(`${base}/api/searches/nope/events?t=${TOKEN}`)).status).toBe(404);
  });
});

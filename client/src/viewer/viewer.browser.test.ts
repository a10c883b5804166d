import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import { decodePng, openImageStack, plaintextNearest } from '@fnn/shared';
import { CLI, jsonLines, runCli, startTlsPair, type Daemon } from '../harness';
import { dicomFile } from '../testing/dicom-file';

// The doctor's page in a real browser: Debian's chromium, headless, driven by
// playwright-core (which downloads no browser). Real daemons over mutual TLS,
// a collection uploaded with the CLI, `fnn viewer` as a doctor would run it.
// The answers the page shows must equal the plaintext reference.

const CHROMIUM = process.env.FNN_CHROMIUM ?? '/usr/bin/chromium';
const ROOT = resolve(__dirname, '..', '..', '..');
const IMAGES = join(ROOT, 'demo', 'mri128', 'images');
const QUERIES = join(ROOT, 'demo', 'mri128', 'queries');
const SMALL_IMAGES = join(ROOT, 'demo', 'images');
const SMALL_QUERIES = join(ROOT, 'demo', 'queries');
/** The test's output: the screenshot of the results page lands here. */
const OUTPUT = join(ROOT, 'test-output');
const K = 3;

const haveChromium = existsSync(CHROMIUM);
if (!haveChromium && process.env.CI === 'true')
  throw new Error(`the viewer's browser test needs chromium at ${CHROMIUM} (CI installs it: apt-get install chromium)`);
if (!haveChromium) process.stderr.write(`viewer.browser.test.ts: SKIPPED: no chromium at ${CHROMIUM} (apt-get install chromium)\n`);

/** `fnn viewer`, resolved once it prints the URL it serves. */
function startViewer(args: string[]): Promise<{ url: string; child: ChildProcess; stop: () => Promise<void> }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [CLI, 'viewer', ...args, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    child.stderr!.on('data', (b) => (log += b));
    const exited = new Promise<void>((r) => child.on('exit', () => r()));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const event = line.startsWith('{') ? (JSON.parse(line) as { event?: string; url?: string }) : {};
      if (event.event === 'listening' && event.url)
        resolvePromise({
          url: event.url,
          child,
          stop: async () => {
            if (child.exitCode === null) child.kill('SIGTERM');
            await exited;
          },
        });
    });
    void exited.then(() => reject(new Error(`fnn viewer exited before listening: ${log.trim()}`)));
  });
}

/** A raw GET with the headers given (fetch will not send a foreign Host). */
function get(url: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  return new Promise((resolvePromise, reject) => {
    const req = request(url, { headers }, (res) => {
      let body = '';
      res.on('data', (b) => (body += b));
      res.on('end', () => resolvePromise({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

function getBytes(url: string): Promise<Buffer> {
  return new Promise((resolvePromise, reject) => {
    request(url, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (b: Buffer) => chunks.push(b));
      res.on('end', () => (res.statusCode === 200 ? resolvePromise(Buffer.concat(chunks)) : reject(new Error(`GET ${res.statusCode}`))));
    })
      .on('error', reject)
      .end();
  });
}

/** A NIfTI-1 volume (.nii, uint8, no scaling) of same-size slices: x fastest, then y, then z. */
function niftiVolume(width: number, height: number, slices: Uint16Array[]): Buffer {
  const header = Buffer.alloc(352);
  header.writeInt32LE(348, 0);
  [3, width, height, slices.length, 1, 1, 1, 1].forEach((d, i) => header.writeInt16LE(d, 40 + 2 * i));
  header.writeInt16LE(2, 70); // datatype: unsigned char
  header.writeInt16LE(8, 72); // bitpix
  for (let i = 0; i < 8; i++) header.writeFloatLE(1, 76 + 4 * i); // pixdim
  header.writeFloatLE(352, 108); // vox_offset
  header.write('n+1\0', 344, 'latin1');
  const voxels = Buffer.alloc(width * height * slices.length);
  slices.forEach((pixels, z) => pixels.forEach((v, i) => (voxels[z * width * height + i] = v)));
  return Buffer.concat([header, voxels]);
}

/** Drop files onto the page's drop zone, as a doctor dragging them from a file manager would. */
async function dropFiles(page: Page, files: { name: string; bytes: Buffer }[]) {
  await page.evaluate(
    (list) => {
      const transfer = new DataTransfer();
      for (const f of list) transfer.items.add(new File([Uint8Array.from(atob(f.data), (c) => c.charCodeAt(0))], f.name));
      document.getElementById('drop')!.dispatchEvent(new DragEvent('drop', { dataTransfer: transfer, bubbles: true, cancelable: true }));
    },
    files.map((f) => ({ name: f.name, data: f.bytes.toString('base64') })),
  );
}

const shownRows = (page: Page, card: string) =>
  page.$$eval(`${card} tr.neighbour`, (rows) =>
    rows.map((r) => ({ id: r.querySelector('.nid')!.textContent!, distance: r.querySelector('.ndist')!.textContent! })),
  );

describe.skipIf(!haveChromium)('the viewer in a browser', () => {
  const work = mkdtempSync(join(tmpdir(), 'fnn-viewer-'));
  const keys = join(work, 'keys');
  const certs = join(work, 'certs');
  const as = (party: string) => ['--tls-dir', join(certs, party)];
  const daemons: Daemon[] = [];
  let viewer: Awaited<ReturnType<typeof startViewer>>;
  let browser: Browser;
  let page: Page;
  const stored = readdirSync(IMAGES)
    .filter((f) => f.endsWith('.png'))
    .sort();
  const reference = (queryFile: string, k: number, dir = IMAGES) =>
    plaintextNearest(
      readdirSync(dir)
        .filter((f) => f.endsWith('.png'))
        .map((f) => ({ id: f, pixels: decodePng(readFileSync(join(dir, f)), f).pixels })),
      decodePng(readFileSync(queryFile), queryFile).pixels,
      k,
    ).map((r) => ({ id: r.id, distance: r.distance.toString() }));

  beforeAll(async () => {
    const ok = async (args: string[]) => {
      const run = await runCli(args);
      if (run.code !== 0) throw new Error(`fnn ${args[0]}: ${run.stderr}`);
      return jsonLines(run.stdout);
    };
    await ok(['keygen', '--out', keys, '--bits', '512', '--json']);
    await ok(['certs', '--out', certs, '--json']);
    const { c1, c2 } = await startTlsPair({ dir: work, keys, certs, started: (d) => daemons.push(d) });
    const at = ['--c1', c1.address, '--c2', c2.address, '--keys', keys];
    const upload = join(work, 'collection');
    mkdirSync(upload);
    for (const f of stored) writeFileSync(join(upload, f), readFileSync(join(IMAGES, f)));
    // The owner's labels, sealed with each record: the page shows them beside the neighbour.
    const labels = join(work, 'labels.csv');
    writeFileSync(labels, ['ID,label', ...stored.map((f) => `${f},"axial slice ${f.slice(5, 8)}, normal"`)].join('\n'));
    await ok(['upload', upload, ...at, ...as('owner'), '--no-paper-layout', '--labels', labels, '--json']);
    // A second collection, of the 16 x 16 slices with the paper's layout: the page's picker offers both.
    await ok(['upload', SMALL_IMAGES, ...at, ...as('owner'), '--collection', 'small', '--json']);
    viewer = await startViewer([...at, ...as('doctor'), '--listen', '127.0.0.1:0']);
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
    page = await browser.newPage({ viewport: { width: 1100, height: 1300 } });
    await page.goto(viewer.url);
    await page.waitForFunction(() => document.getElementById('collection-info')!.textContent!.includes('records'));
  });

  afterAll(async () => {
    await browser?.close();
    await viewer?.stop();
    for (const d of daemons.reverse()) await d.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it('refuses a request without the token, from another site, or to another host name', async () => {
    const { origin, host, searchParams } = new URL(viewer.url);
    const token = searchParams.get('t')!;
    expect((await get(`${origin}/api/collections`, {})).status).toBe(403);
    expect((await get(`${origin}/`, {})).status).toBe(403);
    expect((await get(`${origin}/api/collections?t=${'0'.repeat(64)}`, {})).status).toBe(403);
    expect((await get(`${origin}/api/collections?t=${token}`, { origin: 'http://evil.example' })).status).toBe(403);
    // DNS rebinding: a name the attacker controls now points at 127.0.0.1; the port and token are right.
    expect((await get(`${origin}/api/collections?t=${token}`, { host: `evil.example:${new URL(viewer.url).port}` })).status).toBe(403);
    const page = await get(`${origin}/api/collections?t=${token}`, { host });
    expect(page.status).toBe(200);
    expect(JSON.parse(page.body).collections[0]).toMatchObject({ records: stored.length, width: 128, height: 128 });
  });

  it('shows a dropped held-out slice as searched and its k nearest records equal to the plaintext reference', async () => {
    const query = join(QUERIES, 'ch2-z167.png');
    expect(stored).not.toContain('ch2-z167.png');
    await page.fill('#k', String(K));
    await dropFiles(page, [{ name: 'ch2-z167.png', bytes: readFileSync(query) }]);
    await page.waitForSelector('#preview:not([hidden])');
    expect(await page.textContent('#preview-info')).toContain('128 x 128');
    // Every status line the card shows while it runs, as the doctor would see them go by.
    await page.evaluate(() => {
      const seen: string[] = [];
      (window as unknown as { statusLines: string[] }).statusLines = seen;
      new MutationObserver(() => document.querySelectorAll('.result .status').forEach((s) => seen.push(s.textContent!))).observe(
        document.getElementById('results')!,
        { subtree: true, childList: true, characterData: true },
      );
    });
    await page.click('#search');
    await page.waitForSelector('.result[data-state="done"], .result[data-state="failed"]', { timeout: 60_000 });
    const lines = await page.evaluate(() => (window as unknown as { statusLines: string[] }).statusLines);
    expect(
      lines.some((l) => /^C1 searching: (lower bounds|candidates|distances) \d+ of \d+/.test(l)),
      lines.join(' | '),
    ).toBe(true);
    expect(await page.textContent('.result .status')).toMatch(/fast: 24 records searched/);
    const want = reference(query, K);
    expect(await shownRows(page, '.result')).toEqual(want);
    const metadata = await page.$$eval('.result tr.neighbour dl.metadata', (dls) => dls.map((dl) => dl.textContent));
    expect(metadata).toEqual(want.map((w) => `Labelaxial slice ${w.id.slice(5, 8)}, normal`));
    // The downloads: result.json with the same answer, and each neighbour's PNG holding its stored pixels.
    const links = await page.$$eval('.result .downloads a', (as) => as.map((a) => (a as HTMLAnchorElement).href));
    const json = await get(
      links.find((l) => l.includes('result.json'))!,
      {},
    );
    const saved = JSON.parse(json.body) as { results: { id: string; distance: string; metadata?: { label?: string } }[] };
    expect(saved.results.map((r) => ({ id: r.id, distance: r.distance }))).toEqual(want);
    expect(saved.results[0].metadata?.label).toBe(`axial slice ${want[0].id.slice(5, 8)}, normal`);
    const png = await getBytes(links.find((l) => l.includes('/images/1.png'))!);
    expect(Array.from(decodePng(png, 'neighbour-1.png').pixels)).toEqual(
      Array.from(decodePng(readFileSync(join(IMAGES, want[0].id)), want[0].id).pixels),
    );
  });

  it('redraws the images under a new window/level', async () => {
    const pixels = () =>
      page.$eval('.result tr.neighbour canvas:not(.query)', (c) => {
        const canvas = c as HTMLCanvasElement;
        return Array.from(
          canvas
            .getContext('2d')!
            .getImageData(0, 0, canvas.width, canvas.height)
            .data.filter((_, i) => i % 4 === 0),
        );
      });
    const setWindow = async (level: number, width: number) => {
      for (const [input, value] of [
        ['level', level],
        ['width', width],
      ] as const)
        await page.$eval(
          `.result input.${input}`,
          (el, v) => {
            (el as HTMLInputElement).value = String(v);
            el.dispatchEvent(new Event('input'));
          },
          value,
        );
    };
    const before = await pixels();
    // The results page as the README shows it: the demo's 8-bit MRI (values 0..125) under level 62, width 125.
    await setWindow(62, 125);
    mkdirSync(OUTPUT, { recursive: true });
    await page.screenshot({ path: join(OUTPUT, 'viewer-results.png'), fullPage: true });
    if (process.env.FNN_VIEWER_SCREENSHOT) await page.screenshot({ path: process.env.FNN_VIEWER_SCREENSHOT });
    await setWindow(40, 60);
    const after = await pixels();
    expect(after).toHaveLength(128 * 128);
    expect(after).not.toEqual(before);
    // Level 40, width 60: a stored value v is drawn as (v - 10) * 255 / 60, clamped.
    const rank1 = reference(join(QUERIES, 'ch2-z167.png'), 1)[0].id;
    const raw = decodePng(readFileSync(join(IMAGES, rank1)), rank1).pixels;
    expect(after).toEqual(Array.from(raw, (v) => Math.max(0, Math.min(255, Math.round(((v - 10) * 255) / 60)))));
  });

  it("opens a DICOM query under its own window: the header's center and width, drawn on the stored values", async () => {
    const slice = decodePng(readFileSync(join(QUERIES, 'ch2-z167.png')), 'q');
    const dicom = dicomFile({
      width: 128,
      height: 128,
      pixels: slice.pixels,
      bits: 16,
      sopInstanceUid: '1.2.826.0.1.3680043.8.498.9167',
      header: { Modality: 'MR', WindowCenter: '40', WindowWidth: '60' },
    });
    await dropFiles(page, [{ name: 'IM0167', bytes: dicom }]);
    await page.waitForFunction(() => document.getElementById('preview-info')!.textContent!.includes('DICOM'));
    const drawn = await page.$eval('#preview-canvas', (c) => {
      const canvas = c as HTMLCanvasElement;
      return Array.from(
        canvas
          .getContext('2d')!
          .getImageData(0, 0, canvas.width, canvas.height)
          .data.filter((_, i) => i % 4 === 0),
      );
    });
    expect(drawn).toEqual(Array.from(slice.pixels, (v) => Math.max(0, Math.min(255, Math.round(((v - 10) * 255) / 60)))));
  });

  it('offers a slice picker for a volume and searches the slice picked, exactly', async () => {
    const slices = ['ch2-z156.png', 'ch2-z167.png', 'ch2-z176.png'].map((f) =>
      decodePng(readFileSync(join(f === 'ch2-z167.png' ? QUERIES : IMAGES, f)), f),
    );
    const volume = niftiVolume(
      128,
      128,
      slices.map((s) => s.pixels),
    );
    await dropFiles(page, [{ name: 'head.nii', bytes: volume }]);
    await page.waitForSelector('#slice-picker:not([hidden])');
    expect(await page.textContent('#slice-label')).toBe('z001 (2 of 3)');
    expect(await page.textContent('#preview-name')).toBe('head.nii#z001');
    await page.$eval('#slice', (el) => {
      (el as HTMLInputElement).value = '2';
      el.dispatchEvent(new Event('input'));
    });
    await page.waitForFunction(() => document.getElementById('preview-name')!.textContent === 'head.nii#z002');
    await page.click('#search');
    await page.waitForSelector('.result[data-state="done"] h3:text("head.nii#z002")', { timeout: 60_000 });
    // The slice as FNN's reader gives it (the CLI's query of head.nii#z002), against every stored record.
    const stack = await openImageStack(volume, 'head.nii');
    const want = plaintextNearest(
      stored.map((f) => ({ id: f, pixels: decodePng(readFileSync(join(IMAGES, f)), f).pixels })),
      stack.image(2, { offset: 0 }).pixels,
      K,
    ).map((r) => ({ id: r.id, distance: r.distance.toString() }));
    expect(await shownRows(page, '.result:first-child')).toEqual(want);
  });

  it('fills in a batch of dropped files as each finishes', async () => {
    const names = ['ch2-z106.png', 'ch2-z167.png'];
    const before = await page.$$eval('.result', (r) => r.length);
    await dropFiles(
      page,
      names.map((name) => ({ name, bytes: readFileSync(join(QUERIES, name)) })),
    );
    await page.waitForFunction((n) => document.querySelectorAll('.result[data-state="done"]').length >= n, before + names.length, {
      timeout: 60_000,
    });
    const cards = await page.$$eval('.result', (r) => r.map((c) => c.querySelector('h3')!.textContent!));
    for (const name of names) {
      const index = cards.indexOf(name);
      expect(index).toBeGreaterThanOrEqual(0);
      expect(await shownRows(page, `.result:nth-child(${index + 1})`)).toEqual(reference(join(QUERIES, name), K));
    }
  });

  it('offers every collection of the deployment and searches the one chosen, with its protocols', async () => {
    expect(await page.$$eval('#collection option', (os) => os.map((o) => (o as HTMLOptionElement).value))).toEqual(['default', 'small']);
    expect(await page.$$eval('#protocol option', (os) => os.map((o) => o.textContent))).toEqual(['fast']);
    await page.selectOption('#collection', 'small');
    expect(await page.$$eval('#protocol option', (os) => os.map((o) => o.textContent))).toEqual(['fast', 'fnn', 'bf']);
    expect(await page.textContent('#collection-info')).toContain('small: 24 records, 16 x 16 pixels');
    const query = join(SMALL_QUERIES, 'ch2-z167.png');
    await page.fill('#k', '2');
    await page.selectOption('#protocol', 'fnn');
    await dropFiles(page, [{ name: 'small-ch2-z167.png', bytes: readFileSync(query) }]);
    await page.waitForFunction(() => document.getElementById('preview-name')!.textContent === 'small-ch2-z167.png');
    await page.click('#search');
    await page.waitForSelector('.result[data-state="done"] h3:text("small-ch2-z167.png")', { timeout: 90_000 });
    const card = '.result:first-child';
    expect(await page.textContent(`${card} .status`)).toMatch(/^fnn: 24 records searched/);
    expect(await shownRows(page, card)).toEqual(reference(query, 2, SMALL_IMAGES));
    await page.selectOption('#collection', 'default');
    await page.fill('#k', String(K));
  });

  /** What `fnn query` says of a file, the doctor's way: the same reason the page must show. */
  const cliSays = async (file: string) => {
    const run = await runCli(['query', file, '--c1', daemons[1].address, '--c2', daemons[0].address, '--keys', keys, ...as('doctor')]);
    expect(run.code).not.toBe(0);
    return run.stderr.trim().replace(/^fnn: /, '');
  };

  it('says in plain words, as the CLI does, why a file cannot be searched: unreadable, or of another size', async () => {
    const bad = join(work, 'notes.png');
    writeFileSync(bad, 'not an image');
    await dropFiles(page, [{ name: 'notes.png', bytes: readFileSync(bad) }]);
    await page.waitForSelector('#error:not([hidden])');
    expect(await page.textContent('#error')).toBe(await cliSays(bad));
    const small = join(ROOT, 'demo', 'images', 'ch2-z106.png');
    await dropFiles(page, [{ name: 'ch2-z106.png', bytes: readFileSync(small) }]);
    await page.waitForFunction(() => document.getElementById('error')!.textContent!.includes('16x16'));
    const said = await page.textContent('#error');
    expect(said).toBe((await cliSays(small)).replace(small, 'ch2-z106.png'));
    expect(said).toContain("the collection's images are 128x128");
  });

  it('says C1 cannot be reached, as the CLI does, when it is down', async () => {
    await daemons[1].stop();
    await page.reload();
    await page.waitForSelector('#error:not([hidden])');
    expect(await page.textContent('#error')).toBe(await cliSays(join(QUERIES, 'ch2-z167.png')));
    expect(await page.textContent('#error')).toMatch(/C1 at .* cannot be reached/);
  });
});

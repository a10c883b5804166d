// The doctor's page. It talks only to the viewer process that served it (fnn
// viewer, on this machine), which holds the keys and does every encryption and
// decryption; the page gets images, record IDs and distances. Plain browser
// JavaScript: no bundler, no network beyond that process.
'use strict';

const TOKEN = document.querySelector('meta[name="fnn-token"]').content;
const $ = (id) => document.getElementById(id);
const state = { collections: [], file: undefined };

/** A call to the viewer: the token in a header (a foreign page cannot set one); the viewer's own message on failure. */
async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...(options.headers || {}), 'x-fnn-token': TOKEN } });
  const text = await response.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    body = { error: text.trim() || `the viewer answered ${response.status}` };
  }
  if (!response.ok) throw new Error(body.error || `the viewer answered ${response.status}`);
  return body;
}

const withToken = (path) => `${path}${path.includes('?') ? '&' : '?'}t=${TOKEN}`;

function showError(message) {
  const box = $('error');
  box.textContent = message;
  box.hidden = !message;
}

function decodePixels(base64) {
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  const view = new DataView(bytes.buffer);
  const out = new Uint16Array(bytes.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = view.getUint16(i * 2, true);
  return out;
}

/**
 * The window a result opens with: the record's own DICOM window when it has one
 * (in the file's units, so moved by the collection's offset to the stored
 * values drawn here); 8-bit images unstretched; else 0..the brightest value.
 */
function defaultWindow(image, metadata, offset = 0) {
  const c = Number(metadata && metadata.windowCenter);
  const w = Number(metadata && metadata.windowWidth);
  if (metadata && Number.isFinite(c) && Number.isFinite(w) && w > 0) return { center: c + offset, width: w };
  if (image.maxValue <= 255) return { center: 127.5, width: 255 };
  let max = 1;
  for (const v of image.pixels) if (v > max) max = v;
  return { center: max / 2, width: max };
}

/** Draw raw pixel values through a window: values below center - width/2 black, above center + width/2 white. */
function draw(canvas, image, win) {
  canvas.width = image.width;
  canvas.height = image.height;
  const ctx = canvas.getContext('2d');
  const out = ctx.createImageData(image.width, image.height);
  const low = win.center - win.width / 2;
  const scale = 255 / Math.max(win.width, 1e-9);
  for (let i = 0; i < image.pixels.length; i++) {
    const g = Math.max(0, Math.min(255, Math.round((image.pixels[i] - low) * scale)));
    out.data[i * 4] = out.data[i * 4 + 1] = out.data[i * 4 + 2] = g;
    out.data[i * 4 + 3] = 255;
  }
  ctx.putImageData(out, 0, 0);
  const shown = Math.max(256, image.width);
  canvas.style.width = `${shown}px`;
  canvas.style.height = `${Math.round((shown * image.height) / image.width)}px`;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

const selected = () => state.collections.find((c) => c.name === $('collection').value);

async function loadCollections() {
  try {
    const info = await api('/api/collections');
    state.collections = info.collections;
    state.defaultProtocol = info.defaultProtocol;
    $('k').max = String(info.maxK);
    const select = $('collection');
    select.replaceChildren(
      ...info.collections.map((c) =>
        el('option', { value: c.name, text: `${c.name} (${c.records ? `${c.records} records, ${c.width} x ${c.height}` : 'empty'})` }),
      ),
    );
    if (info.collections.some((c) => c.name === info.defaultCollection)) select.value = info.defaultCollection;
    select.disabled = info.collections.length < 2;
    onCollection();
  } catch (error) {
    showError(error.message);
  }
}

function onCollection() {
  const c = selected();
  const protocols = c ? c.protocols : [];
  $('protocol').replaceChildren(...protocols.map((p) => el('option', { value: p, text: p })));
  if (protocols.includes(state.defaultProtocol)) $('protocol').value = state.defaultProtocol;
  $('collection-info').textContent = !c
    ? ''
    : c.records === 0
      ? `${c.name}: empty`
      : `${c.name}: ${c.records} records, ${c.width} x ${c.height} pixels; pixel offset ${c.offset}, other sizes: ${c.fit === 'crop' ? 'center-cropped or padded' : 'refused'}`;
  if (!c) showError('C1 holds no collection yet: nothing to search (the owner uploads with fnn upload).');
  else if (c.records === 0) showError(`The collection ${c.name} is empty: nothing to search yet (the owner uploads with fnn upload).`);
  else showError('');
  if (state.file) void showPreview();
}

/** A file sent to the viewer, which reads it (PNG, DICOM, NIfTI) and keeps it while a slice is chosen. */
async function sendFile(file) {
  const form = new FormData();
  form.append('file', file, file.name);
  return api('/api/files', { method: 'POST', body: form });
}

async function onFiles(list) {
  showError('');
  const files = [...list];
  if (files.length === 0) return;
  if (files.length === 1) {
    $('preview').hidden = true;
    try {
      state.file = await sendFile(files[0]);
      await showPreview();
    } catch (error) {
      state.file = undefined;
      showError(error.message);
    }
    return;
  }
  // Batch: every file searched at its default image, two at a time (the viewer bounds what it queues).
  $('preview').hidden = true;
  state.file = undefined;
  const queue = files.map((file) => ({ file, card: resultCard(file.name) }));
  const worker = async () => {
    for (let item = queue.shift(); item; item = queue.shift()) {
      try {
        const held = await sendFile(item.file);
        await runSearch(held.file, held.index, item.card);
      } catch (error) {
        item.card.fail(error.message);
      }
    }
  };
  await Promise.all([worker(), worker()]);
}

async function showPreview() {
  const file = state.file;
  const picker = $('slice');
  $('slice-picker').hidden = file.count < 2;
  picker.max = String(file.count - 1);
  picker.value = String(file.index);
  await drawPreview();
}

async function drawPreview() {
  const file = state.file;
  const index = Number($('slice').value);
  $('slice-label').textContent = file.count > 1 ? `${file.labels[index]} (${index + 1} of ${file.count})` : '';
  try {
    const c = selected();
    const image = await api(`/api/files/${file.file}/images/${index}?collection=${encodeURIComponent(c ? c.name : '')}`);
    const pixels = decodePixels(image.pixels);
    const shown = { ...image, pixels };
    draw($('preview-canvas'), shown, defaultWindow(shown, image.window, image.offset));
    $('preview-name').textContent = image.name;
    const bits = image.maxValue <= 255 ? 8 : 16;
    const fitted =
      image.width !== file.width || image.height !== file.height
        ? ` (cropped or padded from the file's ${file.width} x ${file.height})`
        : '';
    $('preview-info').textContent =
      `${image.width} x ${image.height}, ${bits}-bit, pixel offset ${image.offset}${fitted}; ${file.format.toUpperCase()} file`;
    $('preview').hidden = false;
    $('search').disabled = false;
    showError('');
  } catch (error) {
    $('preview').hidden = false;
    $('search').disabled = true;
    showError(error.message);
  }
}

/** A result's card: filled in as its search reports, kept when more searches run. */
function resultCard(title) {
  const status = el('span', { class: 'status', text: 'sending…' });
  const bar = el('progress', { max: '1', value: '0' });
  const body = el('div');
  const card = el('article', { class: 'result', 'data-state': 'waiting' }, el('h3', { text: title }), status, ' ', bar, body);
  $('results').prepend(card);
  return {
    card,
    status: (text) => (status.textContent = text),
    progress: (done, total) => {
      bar.max = String(Math.max(total, 1));
      bar.value = String(done);
    },
    fail: (message) => {
      card.classList.add('failed');
      card.dataset.state = 'failed';
      status.textContent = message;
      bar.remove();
    },
    done: (result) => {
      card.dataset.state = 'done';
      bar.remove();
      body.replaceChildren(...renderResult(result));
    },
  };
}

/** As `fnn query` prints it: three significant digits, no exponent. */
const rmsText = (x) => (x === 0 ? '0' : x >= 100 ? x.toFixed(0) : x.toPrecision(3));

/** A record's metadata fields (what the owner sealed with it) in words. */
const FIELD_NAMES = {
  modality: 'Modality',
  bodyPart: 'Body part',
  studyDescription: 'Study',
  seriesDescription: 'Series',
  studyDate: 'Study date',
  studyInstanceUid: 'Study UID',
  seriesInstanceUid: 'Series UID',
  sopInstanceUid: 'Instance UID',
  windowCenter: 'Window center',
  windowWidth: 'Window width',
  label: 'Label',
  patientName: 'Patient',
  patientId: 'Patient ID',
};

const PHASES = { 'lower-bounds': 'lower bounds', candidates: 'candidates', distances: 'distances' };

function runSearch(file, index, card) {
  return new Promise((resolve) => {
    const c = selected();
    const body = { file, index, k: Number($('k').value), protocol: $('protocol').value, collection: c ? c.name : '' };
    api('/api/searches', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }).then(
      ({ search }) => {
        card.status('queued');
        const events = new EventSource(withToken(`/api/searches/${search}/events`));
        events.addEventListener('queued', (e) => {
          const { ahead } = JSON.parse(e.data);
          card.status(ahead > 0 ? `waiting: ${ahead} search${ahead === 1 ? '' : 'es'} ahead` : 'starting');
        });
        events.addEventListener('progress', (e) => {
          const { progress: p } = JSON.parse(e.data);
          card.status(
            `C1 searching: ${PHASES[p.phase] || p.phase} ${p.done} of ${p.total}${p.rejected ? `, ${p.rejected} rejected by the bound` : ''}`,
          );
          card.progress(p.done, p.total);
        });
        events.addEventListener('result', (e) => {
          events.close();
          const { result } = JSON.parse(e.data);
          card.status(`${result.protocol}: ${result.total} records searched in ${(result.elapsedMs / 1000).toFixed(1)} s`);
          card.done(result);
          resolve();
        });
        events.addEventListener('failure', (e) => {
          events.close();
          card.fail(JSON.parse(e.data).error);
          resolve();
        });
        events.onerror = () => {
          if (events.readyState === EventSource.CLOSED) return;
          events.close();
          card.fail('lost contact with the viewer (was it stopped?)');
          resolve();
        };
      },
      (error) => {
        card.fail(error.message);
        resolve();
      },
    );
  });
}

function renderResult(result) {
  const query = { width: result.width, height: result.height, maxValue: result.maxValue, pixels: decodePixels(result.pixels) };
  const neighbours = result.neighbours.map((n) => ({ ...n, image: { ...query, maxValue: n.maxValue, pixels: decodePixels(n.pixels) } }));
  // The query file's own window first, else the nearest record's: one window for all, so they compare.
  const win = defaultWindow(query, result.window || (neighbours[0] && neighbours[0].metadata), result.offset);
  const top = Math.max(query.maxValue, 1);
  const level = el('input', { type: 'range', class: 'level', min: '0', max: String(top), step: 'any', value: String(win.center) });
  const width = el('input', { type: 'range', class: 'width', min: '1', max: String(top * 2), step: 'any', value: String(win.width) });
  const readout = el('span');
  const canvases = [];
  const redraw = () => {
    const w = { center: Number(level.value), width: Number(width.value) };
    readout.textContent = `level ${w.center.toFixed(0)}, width ${w.width.toFixed(0)}`;
    for (const [canvas, image] of canvases) draw(canvas, image, w);
  };
  const reset = el('button', { type: 'button', text: 'reset window' });
  reset.onclick = () => {
    level.value = String(win.center);
    width.value = String(win.width);
    redraw();
  };
  level.oninput = width.oninput = redraw;
  const rows = neighbours.map((n) => {
    const qc = el('canvas', { class: 'image query' });
    const nc = el('canvas', { class: 'image' });
    canvases.push([qc, query], [nc, n.image]);
    const facts = el(
      'td',
      { class: 'facts' },
      el('div', { class: 'rank', text: `#${n.rank}` }),
      el('div', { class: 'nid', text: n.id }),
      el('div', {}, 'squared distance ', el('b', { class: 'ndist', text: n.distance })),
      el('div', {}, 'per pixel (RMS) ', el('b', { class: 'nrms', text: rmsText(n.rmsPerPixel) })),
    );
    if (n.metadata) {
      const dl = el('dl', { class: 'metadata' });
      for (const [k, v] of Object.entries(n.metadata)) dl.append(el('dt', { text: FIELD_NAMES[k] || k }), el('dd', { text: String(v) }));
      facts.append(dl);
    }
    return el('tr', { class: 'neighbour', 'data-rank': String(n.rank) }, el('td', {}, qc), el('td', {}, nc), facts);
  });
  const head = el('tr', {}, el('th', { text: 'query' }), el('th', { text: 'neighbour' }), el('th', { text: '' }));
  const table = el('table', { class: 'neighbours' }, head, ...rows);
  const link = (path, text) => el('a', { href: withToken(path), download: '', text });
  const base = `/api/searches/${result.search}`;
  const downloads = el(
    'p',
    { class: 'downloads' },
    'Download: ',
    link(`${base}/result.json`, 'result.json'),
    link(`${base}/images/0.png`, 'query.png'),
    ...neighbours.map((n) => link(`${base}/images/${n.rank}.png`, `neighbour-${n.rank}.png`)),
  );
  const controls = el('div', { class: 'window' }, el('label', {}, 'Level ', level), el('label', {}, 'Width ', width), readout, reset);
  redraw();
  if (neighbours.length === 0) return [el('p', { text: 'no records to compare with' })];
  return [controls, table, downloads];
}

function setUp() {
  const drop = $('drop');
  drop.addEventListener('dragover', (e) => {
    e.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    void onFiles(e.dataTransfer.files);
  });
  $('files').addEventListener('change', (e) => void onFiles(e.target.files));
  $('collection').addEventListener('change', onCollection);
  $('slice').addEventListener('input', () => void drawPreview());
  $('search').addEventListener('click', () => {
    const file = state.file;
    if (!file) return;
    void runSearch(file.file, Number($('slice').value), resultCard($('preview-name').textContent));
  });
  void loadCollections();
}

setUp();

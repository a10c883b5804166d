import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { plaintextNearest, PROTOCOL_NAMES } from '@fnn/shared';
import { CLI, jsonLines, runCli, startTlsPair, type Daemon } from './harness';
import { EXIT } from './output';
import { readImage } from './image-files';
import './ip-servername-warning';
import { dicomFile } from './testing/dicom-file';

// `make demo`: keys and certificates, C1 and C2 on free localhost ports over
// mutual TLS, two collections, each answer checked against the plaintext
// nearest neighbours, daemons stopped:
// - "paper-16": 16 x 16 slices (demo/images), for the paper's protocols (fnn,
//   bf cost d secure multiplications per record) with fast beside them, then
//   one DICOM record with a label, whose metadata the doctor sees with the result;
// - "default": 128 x 128 slices a doctor can recognise (demo/mri128), for the
//   fast protocol: a held-out slice at k = 3, and a batch.
// With FNN_DEMO_VIEWER=1 (`make demo-viewer`) the deployment stays up and
// `fnn viewer` serves the doctor's page on it (both collections) until Ctrl-C.

const ROOT = resolve(__dirname, '..', '..');
const IMAGES = join(ROOT, 'demo', 'images');
const QUERIES = join(ROOT, 'demo', 'queries');
const LARGE_IMAGES = join(ROOT, 'demo', 'mri128', 'images');
const LARGE_QUERIES = join(ROOT, 'demo', 'mri128', 'queries');
/** The query of both deployments: a slice 0.5 mm from a stored one, itself not stored. */
const HELD_OUT = 'ch2-z167.png';
const BITS = process.env.FNN_DEMO_BITS ?? '2048';
const K = 3;
/** The collection of the 16 x 16 slices; the 128 x 128 ones are the default collection. */
const SMALL = 'paper-16';

function step(text: string) {
  process.stdout.write(`\n== ${text}\n`);
}

async function fnn(args: string[]): Promise<Record<string, unknown>[]> {
  const run = await runCli(args);
  if (run.code !== 0) throw new Error(`fnn ${args[0]} failed (exit ${run.code}): ${run.stderr.trim()}`);
  return jsonLines(run.stdout);
}

const pngs = (dir: string) =>
  readdirSync(dir)
    .filter((f) => f.endsWith('.png'))
    .sort()
    .map((f) => join(dir, f));

function plaintextAnswer(imagesDir: string, queryPath: string, k: number) {
  const stored = pngs(imagesDir).map((f) => ({ id: basename(f), pixels: readImage(f).pixels }));
  return plaintextNearest(stored, readImage(queryPath).pixels, k);
}

/** Every neighbour's ID and distance equal to the plaintext reference's, in order. */
function check(imagesDir: string, result: Record<string, unknown>): boolean {
  const query = String(result.query);
  const got = result.results as { id: string; distance: string }[];
  const want = plaintextAnswer(imagesDir, query, got.length);
  const exact = got.length === want.length && got.every((g, i) => g.id === want[i].id && g.distance === want[i].distance.toString());
  // bf has no bound (no lowerBoundMs): it weighs every record, as the line says.
  const bound =
    result.lowerBoundMs === undefined ? `all ${result.total} records weighed` : `${result.rejected}/${result.total} rejected by the bound`;
  const list = (xs: { id: string; distance: unknown }[]) => xs.map((x) => `${x.id} (${String(x.distance)})`).join(', ');
  process.stdout.write(
    `  ${basename(query)} [${result.protocol}]: nearest ${list(got)}; ` +
      `${bound}, ${(Number(result.elapsedMs) / 1000).toFixed(1)} s\n` +
      `    plaintext nearest: ${list(want)} -> exact: ${exact ? 'yes' : 'NO'}\n`,
  );
  return exact;
}

async function main() {
  const work = mkdtempSync(join(tmpdir(), 'fnn-demo-'));
  const keys = join(work, 'keys');
  const certs = join(work, 'certs');
  const as = (party: string) => ['--tls-dir', join(certs, party)];
  const daemons: Daemon[] = [];
  let allExact = true;
  const stopDaemons = async () => {
    for (const d of daemons.splice(0).reverse()) {
      const code = await d.stop();
      process.stdout.write(`  stopped (exit ${code})\n`);
    }
  };
  /** C2 then C1 on free ports, ready when their health service says SERVING. */
  const deploy = async () => {
    const { c1, c2 } = await startTlsPair({ dir: work, keys, certs, started: (d) => daemons.push(d) });
    process.stdout.write(`  C1 ${c1.address}, C2 ${c2.address}\n`);
    return ['--c1', c1.address, '--c2', c2.address, '--keys', keys];
  };
  const upload = async (connection: string[], dir: string, extra: string[] = []) => {
    const started = Date.now();
    const uploaded = await fnn(['upload', dir, ...connection, ...as('owner'), ...extra, '--json']);
    process.stdout.write(`  ${uploaded.length} images encrypted and stored in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
  };
  try {
    step(`keys: ${BITS}-bit Paillier + record key`);
    await fnn(['keygen', '--out', keys, '--bits', BITS, '--json']);

    step('certificates: a CA for this deployment, one certificate each for C1, C2, the owner and a doctor');
    await fnn(['certs', '--out', certs, '--json']);

    step('daemons on free localhost ports, mutual TLS; ready when their health service says SERVING');
    const deployment = await deploy();
    const [status] = await fnn(['status', ...deployment, ...as('doctor'), '--json']);
    process.stdout.write(`  status: ${JSON.stringify(status)}\n`);

    step("a doctor may not upload: C1 refuses the doctor's certificate");
    const refused = await runCli(['upload', IMAGES, ...deployment, ...as('doctor')]);
    process.stdout.write(`  exit ${refused.code}: ${refused.stderr.trim().split('\n').pop()}\n`);
    if (refused.code !== EXIT.refused)
      throw new Error(`a doctor's upload should be refused (exit ${EXIT.refused}), got exit ${refused.code}`);

    const small = [...deployment, '--collection', SMALL];
    step(`upload by the owner into collection ${SMALL}: real brain MRI slices, 16 x 16, from ${IMAGES} (licence: demo/images/LICENSE.md)`);
    await upload(small, IMAGES);
    const asDoctor = (connection: string[]) => [...connection, ...as('doctor'), '--json', '--out', join(work, 'results')];
    for (const protocol of PROTOCOL_NAMES) {
      step(`query by the doctor in ${SMALL}: ${HELD_OUT}, a held-out slice (not stored), protocol ${protocol}`);
      const [result] = await fnn(['query', join(QUERIES, HELD_OUT), '--protocol', protocol, ...asDoctor(small)]);
      allExact = check(IMAGES, result) && allExact;
    }

    step(`a record with its clinical identity in ${SMALL}: a DICOM slice and the owner's label, sealed with the image under k`);
    const clinical = join(work, 'clinical');
    mkdirSync(clinical);
    const slice = join(QUERIES, HELD_OUT); // not in the collection yet: the query below finds it at distance 0
    const uid = '1.2.826.0.1.3680043.8.498.167';
    const q = readImage(slice);
    writeFileSync(
      join(clinical, 'IM0001'),
      dicomFile({
        width: q.width,
        height: q.height,
        pixels: q.pixels,
        sopInstanceUid: uid,
        header: {
          Modality: 'MR',
          BodyPartExamined: 'HEAD',
          StudyDescription: 'Brain MRI (ch2 template)',
          SeriesDescription: 'T1 axial',
          StudyDate: '20240305',
          WindowCenter: '128',
          WindowWidth: '256',
          PatientName: 'Demo^Patient',
          PatientID: 'DEMO-0001',
        },
      }),
    );
    writeFileSync(join(clinical, 'labels.csv'), `ID,label\n${uid},"normal adult brain, slice z167"\n`);
    const owner = [...small, ...as('owner')];
    const [stored] = await fnn(['upload', join(clinical, 'IM0001'), ...owner, '--labels', join(clinical, 'labels.csv'), '--json']);
    process.stdout.write(`  IM0001 stored as ${String(stored.id)} (its SOP Instance UID); PatientName and PatientID left out\n`);
    const seen = await runCli(['query', slice, '--k', '2', ...asDoctor(small).filter((a) => a !== '--json')]);
    if (seen.code !== 0) throw new Error(`fnn query failed (exit ${seen.code}): ${seen.stderr.trim()}`);
    process.stdout.write(seen.stdout.trimEnd().replace(/^/gm, '  ') + '\n');
    const found = seen.stdout.includes(`1. ${uid}  distance 0`) && seen.stdout.includes('"Brain MRI (ch2 template)"');
    if (!found || seen.stdout.includes('Demo^Patient'))
      throw new Error("the doctor's result does not show the record's metadata as sealed");

    step(
      `upload by the owner into collection default: ${pngs(LARGE_IMAGES).length} slices, 128 x 128, from ${LARGE_IMAGES}, ` +
        'packed layout only (--no-paper-layout: the fast protocol)',
    );
    await upload(deployment, LARGE_IMAGES, ['--no-paper-layout']);

    step(`query by the doctor: ${HELD_OUT}, a held-out slice (not stored), k = ${K}`);
    const [result] = await fnn(['query', join(LARGE_QUERIES, HELD_OUT), '--k', String(K), ...asDoctor(deployment)]);
    allExact = check(LARGE_IMAGES, result) && allExact;

    const queries = pngs(LARGE_QUERIES);
    step(`batch query: ${queries.length} queries over one stream (protocol fast)`);
    const lines = await fnn(['batch-query', ...queries, ...asDoctor(deployment)]);
    const { summary } = lines.pop() as { summary: { answered: number; total: number; medianMs: number; maxMs: number; elapsedMs: number } };
    for (const line of lines) allExact = check(LARGE_IMAGES, line) && allExact;
    process.stdout.write(
      `  ${summary.answered} of ${summary.total} answered; latency median ${(summary.medianMs / 1000).toFixed(1)} s, ` +
        `max ${(summary.maxMs / 1000).toFixed(1)} s; total ${(summary.elapsedMs / 1000).toFixed(1)} s\n`,
    );
    allExact = summary.answered === queries.length && allExact;

    if (process.env.FNN_DEMO_VIEWER && allExact) await serveViewer([...deployment, ...as('doctor')]);
    else
      step(
        `the doctor's viewer: \`make demo-viewer\` runs this demo again, keeps the deployment up and prints the address of its page ` +
          `(drop ${join('demo', 'mri128', 'queries', HELD_OUT)} into it)`,
      );
  } finally {
    step('stopping the daemons');
    await stopDaemons();
    if (!process.env.FNN_DEMO_KEEP) rmSync(work, { recursive: true, force: true });
  }
  step(allExact ? 'every answer exact: yes' : 'SOME ANSWERS WERE NOT EXACT');
  if (!allExact) process.exitCode = 1;
}

/** `fnn viewer` on the demo's deployment, as the doctor would run it, until Ctrl-C (which it and the demo both get). */
async function serveViewer(doctorFlags: string[]) {
  step("the doctor's viewer on this deployment: open the address below in a browser on this machine; Ctrl-C stops it and the demo");
  const listen = process.env.FNN_DEMO_LISTEN ?? '127.0.0.1:8080';
  process.stdout.write(`  fnn viewer ${doctorFlags.join(' ')} --listen ${listen}\n`);
  const ignore = () => {};
  process.on('SIGINT', ignore);
  try {
    const child = spawn(process.execPath, [CLI, 'viewer', ...doctorFlags, '--listen', listen], {
      stdio: 'inherit',
    });
    await new Promise<void>((r) => child.on('exit', () => r()));
  } finally {
    process.off('SIGINT', ignore);
  }
}

main().catch((error) => {
  process.stderr.write(`demo failed: ${(error as Error).message}\n`);
  process.exitCode = 1;
});

import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { plaintextNearest, PROTOCOL_NAMES } from '@fnn/shared';
import { jsonLines, runCli, startDaemon, type Daemon } from './harness';
import { EXIT } from './output';
import { readImage } from './image-files';
import './ip-servername-warning';
import { dicomFile } from './testing/dicom-file';
import { transportFrom } from './tls-files';

// `make demo`: keys and certificates, both daemons on free localhost ports over
// mutual TLS, the bundled real MRI slices uploaded by the owner, one query per
// protocol and one batch query by a doctor, each answer checked against the
// plaintext nearest neighbour; then one DICOM record with a label, whose
// metadata the doctor sees with the result; daemons stopped.

const ROOT = resolve(__dirname, '..', '..');
const IMAGES = join(ROOT, 'demo', 'images');
const QUERIES = join(ROOT, 'demo', 'queries');
const BITS = process.env.FNN_DEMO_BITS ?? '2048';

function step(text: string) {
  process.stdout.write(`\n== ${text}\n`);
}

async function fnn(args: string[]): Promise<Record<string, unknown>[]> {
  const run = await runCli(args);
  if (run.code !== 0) throw new Error(`fnn ${args[0]} failed (exit ${run.code}): ${run.stderr.trim()}`);
  return jsonLines(run.stdout);
}

function plaintextAnswer(queryPath: string) {
  const stored = readdirSync(IMAGES)
    .filter((f) => f.endsWith('.png'))
    .sort()
    .map((f) => ({ id: f, pixels: readImage(join(IMAGES, f)).pixels }));
  return plaintextNearest(stored, readImage(queryPath).pixels, 1)[0];
}

function check(result: Record<string, unknown>): boolean {
  const query = String(result.query);
  const got = (result.results as { id: string; distance: string }[])[0];
  const want = plaintextAnswer(query);
  const exact = got.id === want.id && got.distance === want.distance.toString();
  // bf has no bound (no lowerBoundMs): it weighs every record, as the line says.
  const bound =
    result.lowerBoundMs === undefined ? `all ${result.total} records weighed` : `${result.rejected}/${result.total} rejected by the bound`;
  process.stdout.write(
    `  ${query.split('/').pop()} [${result.protocol}]: nearest ${got.id}, distance ${got.distance}, ` +
      `${bound}, ${(Number(result.elapsedMs) / 1000).toFixed(1)} s\n` +
      `    plaintext nearest: ${want.id}, distance ${want.distance} -> exact: ${exact ? 'yes' : 'NO'}\n`,
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
  try {
    step(`keys: ${BITS}-bit Paillier + record key`);
    await fnn(['keygen', '--out', keys, '--bits', BITS, '--json']);

    step('certificates: a CA for this deployment, one certificate each for C1, C2, the owner and a doctor');
    await fnn(['certs', '--out', certs, '--json']);

    step('daemons on free localhost ports, mutual TLS; ready when their health service says SERVING');
    const readyAs = transportFrom({ tlsDir: join(certs, 'owner') }, ['owner']);
    const quiet = { FNN_LOG_LEVEL: 'warn' };
    const c2 = await startDaemon(
      'c2',
      ['--listen', '127.0.0.1:0', '--keys', keys, '--db', join(work, 'c2.db'), ...as('c2')],
      quiet,
      readyAs,
    );
    daemons.push(c2);
    const c1Args = ['--listen', '127.0.0.1:0', '--keys', keys, '--c2', c2.address, '--db', join(work, 'c1.db'), ...as('c1')];
    const c1 = await startDaemon('c1', c1Args, quiet, readyAs);
    daemons.push(c1);
    process.stdout.write(`  C1 ${c1.address}, C2 ${c2.address}\n`);
    const [status] = await fnn(['status', '--c1', c1.address, '--c2', c2.address, ...as('doctor'), '--json']);
    process.stdout.write(`  status: ${JSON.stringify(status)}\n`);

    step("a doctor may not upload: C1 refuses the doctor's certificate");
    const refused = await runCli(['upload', IMAGES, '--c1', c1.address, '--c2', c2.address, '--keys', keys, ...as('doctor')]);
    process.stdout.write(`  exit ${refused.code}: ${refused.stderr.trim().split('\n').pop()}\n`);
    if (refused.code !== EXIT.refused)
      throw new Error(`a doctor's upload should be refused (exit ${EXIT.refused}), got exit ${refused.code}`);

    step(`upload by the owner: real brain MRI slices from ${IMAGES} (licence: demo/images/LICENSE.md)`);
    const started = Date.now();
    const uploaded = await fnn(['upload', IMAGES, '--c1', c1.address, '--c2', c2.address, '--keys', keys, ...as('owner'), '--json']);
    process.stdout.write(`  ${uploaded.length} images encrypted and stored in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);

    const queries = readdirSync(QUERIES)
      .filter((f) => f.endsWith('.png'))
      .sort()
      .map((f) => join(QUERIES, f));
    const common = ['--c1', c1.address, '--c2', c2.address, '--keys', keys, ...as('doctor'), '--json', '--out', join(work, 'results')];
    for (const protocol of PROTOCOL_NAMES) {
      step(`query by the doctor, protocol ${protocol}`);
      const [result] = await fnn(['query', queries[0], '--protocol', protocol, ...common]);
      allExact = check(result) && allExact;
    }

    step(`batch query: ${queries.length} queries over one stream (protocol fast)`);
    const lines = await fnn(['batch-query', ...queries, ...common]);
    const { summary } = lines.pop() as { summary: { answered: number; total: number; medianMs: number; maxMs: number; elapsedMs: number } };
    for (const result of lines) allExact = check(result) && allExact;
    process.stdout.write(
      `  ${summary.answered} of ${summary.total} answered; latency median ${(summary.medianMs / 1000).toFixed(1)} s, ` +
        `max ${(summary.maxMs / 1000).toFixed(1)} s; total ${(summary.elapsedMs / 1000).toFixed(1)} s\n`,
    );
    allExact = summary.answered === queries.length && allExact;

    step("a record with its clinical identity: a DICOM slice and the owner's label, sealed with the image under k");
    const clinical = join(work, 'clinical');
    mkdirSync(clinical);
    const slice = queries[queries.length - 1]; // not in the collection yet: the query below finds it at distance 0
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
    const owner = ['--c1', c1.address, '--c2', c2.address, '--keys', keys, ...as('owner')];
    const [stored] = await fnn(['upload', join(clinical, 'IM0001'), ...owner, '--labels', join(clinical, 'labels.csv'), '--json']);
    process.stdout.write(`  IM0001 stored as ${String(stored.id)} (its SOP Instance UID); PatientName and PatientID left out\n`);
    const seen = await runCli(['query', slice, '--k', '2', ...common.filter((a) => a !== '--json')]);
    if (seen.code !== 0) throw new Error(`fnn query failed (exit ${seen.code}): ${seen.stderr.trim()}`);
    process.stdout.write(seen.stdout.trimEnd().replace(/^/gm, '  ') + '\n');
    const found = seen.stdout.includes(`1. ${uid}  distance 0`) && seen.stdout.includes('"Brain MRI (ch2 template)"');
    if (!found || seen.stdout.includes('Demo^Patient'))
      throw new Error("the doctor's result does not show the record's metadata as sealed");
  } finally {
    step('stopping the daemons');
    for (const d of daemons.reverse()) {
      const code = await d.stop();
      process.stdout.write(`  stopped (exit ${code})\n`);
    }
    if (!process.env.FNN_DEMO_KEEP) rmSync(work, { recursive: true, force: true });
  }
  step(allExact ? 'every answer exact: yes' : 'SOME ANSWERS WERE NOT EXACT');
  if (!allExact) process.exitCode = 1;
}

main().catch((error) => {
  process.stderr.write(`demo failed: ${(error as Error).message}\n`);
  process.exitCode = 1;
});

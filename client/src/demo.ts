import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { plaintextNearest } from '@fnn/shared';
import { jsonLines, runCli, startDaemon, type Daemon } from './harness';
import { readImage } from './image-files';

// `make demo`: keys, both daemons on free localhost ports, the bundled real MRI
// slices uploaded, one query per protocol and one batch query, each answer
// checked against the plaintext nearest neighbour, daemons stopped.

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
  process.stdout.write(
    `  ${query.split('/').pop()} [${result.protocol}]: nearest ${got.id}, distance ${got.distance}, ` +
      `${result.rejected}/${result.total} rejected by the bound, ${(Number(result.elapsedMs) / 1000).toFixed(1)} s\n` +
      `    plaintext nearest: ${want.id}, distance ${want.distance} -> exact: ${exact ? 'yes' : 'NO'}\n`,
  );
  return exact;
}

async function main() {
  const work = mkdtempSync(join(tmpdir(), 'fnn-demo-'));
  const keys = join(work, 'keys');
  const daemons: Daemon[] = [];
  let allExact = true;
  try {
    step(`keys: ${BITS}-bit Paillier + record key`);
    await fnn(['keygen', '--out', keys, '--bits', BITS, '--json']);

    step('daemons on free localhost ports');
    const c2 = await startDaemon('c2', ['--listen', '127.0.0.1:0', '--keys', keys, '--db', join(work, 'c2.db')], { FNN_LOG_LEVEL: 'warn' });
    daemons.push(c2);
    const c1 = await startDaemon('c1', ['--listen', '127.0.0.1:0', '--keys', keys, '--c2', c2.address, '--db', join(work, 'c1.db')], { FNN_LOG_LEVEL: 'warn' });
    daemons.push(c1);
    process.stdout.write(`  C1 ${c1.address}, C2 ${c2.address}\n`);
    const [status] = await fnn(['status', '--c1', c1.address, '--c2', c2.address, '--json']);
    process.stdout.write(`  status: ${JSON.stringify(status)}\n`);

    step(`upload: real brain MRI slices from ${IMAGES} (licence: demo/images/LICENSE.md)`);
    const started = Date.now();
    const uploaded = await fnn(['upload', IMAGES, '--c1', c1.address, '--c2', c2.address, '--keys', keys, '--json']);
    process.stdout.write(`  ${uploaded.length} images encrypted and stored in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);

    const queries = readdirSync(QUERIES).filter((f) => f.endsWith('.png')).sort().map((f) => join(QUERIES, f));
    const common = ['--c1', c1.address, '--c2', c2.address, '--keys', keys, '--json', '--out', join(work, 'results')];
    for (const protocol of ['fast', 'fnn', 'bf']) {
      step(`query, protocol ${protocol}`);
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

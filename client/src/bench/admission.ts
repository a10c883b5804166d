// `npm run bench:admission`: issue 12's fairness figure, measured (the bound
// is asserted by client/src/admission.test.ts, without a clock). The real
// daemons over mutual TLS, two doctors with certificates of their own: doctor
// B's fast query alone, then the same queries while doctor A's burst of 12 bf
// queries runs. The factor is B's median under the burst over B's median
// alone; docs/SECURITY.md ("Admission at C1") states what it should be (about
// 3x). Every answer is checked against the plaintext reference.

import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { decodePng, plaintextNearest } from '@fnn/shared';
import '../ip-servername-warning';
import { issueAuthority, issueParty } from '../certificates';
import { jsonLines, runCli, startTlsPair, type Daemon } from '../harness';
import { randomPixels, writeImage } from '../testing/deployment';
import { gitDescribe, machine } from './report';
import { speedCheckMs } from './scale-resources';

const ROOT = resolve(__dirname, '..', '..', '..');
const SIZE = 8;
const RECORDS = 16;
const BITS = 1024;
const BURST = 12;
const ALONE = 5;

type Party = 'c1' | 'c2' | 'owner' | 'doctor-a' | 'doctor-b';

/** A CA and one certificate per party, each in its own --tls-dir (the doctors apart: two callers to C1). */
async function certificates(dir: string): Promise<(p: Party) => string[]> {
  const ca = await issueAuthority(1);
  for (const party of ['c1', 'c2', 'owner', 'doctor-a', 'doctor-b'] as Party[]) {
    const role = party.startsWith('doctor') ? 'doctor' : (party as 'c1' | 'c2' | 'owner');
    const issued = await issueParty(ca, { role, name: party, hosts: role === 'c1' || role === 'c2' ? ['127.0.0.1'] : [], days: 1 });
    mkdirSync(join(dir, party), { recursive: true });
    writeFileSync(join(dir, party, 'ca.pem'), ca.cert);
    writeFileSync(join(dir, party, 'cert.pem'), issued.cert);
    writeFileSync(join(dir, party, 'key.pem'), issued.key, { mode: 0o600 });
  }
  return (p) => ['--tls-dir', join(dir, p)];
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main() {
  const work = mkdtempSync(join(tmpdir(), 'fnn-bench-admission-'));
  const daemons: Daemon[] = [];
  const say = (line: string) => process.stdout.write(line + '\n');
  try {
    const speedStart = speedCheckMs();
    const keys = join(work, 'keys');
    const keygen = await runCli(['keygen', '--out', keys, '--bits', String(BITS), '--json']);
    if (keygen.code !== 0) throw new Error(`keygen: ${keygen.stderr}`);
    const as = await certificates(join(work, 'certs'));
    const { c1, c2 } = await startTlsPair({ dir: work, keys, certs: join(work, 'certs'), started: (d) => daemons.push(d) });
    const at = ['--c1', c1.address, '--c2', c2.address, '--keys', keys];

    const dir = join(work, 'images');
    mkdirSync(dir);
    const records = Array.from({ length: RECORDS }, (_, i) => {
      const pixels = randomPixels(SIZE * SIZE);
      writeImage(join(dir, `r${i}.png`), pixels, SIZE, SIZE);
      return { id: `r${i}.png`, pixels };
    });
    const up = await runCli(['upload', dir, ...at, ...as('owner'), '--json']);
    if (up.code !== 0) throw new Error(`upload: ${up.stderr}`);

    /** One query by `party`; its elapsedMs, checked against the plaintext reference. */
    const query = async (party: Party, protocol: 'fast' | 'bf', i: number): Promise<number> => {
      const file = writeImage(join(work, `q-${party}-${protocol}-${i}.png`), randomPixels(SIZE * SIZE), SIZE, SIZE);
      const run = await runCli(['query', file, ...at, ...as(party), '--protocol', protocol, '--k', '1', '--json']);
      if (run.code !== 0) throw new Error(`${party} ${protocol} query: ${run.stderr.trim()}`);
      const result = jsonLines(run.stdout).at(-1) as { elapsedMs: number; results: { id: string; distance: string }[] };
      const want = plaintextNearest(records, decodePng(readFileSync(file), file).pixels, 1)[0];
      if (result.results[0].id !== want.id || result.results[0].distance !== String(want.distance))
        throw new Error(`${party} ${protocol} query ${i}: not the plaintext nearest neighbour`);
      return result.elapsedMs;
    };

    const alone: number[] = [];
    for (let i = 0; i < ALONE; i++) alone.push(await query('doctor-b', 'fast', i));
    say(`doctor B alone: fast ${alone.map((ms) => `${ms} ms`).join(', ')}`);
    const bfAlone = await query('doctor-a', 'bf', 0);
    say(`doctor A alone: bf ${bfAlone} ms`);

    // The burst: every query of doctor A at once. B starts once A's CLIs have had a moment to connect.
    let burstDone = 0;
    const burst = Array.from({ length: BURST }, (_, i) => query('doctor-a', 'bf', i + 1).finally(() => burstDone++));
    await new Promise((r) => setTimeout(r, 3000));
    const under: number[] = [];
    for (let i = 0; i < ALONE; i++) under.push(await query('doctor-b', 'fast', ALONE + i));
    const burstLeft = BURST - burstDone;
    const burstMs = await Promise.all(burst);
    say(
      `doctor B during A's burst of ${BURST} bf: fast ${under.map((ms) => `${ms} ms`).join(', ')}; ${burstLeft} of A's still running at B's end`,
    );
    const factor = median(under) / median(alone);
    say(
      `factor: ${factor.toFixed(2)}x (median ${median(under)} ms against ${median(alone)} ms alone); A's bf in the burst: median ${median(burstMs)} ms`,
    );

    const run = {
      date: new Date().toISOString(),
      code: gitDescribe(ROOT),
      machine: machine(),
      speedCheckMs: { start: speedStart, end: speedCheckMs() },
      settings: {
        size: SIZE,
        records: RECORDS,
        bits: BITS,
        burst: BURST,
        queries: ALONE,
        transport: 'mutual TLS, two doctor certificates',
      },
      aloneMs: alone,
      underBurstMs: under,
      bfAloneMs: bfAlone,
      burstMs,
      burstStillRunningAtEnd: burstLeft,
      factor,
    };
    const name = `admission-${run.date.slice(0, 10)}.json`;
    writeFileSync(join(ROOT, 'bench', 'results', name), JSON.stringify(run, null, 2) + '\n');
    say(`wrote bench/results/${name}`);
    if (burstLeft === 0) say("note: A's burst ended before B's last query: the factor understates the load");
  } finally {
    await Promise.all(daemons.map((d) => d.stop()));
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((error) => {
  process.stderr.write(`bench:admission: ${(error as Error).message}\n`);
  process.exitCode = 1;
});

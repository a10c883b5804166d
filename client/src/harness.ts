import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { join, resolve } from 'node:path';
import { checkHealth, type Transport } from '@fnn/shared';
import { connectHealth } from './connect';
import { transportFrom } from './tls-files';

// Running the real `fnn` binary as a subprocess: used by `make demo` and the
// end-to-end tests, so both exercise exactly what a hospital would run.

/** The compiled CLI, whether this file runs from src/ (tests) or dist/ (demo). */
export const CLI = resolve(__dirname, '..', 'dist', 'main.js');

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliRun> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b) => (stdout += b));
    child.stderr.on('data', (b) => (stderr += b));
    child.on('error', reject);
    child.on('close', (code) => resolvePromise({ code, stdout, stderr }));
  });
}

/** Parse the JSON lines a command printed with --json. */
export const jsonLines = (out: string) =>
  out
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);

export interface Daemon {
  address: string;
  /** The daemon's listening line, e.g. its metrics address with --metrics. */
  listening: Record<string, unknown>;
  child: ChildProcess;
  /** The daemon's log (stderr) so far. */
  log(): string;
  /** SIGTERM and wait for the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL: a crash. */
  kill(): Promise<void>;
}

/**
 * Start `fnn c1|c2 ...` and resolve once it prints the address it bound, and,
 * with `readyAs` (the credentials of a party allowed to ask), once its health
 * service says SERVING over a real connection: TLS set up, certificates
 * accepted. No sleeps either way.
 */
export async function startDaemon(role: 'c1' | 'c2', args: string[], env: NodeJS.ProcessEnv = {}, readyAs?: Transport): Promise<Daemon> {
  const daemon = await listening(role, args, env);
  if (readyAs) {
    const health = connectHealth(daemon.address, readyAs, role);
    try {
      const state = await checkHealth(health, '', new Date(Date.now() + READY_TIMEOUT_MS), true);
      if (state !== 'SERVING') throw new Error(`fnn ${role} at ${daemon.address} is ${state}`);
    } catch (error) {
      await daemon.stop();
      throw new Error(
        `fnn ${role} listens but is not ready: ${(error as Error).message}; log: ${daemon.log().trim().split('\n').slice(-3).join(' | ')}`,
      );
    } finally {
      health.close();
    }
  }
  return daemon;
}

const READY_TIMEOUT_MS = 10_000;

export interface TlsPairOptions {
  /** Where C1's and C2's databases go (c1.db, c2.db). */
  dir: string;
  keys: string;
  /** One --tls-dir per party below it (c1/, c2/, owner/), as `fnn certs` writes them. */
  certs: string;
  /** Hears each daemon once it is up, C2 first: the caller stops them, C2 too when C1 does not start. */
  started: (daemon: Daemon) => void;
  env?: NodeJS.ProcessEnv;
}

/**
 * C2, then C1 pointed at it, over mutual TLS as `fnn c2` / `fnn c1` run them,
 * on free ports; each is ready once its health service says SERVING to the
 * owner's certificate (the demo, the viewer's browser test, bench:admission).
 */
export async function startTlsPair(options: TlsPairOptions): Promise<{ c1: Daemon; c2: Daemon }> {
  const { dir, keys, certs, started, env = { FNN_LOG_LEVEL: 'warn' } } = options;
  const readyAs = transportFrom({ tlsDir: join(certs, 'owner') }, ['owner']);
  const c2Args = ['--listen', '127.0.0.1:0', '--keys', keys, '--db', join(dir, 'c2.db'), '--tls-dir', join(certs, 'c2')];
  const c2 = await startDaemon('c2', c2Args, env, readyAs);
  started(c2);
  const c1Args = [
    '--listen',
    '127.0.0.1:0',
    '--keys',
    keys,
    '--c2',
    c2.address,
    '--db',
    join(dir, 'c1.db'),
    '--tls-dir',
    join(certs, 'c1'),
  ];
  const c1 = await startDaemon('c1', c1Args, env, readyAs);
  started(c1);
  return { c1, c2 };
}

function listening(role: 'c1' | 'c2', args: string[], env: NodeJS.ProcessEnv): Promise<Daemon> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [CLI, role, ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let log = '';
    child.stderr!.on('data', (b) => (log += b));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    const lines = createInterface({ input: child.stdout! });
    let started = false;
    lines.on('line', (line) => {
      if (started || !line.startsWith('{')) return;
      const event = JSON.parse(line) as { event?: string; address?: string };
      if (event.event !== 'listening' || !event.address) return;
      started = true;
      resolvePromise({
        address: event.address,
        listening: event,
        child,
        log: () => log,
        stop: async () => {
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
          return exited;
        },
        kill: async () => {
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
          await exited;
        },
      });
    });
    void exited.then((code) => {
      if (!started) reject(new Error(`fnn ${role} exited with ${code} before listening: ${log.trim().split('\n').slice(-3).join(' | ')}`));
    });
  });
}

import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { program } from './main';

// deploy/ cannot rot: its example config files are read by the loader the
// daemons use and applied to the real `fnn c1` / `fnn c2`; the systemd units
// pass `systemd-analyze verify`; the health checks (systemd and the
// Dockerfile's) dial the address and use the certificates the config gives.

const DEPLOY = resolve(__dirname, '..', '..', 'deploy');
const UNITS = [
  'fnn-c1.service',
  'fnn-c1-health.service',
  'fnn-c1-health.timer',
  'fnn-c2.service',
  'fnn-c2-health.service',
  'fnn-c2-health.timer',
];
const daemon = (name: string) => program.commands.find((c) => c.name() === name) as Command;

/** The settings `fnn NAME --config deploy/NAME.toml` runs with (the file applied as the daemons apply it). */
async function exampleSettings(name: 'c1' | 'c2'): Promise<Record<string, unknown>> {
  let given: Record<string, unknown> | undefined;
  daemon(name).action(function (this: Command) {
    given = { ...this.opts() };
  });
  const path = join(DEPLOY, `${name}.toml`);
  // The parse as the CLI does it, without the environment of whoever runs the tests.
  const saved = Object.entries(process.env).filter(([key]) => key.startsWith('FNN_'));
  for (const [key] of saved) delete process.env[key];
  try {
    await program.parseAsync(['node', 'fnn', name, '--config', path]);
  } finally {
    for (const [key, value] of saved) process.env[key] = value;
  }
  expect(given, `fnn ${name} did not accept ${path}`).toBeDefined();
  return given!;
}

const unit = (file: string) => readFileSync(join(DEPLOY, 'systemd', file), 'utf8');
const port = (address: unknown) => String(address).split(':').pop();

describe("deploy/'s example config files", () => {
  it('c1.toml and c2.toml are accepted by fnn c1 and fnn c2, with TLS and metrics on loopback', async () => {
    const c1 = await exampleSettings('c1');
    expect(c1).toMatchObject({
      db: '/var/lib/fnn/fnn-c1.db',
      keys: '/etc/fnn/c1/keys',
      tlsDir: '/etc/fnn/c1/tls',
      metrics: '127.0.0.1:9464',
    });
    expect(c1.insecure).toBeUndefined();
    const c2 = await exampleSettings('c2');
    expect(c2).toMatchObject({
      db: '/var/lib/fnn/fnn-c2.db',
      keys: '/etc/fnn/c2/keys',
      tlsDir: '/etc/fnn/c2/tls',
      metrics: '127.0.0.1:9465',
    });
    expect(c2.insecure).toBeUndefined();
    expect(port(c1.c2)).toBe(port(c2.listen));
  });
});

describe("deploy/'s systemd units and Dockerfile", () => {
  // Skipped only off CI when Debian's systemd is missing; .ci/run installs it, so there it always runs.
  const noSystemdAnalyze = spawnSync('systemd-analyze', ['--version']).error !== undefined;
  it.skipIf(noSystemdAnalyze && !process.env.CI)('pass systemd-analyze verify', () => {
    const run = spawnSync('systemd-analyze', ['verify', ...UNITS.map((f) => join(DEPLOY, 'systemd', f))], { encoding: 'utf8' });
    expect(run.stderr.trim(), 'systemd-analyze verify warned').toBe('');
    expect(run.status).toBe(0);
  });

  it('each daemon runs with its example config, as fnn, writing only its state directory', () => {
    for (const name of ['c1', 'c2']) {
      const text = unit(`fnn-${name}.service`);
      expect(text).toMatch(
        new RegExp(`^ExecStart=/usr/bin/node /opt/fnn/client/dist/main\\.js ${name} --config /etc/fnn/${name}\\.toml$`, 'm'),
      );
      for (const line of [
        'User=fnn',
        'StateDirectory=fnn',
        'ReadWritePaths=/var/lib/fnn',
        'NoNewPrivileges=yes',
        'ProtectSystem=strict',
        'PrivateTmp=yes',
        'Restart=on-failure',
      ])
        expect(text.split('\n'), `fnn-${name}.service lacks ${line}`).toContain(line);
    }
  });

  it('the health checks dial the address and use the certificate directory the config files give', async () => {
    for (const name of ['c1', 'c2'] as const) {
      const settings = await exampleSettings(name);
      const health = /^ExecStart=.* health --(c[12]) (\S+) --tls-dir (\S+)/m.exec(unit(`fnn-${name}-health.service`));
      expect(health?.slice(1)).toEqual([name, `127.0.0.1:${port(settings.listen)}`, settings.tlsDir]);
    }
    const dockerfile = readFileSync(join(DEPLOY, 'Dockerfile'), 'utf8');
    const c1 = await exampleSettings('c1');
    expect(dockerfile).toContain(`ENV FNN_HEALTH="--c1 127.0.0.1:${port(c1.listen)} --tls-dir ${c1.tlsDir}"`);
    expect(dockerfile).toMatch(/^HEALTHCHECK .*\n\s+CMD node \/opt\/fnn\/client\/dist\/main\.js health \$FNN_HEALTH/m);
    expect(dockerfile).toContain('CMD ["c1", "--config", "/etc/fnn/c1.toml"]');
    expect(dockerfile).toMatch(/^USER fnn$/m);
  });
});

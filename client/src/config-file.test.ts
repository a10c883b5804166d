import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { program } from './main';

// `fnn c1` and `fnn c2` read --config FILE (or FNN_CONFIG): a flag beats the
// environment, which beats the file, which beats the default. These parse the
// real program's commands; the daemon's action is replaced by one that keeps
// the options it would have been given, so nothing is started.

const dir = mkdtempSync(join(tmpdir(), 'fnn-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const file = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};

const ENV = [
  'FNN_CONFIG',
  'FNN_C1_LISTEN',
  'FNN_C2_LISTEN',
  'FNN_DB',
  'FNN_C2_DB',
  'FNN_KEYS',
  'FNN_C2',
  'FNN_QUERY_TIMEOUT',
  'FNN_METRICS',
];
const ENV_TLS = ['FNN_TLS_DIR', 'FNN_TLS_CA', 'FNN_TLS_CERT', 'FNN_TLS_KEY'];

let given: Record<string, unknown> | undefined;
const daemon = (name: string) => program.commands.find((c) => c.name() === name)!;
for (const name of ['c1', 'c2'])
  daemon(name).action(function (this: Command) {
    given = { ...this.opts() };
  });

/** Parses `fnn ARGS`: the options the daemon's action got (undefined: it did not run), the exit code and stderr. */
async function parse(args: string[]) {
  given = undefined;
  process.exitCode = undefined;
  const stderr: string[] = [];
  const write = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
    stderr.push(String(chunk));
    return true;
  });
  try {
    await program.parseAsync(['node', 'fnn', ...args]).catch((error: { exitCode?: number }) => {
      process.exitCode = error.exitCode ?? 1;
    });
  } finally {
    write.mockRestore();
  }
  const code = process.exitCode ?? 0;
  process.exitCode = undefined;
  return { options: given as Record<string, unknown> | undefined, code, stderr: stderr.join('') };
}

beforeEach(() => {
  // The tests' own environment (a developer's shell) must not decide what they see.
  for (const name of [...ENV, ...ENV_TLS]) vi.stubEnv(name, undefined);
});
afterEach(() => vi.unstubAllEnvs());

const C1_TOML = `# fnn c1
listen = "127.0.0.1:6001"
db = "/var/lib/fnn/file.db"
keys = "/etc/fnn/file-keys"
query-timeout = 7200
metrics = "127.0.0.1:9464"
insecure = true
`;

describe('fnn c1 --config: flag > env > file > default', () => {
  it('takes each setting from the strongest source that names it', async () => {
    const config = file('c1.toml', C1_TOML);
    vi.stubEnv('FNN_DB', '/env/c1.db');
    vi.stubEnv('FNN_KEYS', '/env/keys');
    const { options, code } = await parse(['c1', '--config', config, '--keys', '/flag/keys']);
    expect(code).toBe(0);
    expect(options).toMatchObject({
      keys: '/flag/keys', // flag, over env and file
      db: '/env/c1.db', // env, over file
      listen: '127.0.0.1:6001', // file, over the default
      queryTimeout: '7200', // file, a TOML integer as the flag's string
      metrics: '127.0.0.1:9464',
      insecure: true,
      c2: '127.0.0.1:50052', // the default: named nowhere else
    });
  });

  it('without a file, the defaults and the environment stand', async () => {
    vi.stubEnv('FNN_C1_LISTEN', '127.0.0.1:6002');
    const { options } = await parse(['c1', '--insecure']);
    expect(options).toMatchObject({ listen: '127.0.0.1:6002', db: 'fnn-c1.db', keys: 'keys', queryTimeout: '3600' });
    expect(options?.metrics).toBeUndefined();
  });

  it('reads the file FNN_CONFIG names, and YAML by its extension', async () => {
    const config = file('c2.yaml', 'listen: 127.0.0.1:6003\ndb: /var/lib/fnn/c2.db\ntls-dir: /etc/fnn/c2\n');
    vi.stubEnv('FNN_CONFIG', config);
    const { options, code } = await parse(['c2']);
    expect(code).toBe(0);
    expect(options).toMatchObject({ listen: '127.0.0.1:6003', db: '/var/lib/fnn/c2.db', tlsDir: '/etc/fnn/c2', keys: 'keys' });
  });

  it('a switch given on the command line is not turned off by the file', async () => {
    const config = file('off.toml', 'insecure = false\n');
    const { options } = await parse(['c2', '--config', config, '--insecure']);
    expect(options?.insecure).toBe(true);
  });
});

describe('a bad config file: one line naming the file and the line, exit 2, the daemon not started', () => {
  const refused = async (name: string, text: string, command = 'c1') => {
    const path = file(name, text);
    const run = await parse([command, '--config', path]);
    expect(run.options, 'the daemon started despite a bad config file').toBeUndefined();
    expect(run.code).toBe(2);
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
    return run.stderr.trim();
  };

  it('an unknown key', async () => {
    const line = await refused('typo.toml', 'listen = "127.0.0.1:6004"\n\nlisten-address = "0.0.0.0:1"\n');
    expect(line).toMatch(/^fnn: .*typo\.toml:3: "listen-address" is not an option of fnn c1\. It takes: .*\blisten\b/);
  });

  it("a key of the other daemon (C2's file given to C1 is a mistake, not ignored)", async () => {
    const line = await refused('c2-given-to-c1.yaml', 'db: x.db\nquery-timeout: 60\n', 'c2');
    expect(line).toMatch(/c2-given-to-c1\.yaml:2: "query-timeout" is not an option of fnn c2/);
  });

  it('a value of the wrong type', async () => {
    expect(await refused('switch.toml', 'insecure = "yes"\n')).toMatch(/switch\.toml:1: insecure is a switch: true or false, not a string/);
    expect(await refused('list.toml', 'db = "a.db"\nlisten = ["a:1", "b:2"]\n')).toMatch(
      /list\.toml:2: listen takes one value, not a list/,
    );
    expect(await refused('table.yaml', 'keys:\n  dir: /x\n')).toMatch(/table\.yaml:1: keys takes a string or a number, not a table/);
  });

  it('a file that does not parse, with its line', async () => {
    expect(await refused('broken.toml', 'listen = "127.0.0.1:1"\ndb = \n')).toMatch(/broken\.toml:2: not valid TOML/);
    expect(await refused('broken.yaml', 'listen: 127.0.0.1:1\ndb: [\n')).toMatch(/broken\.yaml:\d+: not valid YAML/);
    expect(await refused('list-at-top.yaml', '- listen\n')).toMatch(/list-at-top\.yaml:1: a config file is a mapping/);
  });

  it('a file that is missing, or of no known format', async () => {
    const missing = await parse(['c1', '--config', join(dir, 'nope.toml')]);
    expect([missing.code, missing.options]).toEqual([2, undefined]);
    expect(missing.stderr.trim()).toMatch(/^fnn: cannot read config file .*nope\.toml \(ENOENT\)\. Check --config or FNN_CONFIG$/);
    expect(await refused('c1.ini', 'listen=1\n')).toMatch(/c1\.ini: its name must end in \.toml, \.yaml or \.yml/);
  });

  it('a file larger than 64 KiB (a database or a log named by mistake)', async () => {
    expect(await refused('huge.toml', `# ${'x'.repeat(64 * 1024)}\nlisten = "127.0.0.1:1"\n`)).toMatch(
      /huge\.toml is larger than 64 KiB: not a config file/,
    );
  });
});

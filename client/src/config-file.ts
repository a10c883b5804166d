import { readFileSync, statSync } from 'node:fs';
import { extname } from 'node:path';
import { CommanderError, InvalidArgumentError, Option, type Command } from 'commander';
import { LineCounter, parseDocument, isMap, isScalar, isSeq, type Node as YamlNode } from 'yaml';

// A daemon's settings from a file, for a service manager (systemd, a
// container): the keys are the command's long option names (listen, db, keys,
// tls-dir, ...). A flag beats the environment, which beats the file, which
// beats the default: commander records where each value came from, and the
// file fills only what is still a default. A file that says something the
// command does not take is refused whole, naming the key and its line, before
// the daemon opens anything: a typo must not silently leave a default (a
// listen address, a database path) in force.

/** A config file larger than this is not a config file (and is not read into memory whole). */
const MAX_CONFIG_BYTES = 64 * 1024;

/** One setting of a file: its value as parsed and the line it is on (1-based), for the error that names it. */
export interface ConfigEntry {
  key: string;
  value: unknown;
  line: number;
}

/** A bad config file: its one-line reason, always naming the file (and the line when there is one). */
export class ConfigError extends Error {}

/** The `--config FILE` option (env FNN_CONFIG) of a command that reads one. */
export const configOption = () =>
  new Option('--config <file>', 'settings from a TOML (.toml) or YAML (.yaml, .yml) file; keys are the long option names').env(
    'FNN_CONFIG',
  );

/** Reads and parses a config file by its extension: its top-level keys, in order, each with its line. */
export async function readConfigFile(path: string): Promise<ConfigEntry[]> {
  const ext = extname(path).toLowerCase();
  if (ext !== '.toml' && ext !== '.yaml' && ext !== '.yml')
    throw new ConfigError(`config file ${path}: its name must end in .toml, .yaml or .yml (the format is chosen by it)`);
  let text: string;
  try {
    // The size first: a wrong --config (a database, a log) is refused without being read.
    if (statSync(path).size > MAX_CONFIG_BYTES)
      throw new ConfigError(`config file ${path} is larger than ${MAX_CONFIG_BYTES / 1024} KiB: not a config file`);
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new ConfigError(`cannot read config file ${path} (${code}). Check --config or FNN_CONFIG`);
  }
  return ext === '.toml' ? tomlEntries(path, text, await import('smol-toml')) : yamlEntries(path, text);
}

// smol-toml is an ES module: loaded with import(), as this CommonJS build cannot require its types.
function tomlEntries(
  path: string,
  text: string,
  toml: typeof import('smol-toml', { with: { 'resolution-mode': 'import' } }),
): ConfigEntry[] {
  let table: Record<string, unknown>;
  try {
    table = toml.parse(text);
  } catch (error) {
    if (error instanceof toml.TomlError) throw new ConfigError(`${path}:${error.line}: not valid TOML: ${firstLine(error.message)}`);
    throw error;
  }
  // smol-toml keeps no positions: a flat file's key is found on the first line that assigns it.
  const lines = text.split('\n');
  const lineOf = (key: string) => {
    const at = lines.findIndex((line) => new RegExp(`^\\s*(["']?)${escapeRegExp(key)}\\1\\s*=`).test(line));
    return at < 0 ? 1 : at + 1;
  };
  return Object.entries(table).map(([key, value]) => ({ key, value, line: lineOf(key) }));
}

function yamlEntries(path: string, text: string): ConfigEntry[] {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const error = doc.errors[0];
    const line = error.linePos?.[0].line ?? lineCounter.linePos(error.pos[0]).line;
    throw new ConfigError(`${path}:${line}: not valid YAML: ${firstLine(error.message)}`);
  }
  const lineAt = (node: YamlNode | null | undefined) => (node?.range ? lineCounter.linePos(node.range[0]).line : 1);
  if (doc.contents === null) return [];
  if (!isMap(doc.contents)) throw new ConfigError(`${path}:${lineAt(doc.contents)}: a config file is a mapping of option names to values`);
  return doc.contents.items.map((pair) => {
    const line = lineAt(pair.key as YamlNode);
    const key = isScalar(pair.key) ? String(pair.key.value) : '';
    const value = pair.value;
    // Plain values only: scalars and lists of scalars, as flags take.
    if (isScalar(value)) return { key, value: value.value, line };
    if (isSeq(value)) return { key, value: value.items.map((item) => (isScalar(item) ? item.value : item)), line };
    return { key, value: value === null ? null : (value as YamlNode).toJSON(), line };
  });
}

/**
 * Sets `command`'s options from the file's entries, each only where its value
 * is still the default (or unset): flags and the environment keep theirs.
 */
export function applyConfig(command: Command, path: string, entries: readonly ConfigEntry[]): void {
  const byKey = new Map<string, Option>();
  for (const option of command.options) {
    const key = option.long?.replace(/^--/, '');
    if (key && key !== 'config' && key !== 'help') byKey.set(key, option);
  }
  for (const { key, value, line } of entries) {
    const where = `${path}:${line}`;
    const option = byKey.get(key);
    if (!option)
      throw new ConfigError(`${where}: "${key}" is not an option of fnn ${command.name()}. It takes: ${[...byKey.keys()].join(', ')}`);
    const parsed = valueFor(option, key, value, where);
    const name = option.attributeName();
    const source = command.getOptionValueSource(name);
    if (source === undefined || source === 'default') command.setOptionValueWithSource(name, parsed, 'config');
  }
}

/** The file's value as commander would have it from the flag, or the reason it cannot be. */
function valueFor(option: Option, key: string, value: unknown, where: string): unknown {
  const takesValue = option.required || option.optional;
  if (!takesValue) {
    if (typeof value !== 'boolean') throw new ConfigError(`${where}: ${key} is a switch: true or false, not ${describe(value)}`);
    return option.negate ? !value : value;
  }
  const one = (v: unknown): string => {
    if (typeof v === 'string') return v;
    if (typeof v === 'number' && Number.isFinite(v)) return String(v);
    throw new ConfigError(`${where}: ${key} takes a string or a number, not ${describe(v)}`);
  };
  const values = Array.isArray(value) ? value.map(one) : [one(value)];
  if (Array.isArray(value) && !option.variadic) throw new ConfigError(`${where}: ${key} takes one value, not a list`);
  if (values.length === 0) throw new ConfigError(`${where}: ${key} takes at least one value`);
  if (!option.parseArg) return option.variadic ? values : values[0];
  try {
    return values.reduce<unknown>((previous, v) => option.parseArg!(v, previous), option.variadic ? undefined : option.defaultValue);
  } catch (error) {
    if (error instanceof InvalidArgumentError) throw new ConfigError(`${where}: ${key}: ${error.message}`);
    throw error;
  }
}

/**
 * Lets `command` read `--config FILE` (or FNN_CONFIG): the file is applied
 * once commander has parsed the flags and the environment, before the action.
 * A bad file is one line on stderr and exit 2 (usage), the action never run.
 */
export function withConfigFile(command: Command): Command {
  return command.addOption(configOption()).hook('preAction', async (_hooked, action) => {
    const path = action.getOptionValue('config') as string | undefined;
    if (path === undefined) return;
    try {
      applyConfig(action, path, await readConfigFile(path));
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      process.stderr.write(`fnn: ${error.message}\n`);
      throw new CommanderError(2, 'fnn.config', error.message);
    }
  });
}

function describe(value: unknown): string {
  if (value === null || value === undefined) return 'an empty value';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a table';
  return `a ${typeof value}`;
}

const firstLine = (message: string) => message.split('\n')[0].trim();
const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

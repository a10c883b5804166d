// Guards docs/ARCHITECTURE.md's "Files" section: every tracked source file has
// a row there, and every row names a file that exists, so the table a new
// engineer reads first cannot drift from the tree. Reads git and the Markdown
// only: no build needed.

import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = execFileSync('git', ['rev-parse', '--show-toplevel'], { cwd: __dirname, encoding: 'utf8' }).trim();
const DOC = 'docs/ARCHITECTURE.md';

/** The source files the table must name: what `git ls-files` tracks, tests and generated code left out. */
function sourceFiles(): string[] {
  const out = execFileSync('git', ['ls-files', '-z', '--', '*.ts', '*.c', '*.h', '*.mjs'], { cwd: ROOT, encoding: 'utf8' });
  return out
    .split('\0')
    .filter((path) => path !== '' && !path.endsWith('.test.ts') && !path.includes('generated/'))
    .sort();
}

/** The first cell of every table row of the Files section, when it is one backticked path. */
function tableEntries(): string[] {
  const lines = readFileSync(join(ROOT, DOC), 'utf8').split('\n');
  const start = lines.findIndex((line) => line.trim() === '## Files');
  if (start < 0) throw new Error(`${DOC} has no "## Files" section`);
  const rest = lines.slice(start + 1);
  const end = rest.findIndex((line) => line.startsWith('## '));
  const entries: string[] = [];
  for (const line of end < 0 ? rest : rest.slice(0, end)) {
    const cell = /^\|\s*`([^`]+)`\s*\|/.exec(line);
    if (cell) entries.push(cell[1]);
  }
  return entries;
}

describe(`${DOC}'s Files tables`, () => {
  const sources = sourceFiles();
  const entries = tableEntries();

  it('finds the tracked sources and the table rows at all', () => {
    expect(sources.length, 'git ls-files found no source file').toBeGreaterThan(0);
    expect(entries.length, `no row of the form | \`path\` | job | under "## Files" in ${DOC}`).toBeGreaterThan(0);
  });

  it('name every tracked source file (tests and generated code aside)', () => {
    const named = new Set(entries);
    const missing = sources.filter((path) => !named.has(path));
    expect(missing, `source files with no row in ${DOC}'s Files tables (add | \`path\` | its job |)`).toEqual([]);
  });

  it('name only files that exist, each once', () => {
    const notFiles = entries.filter((path) => !existsSync(join(ROOT, path)) || !statSync(join(ROOT, path)).isFile());
    expect(notFiles, `rows of ${DOC}'s Files tables that name no file (paths are from the repository root)`).toEqual([]);
    const twice = entries.filter((path, i) => entries.indexOf(path) !== i);
    expect(twice, `files with more than one row in ${DOC}'s Files tables`).toEqual([]);
  });
});

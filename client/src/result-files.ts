import { accessSync, constants, existsSync, mkdirSync, rmdirSync, statSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { CliError } from './output';

// Where a query's results go with --out DIR: the directory made (or checked)
// before any key is read or any pixel encrypted, so a path that cannot be
// written costs nothing; and the names of the files in it.

/**
 * Make --out (and its missing parents) or check the existing one is a
 * writable directory. Not mkdirSync's `recursive`: on Node 20 it never
 * returns for a parent that exists but refuses children (`/proc/nope` spins
 * at 100% CPU), so each level is made on its own and a refusal ends it.
 */
export function prepareOutDir(dir: string): void {
  const missing: string[] = [];
  let at = resolve(dir);
  while (!existsSync(at)) {
    missing.unshift(at);
    const parent = dirname(at);
    if (parent === at) break;
    at = parent;
  }
  if (!statSync(at).isDirectory())
    throw new CliError('usage', `--out ${dir}: ${at} is a file, not a directory. --out names a directory for the neighbour images`);
  if (missing.length === 0) {
    try {
      accessSync(at, constants.W_OK);
    } catch {
      throw new CliError('usage', `--out ${dir} is not writable by you. Choose another directory`);
    }
    return;
  }
  const made: string[] = [];
  for (const level of missing) {
    try {
      mkdirSync(level);
      made.push(level);
    } catch (error) {
      for (const m of made.reverse()) rmdirSync(m);
      const code = (error as NodeJS.ErrnoException).code ?? 'failed';
      throw new CliError('usage', `--out ${dir} cannot be created (${code} at ${level}). Choose a directory you can write to`);
    }
  }
}

/** The file-name stem of a query's outputs: `scan.png` -> scan, `vol.nii.gz#z012` -> vol-z012 (slices must not collide). */
export function queryStem(tag: string): string {
  const name = basename(tag);
  const hash = name.lastIndexOf('#');
  // A file may be named with a '#': then it is the whole name, not FILE#frame.
  const [file, label] = hash > 0 && !existsSync(tag) ? [name.slice(0, hash), name.slice(hash + 1)] : [name, ''];
  const base = file.replace(/\.nii\.gz$/i, '').replace(/\.[^.]*$/, '') || file;
  return safeName(label ? `${base}-${label}` : base);
}

/** A record ID without its image extension: `ch2-z166.png` -> ch2-z166, `vol.nii.gz#z012` -> vol-z012. */
export function idStem(id: string): string {
  const hash = id.lastIndexOf('#');
  const [file, label] = hash > 0 ? [id.slice(0, hash), id.slice(hash + 1)] : [id, ''];
  const base = file.replace(/\.(png|dcm|nii|nii\.gz)$/i, '') || file;
  return safeName(label ? `${base}-${label}` : base);
}

/** The k-th neighbour's PNG: `q-nn1-ch2-z166.png` (query, rank, neighbour), one name per query and rank. */
export const neighbourFileName = (queryTag: string, rank: number, id: string) => `${queryStem(queryTag)}-nn${rank}-${idStem(id)}.png`;

/** File-name safe, bounded: an ID is the owner's text and may hold anything. */
export const safeName = (text: string) => text.replace(/[^\w.-]+/g, '_').slice(0, 100);

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { decodePng, type GrayImage } from '@fnn/shared';
import { CliError } from './output';

const IMAGE_EXTENSIONS = ['.png'];

/** Files named on the command line, directories expanded (sorted, one level). */
export function expandImagePaths(paths: string[]): string[] {
  const out: string[] = [];
  for (const p of paths) {
    let st;
    try {
      st = statSync(p);
    } catch {
      throw new CliError('usage', `${p}: no such file or directory`);
    }
    if (st.isDirectory()) {
      const files = readdirSync(p)
        .filter((f) => IMAGE_EXTENSIONS.some((e) => f.toLowerCase().endsWith(e)))
        .sort();
      if (files.length === 0) throw new CliError('usage', `${p}: no PNG images in this directory`);
      out.push(...files.map((f) => join(p, f)));
    } else out.push(p);
  }
  return out;
}

export function readImage(path: string): GrayImage {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch {
    throw new CliError('usage', `${path}: cannot be read`);
  }
  try {
    return decodePng(bytes, basename(path));
  } catch (e) {
    throw new CliError('usage', (e as Error).message);
  }
}

/** The record ID of a file: its name. */
export const recordIdOf = (path: string) => basename(path);

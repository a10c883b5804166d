import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CliError } from './output';
import { idStem, neighbourFileName, prepareOutDir, queryStem } from './result-files';

// --out made or refused at once, and the names of the files written into it.

let work: string;
beforeAll(() => (work = mkdtempSync(join(tmpdir(), 'fnn-out-'))));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const refusal = (dir: string) => {
  try {
    prepareOutDir(dir);
  } catch (error) {
    return error as CliError;
  }
  throw new Error(`--out ${dir} was accepted`);
};

describe('--out', () => {
  it('makes a directory and its missing parents', () => {
    prepareOutDir(join(work, 'a', 'b', 'c'));
    expect(statSync(join(work, 'a', 'b', 'c')).isDirectory()).toBe(true);
    prepareOutDir(join(work, 'a')); // an existing directory is fine
  });

  it('refuses at once a directory that cannot be made (/proc/nope: Node 20 spins there with recursive mkdir)', () => {
    const started = Date.now();
    const error = refusal('/proc/nope/deeper');
    expect(error.kind).toBe('usage');
    expect(error.message).toBe('--out /proc/nope/deeper cannot be created (ENOENT at /proc/nope). Choose a directory you can write to');
    expect(Date.now() - started).toBeLessThan(1000);
    expect(existsSync('/proc/nope')).toBe(false);
  });

  it('refuses an existing file, and a file on the way', () => {
    const file = join(work, 'results.png');
    writeFileSync(file, 'x');
    expect(refusal(file).message).toBe(
      `--out ${file}: ${file} is a file, not a directory. --out names a directory for the neighbour images`,
    );
    expect(refusal(join(file, 'below')).kind).toBe('usage');
  });
});

describe('file names', () => {
  it('neighbour PNGs: query, rank and ID, without a doubled extension', () => {
    expect(neighbourFileName('q/scan.png', 1, 'ch2-z166.png')).toBe('scan-nn1-ch2-z166.png');
    expect(neighbourFileName('vol.nii.gz#z012', 2, 'ch2.nii.gz#z166')).toBe('vol-z012-nn2-ch2-z166.png');
  });

  it('an ID keeps what is not an image extension, and anything unsafe in a file name becomes _', () => {
    expect(idStem('patient.1234')).toBe('patient.1234');
    expect(idStem('scan#frame3')).toBe('scan-frame3');
    expect(idStem('../../etc/passwd')).toBe('.._.._etc_passwd');
    expect(idStem('x'.repeat(300)).length).toBe(100);
    expect(queryStem(join(work, 'vol.png#z3'))).toBe('vol-z3');
    writeFileSync(join(work, 'a#b.png'), 'x'); // a file named with '#' is the whole name
    expect(queryStem(join(work, 'a#b.png'))).toBe('a_b');
  });
});

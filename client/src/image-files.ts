import { closeSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import {
  centerFit,
  decodePng,
  isDicomPart10,
  openImageStack,
  type GrayImage,
  type ImageStack,
  type PixelRule,
  type SliceAxis,
} from '@fnn/shared';
import { CliError } from './output';

// The CLI's side of reading images: which files a path names, the flags that
// make a collection's pixel rule and size, and record IDs. Decoding is in
// @fnn/shared (bytes in, GrayImage out).

const IMAGE_EXTENSIONS = ['.png', '.dcm', '.dicom', '.nii', '.nii.gz'];

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
        .filter((f) => !f.startsWith('.'))
        .sort()
        .filter((f) => IMAGE_EXTENSIONS.some((e) => f.toLowerCase().endsWith(e)) || isExtensionlessDicom(join(p, f)));
      if (files.length === 0) throw new CliError('usage', `${p}: no PNG, DICOM or NIfTI images in this directory`);
      out.push(...files.map((f) => join(p, f)));
    } else out.push(p);
  }
  return out;
}

/** Scanners often name DICOM files IM0001 or 1.2.840...: look for the Part 10 marker. */
function isExtensionlessDicom(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    const fd = openSync(path, 'r');
    try {
      const head = Buffer.alloc(132);
      return readSync(fd, head, 0, 132, 0) === 132 && isDicomPart10(head);
    } finally {
      closeSync(fd);
    }
  } catch {
    return false;
  }
}

/** How a collection's images are read: the same for its uploads and its queries. */
export interface ImageOptions {
  rule: PixelRule;
  /** The collection's image size, when given with --size. */
  size?: { width: number; height: number };
  /** What to do with another size: refuse (default) or center-crop/pad with 0. */
  fit: 'refuse' | 'crop';
  /** NIfTI: the voxel axis to slice along. */
  axis: SliceAxis;
  /** The fit is the collection's own (collection-settings.ts): a refusal cannot suggest another. */
  fitRemembered?: boolean;
}

export interface ImageFlags {
  offset?: string;
  size?: string;
  fit?: string;
  axis?: string;
}

export function parseImageOptions(flags: ImageFlags): ImageOptions {
  const offset = Number(flags.offset ?? '0');
  if (!Number.isSafeInteger(offset) || Math.abs(offset) > 1 << 20)
    throw new CliError('usage', `--offset must be an integer (e.g. 1024 for CT in Hounsfield units), not "${flags.offset}"`);
  let size: ImageOptions['size'];
  if (flags.size !== undefined) {
    const m = /^(\d{1,5})x(\d{1,5})$/i.exec(flags.size.trim());
    if (!m || Number(m[1]) < 1 || Number(m[2]) < 1)
      throw new CliError('usage', `--size must be WIDTHxHEIGHT, e.g. 256x256, not "${flags.size}"`);
    size = { width: Number(m[1]), height: Number(m[2]) };
  }
  const fit = flags.fit ?? 'refuse';
  if (fit !== 'refuse' && fit !== 'crop') throw new CliError('usage', `--fit must be refuse or crop, not "${fit}"`);
  const axis = flags.axis ?? 'z';
  if (axis !== 'x' && axis !== 'y' && axis !== 'z') throw new CliError('usage', `--axis must be x, y or z, not "${axis}"`);
  return { rule: { offset }, size, fit, axis };
}

function readBytes(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch {
    throw new CliError('usage', `${path}: cannot be read`);
  }
}

/** A PNG, synchronously: the demo and the benchmark read their own PNGs this way. */
export function readImage(path: string): GrayImage {
  const bytes = readBytes(path);
  try {
    return decodePng(bytes, basename(path));
  } catch (e) {
    throw new CliError('usage', (e as Error).message);
  }
}

/** A file's images, or a CliError naming the file and the reason. */
export async function openImageFile(path: string, options: Pick<ImageOptions, 'axis'>): Promise<ImageStack> {
  return openImageBytes(readBytes(path), basename(path), options);
}

/** A file's bytes however they came (read from disk, pulled from a PACS, dropped into the viewer), decoded the one way. */
export async function openImageBytes(bytes: Uint8Array, name: string, options: Pick<ImageOptions, 'axis'>): Promise<ImageStack> {
  try {
    return await openImageStack(bytes, name, { axis: options.axis });
  } catch (e) {
    throw new CliError('usage', (e as Error).message);
  }
}

/** How the upload's two passes open a source by its name: a file on disk unless the images come from elsewhere. */
export type OpenImages = (name: string, options: Pick<ImageOptions, 'axis'>) => Promise<ImageStack>;

/**
 * What names a record (`fnn upload --id-from`): `sop`, a DICOM's SOP Instance
 * UID, so that one instance is one record whatever its encoding or file name;
 * `file`, the file name. PNG and NIfTI have no UID and always use their name.
 */
export type IdFrom = 'file' | 'sop';

/** How an upload names its records: --id (one file's base name) or --id-from. */
export interface RecordNaming {
  id?: string;
  from: IdFrom;
}

export function parseIdFrom(flag: string | undefined): IdFrom {
  const from = flag ?? 'sop';
  if (from !== 'file' && from !== 'sop') throw new CliError('usage', `--id-from must be sop or file, not "${flag}"`);
  return from;
}

/**
 * The record ID of image i of a file: `base` or `base#label` (`#frame3` for a
 * DICOM frame, `#z012` for a NIfTI slice), where base is --id when given, else
 * the DICOM's SOP Instance UID under `--id-from sop` (when the file has a
 * well-formed one), else the file's name.
 */
export function recordIdOf(path: string, stack?: ImageStack, i = 0, id?: string, from: IdFrom = 'file'): string {
  const base = id ?? (from === 'sop' ? stack?.sopInstanceUid : undefined) ?? basename(path);
  const label = stack?.label(i) ?? '';
  return label ? `${base}#${label}` : base;
}

const sizeText = (s: { width: number; height: number }) => `${s.width}x${s.height}`;

/**
 * Image i under the rule, brought to `target` by --fit; a different size
 * without --fit crop is refused with a message that says what to do.
 */
export function ruledImage(stack: ImageStack, i: number, options: ImageOptions, target?: { width: number; height: number }): GrayImage {
  let image: GrayImage;
  try {
    image = stack.image(i, options.rule);
  } catch (e) {
    throw new CliError('usage', (e as Error).message);
  }
  if (!target || (image.width === target.width && image.height === target.height)) return image;
  if (options.fit === 'crop') return centerFit(image, target.width, target.height);
  throw sizeRefusal(stack.name, image, target, options.fitRemembered);
}

export function sizeRefusal(
  name: string,
  got: { width: number; height: number },
  want: { width: number; height: number },
  fitRemembered = false,
) {
  const what = `${name}: ${sizeText(got)}, but the collection's images are ${sizeText(want)}`;
  return new CliError(
    'usage',
    fitRemembered
      ? `${what}, and it refuses other sizes (it was created with --fit refuse)`
      : `${what}: pass --fit crop to center-crop/pad it to ${sizeText(want)}`,
  );
}

/**
 * The one image a query names: a file, or one image of a multi-image file as
 * `file#frame3` / `vol.nii.gz#z012` (the record ID's suffix).
 */
export async function readQueryImage(path: string, options: ImageOptions): Promise<GrayImage> {
  let file = path;
  let label: string | undefined;
  const hash = path.lastIndexOf('#');
  if (hash > 0 && !existsAsFile(path)) {
    file = path.slice(0, hash);
    label = path.slice(hash + 1);
  }
  const stack = await openImageFile(file, options);
  let index = 0;
  if (label !== undefined) {
    index = Array.from({ length: stack.count }, (_, i) => stack.label(i)).indexOf(label);
    if (index < 0) throw new CliError('usage', `${file}: has no image ${label} (${describeLabels(stack)})`);
  } else if (stack.count > 1) {
    throw new CliError(
      'usage',
      `${file}: holds ${stack.count} images (${describeLabels(stack)}); a query is one: name it as ${basename(file)}#${stack.label(0)}`,
    );
  }
  if (options.fit === 'crop' && !options.size)
    throw new CliError('usage', "--fit crop needs --size WIDTHxHEIGHT (the collection's image size)");
  return ruledImage(stack, index, options, options.size);
}

const describeLabels = (s: ImageStack) => (s.count > 1 ? `${s.label(0)}..${s.label(s.count - 1)}` : 'one image');

function existsAsFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** One query of a batch: its name (the tag C1 echoes) and its image, or why it cannot be read. */
export type BatchImage = { name: string; image: GrayImage } | { name: string; error: unknown };

/**
 * Every image a batch names, one at a time: a file is one query per image
 * (`file#frame3`, `vol.nii.gz#z012`, named as uploads name records), and
 * `FILE#label` names one image. A file that cannot be read, or an image that
 * breaks the size rule, is one failed query; the batch goes on.
 */
export async function* batchImages(paths: string[], options: ImageOptions): AsyncGenerator<BatchImage> {
  if (options.fit === 'crop' && !options.size)
    throw new CliError('usage', "--fit crop needs --size WIDTHxHEIGHT (the collection's image size)");
  // Every path is checked before the first query goes out: a typo fails the batch at once.
  const sources = paths.map((path) =>
    path.lastIndexOf('#') > 0 && !existsAsPath(path)
      ? { kind: 'one' as const, path }
      : { kind: 'files' as const, files: expandImagePaths([path]) },
  );
  for (const source of sources) {
    if (source.kind === 'one') {
      yield await readOne(source.path, () => readQueryImage(source.path, options));
      continue;
    }
    for (const file of source.files) {
      let stack: ImageStack;
      try {
        stack = await openImageFile(file, options);
      } catch (error) {
        yield { name: file, error };
        continue;
      }
      for (let i = 0; i < stack.count; i++) {
        const name = recordIdOf(file, stack, i, file);
        yield await readOne(name, async () => ruledImage(stack, i, options, options.size));
      }
    }
  }
}

async function readOne(name: string, read: () => Promise<GrayImage>): Promise<BatchImage> {
  try {
    return { name, image: await read() };
  } catch (error) {
    return { name, error };
  }
}

function existsAsPath(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch {
    return false;
  }
}

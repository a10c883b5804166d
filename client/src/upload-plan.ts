import type { NamedImage } from '@fnn/shared';
import { openImageFile, recordIdOf, ruledImage, sizeRefusal, type ImageOptions, type RecordNaming } from './image-files';
import { CliError } from './output';
import { recordMetadata, type MetadataOptions } from './record-labels';

// Planning an upload (`fnn upload`, pass 1 and the decoding of pass 2): which
// files hold how many records of which size and depth, decided before any
// encryption and without the network, so that a mis-sized or unreadable file
// is refused by name while the others go on.

export type Size = { width: number; height: number };

/** What C1's Status says of the collection: zero width for an empty one. */
export interface CollectionShape {
  width: number;
  height: number;
  maxValue: number;
}

export interface PlannedFile {
  file: string;
  /** Records the file holds (frames of a DICOM, slices of a NIfTI, 1 for a PNG). */
  count: number;
}

export interface UploadPlan {
  files: PlannedFile[];
  /** Records of all planned files: the progress bar's total. */
  total: number;
  /** The size every record must have: --size, the collection's, or that of the first file whose images pass every check. */
  target: Size | undefined;
  /** The pixel depth every record must have: the collection's, else the first record's. */
  depth: number | undefined;
}

const depthText = (maxValue: number) => (maxValue === 255 ? '8-bit (0..255)' : '16-bit (0..65535)');

/** The size the records must have, from --size and the collection; a contradiction is a usage error. */
export function targetSize(options: ImageOptions, collection: CollectionShape): Size | undefined {
  const stored: Size | undefined = collection.width ? { width: collection.width, height: collection.height } : undefined;
  if (options.size && stored && (options.size.width !== stored.width || options.size.height !== stored.height)) {
    throw new CliError(
      'usage',
      `--size ${options.size.width}x${options.size.height} differs from the collection's ${stored.width}x${stored.height}`,
    );
  }
  const target = options.size ?? stored;
  if (options.fit === 'crop' && !target) {
    throw new CliError('usage', '--fit crop needs --size WIDTHxHEIGHT: the collection is empty, so it has no size yet');
  }
  return target;
}

/**
 * Pass 1: opens every file (headers only) to count its records and refuse a
 * mis-sized or unreadable one before anything is encrypted. `refused` hears
 * each refused file; the plan holds the others.
 */
export async function planUpload(
  files: string[],
  options: ImageOptions,
  collection: CollectionShape,
  naming: RecordNaming,
  refused: (file: string, id: string, error: unknown) => void,
): Promise<UploadPlan> {
  let target = targetSize(options, collection);
  const planned: PlannedFile[] = [];
  for (const file of files) {
    try {
      const stack = await openImageFile(file, options);
      if (!target) {
        // An empty collection takes the size of its first image that will be
        // stored: this file's images are ruled now (one file's decoding, once),
        // so one refused for its values does not fix the size of the rest.
        for (let i = 0; i < stack.count; i++) ruledImage(stack, i, options, undefined);
        target = { width: stack.width, height: stack.height };
      }
      if (options.fit === 'refuse' && (stack.width !== target.width || stack.height !== target.height)) {
        throw sizeRefusal(stack.name, stack, target, options.fitRemembered);
      }
      planned.push({ file, count: stack.count });
    } catch (error) {
      refused(file, recordIdOf(file, undefined, 0, naming.id), error);
    }
  }
  return { files: planned, total: planned.reduce((sum, p) => sum + p.count, 0), target, depth: collection.maxValue || undefined };
}

/**
 * Pass 2, one file: all its records decoded and ruled at once, so a bad frame
 * fails the whole file before any of it is stored. The first record of an
 * empty collection fixes the plan's depth. Each record carries the metadata
 * sealed with it: its DICOM header's (record-metadata.ts; patient identity
 * only with `keepPatientIdentity`) and its label.
 */
export async function readPlannedFile(
  plan: UploadPlan,
  file: string,
  options: ImageOptions,
  naming: RecordNaming,
  metadata?: MetadataOptions,
): Promise<NamedImage[]> {
  const stack = await openImageFile(file, options);
  return Array.from({ length: stack.count }, (_, i) => {
    let image = ruledImage(stack, i, options, plan.target);
    plan.depth ??= image.maxValue;
    // 8-bit values are valid 16-bit values: only the declared range changes.
    if (image.maxValue < plan.depth) image = { ...image, maxValue: plan.depth };
    if (image.maxValue !== plan.depth) {
      throw new CliError(
        'usage',
        `${stack.name}: its pixel depth is ${depthText(image.maxValue)}, the collection's ${depthText(plan.depth)} ` +
          '(a collection keeps the depth of its first upload, which the file type and --offset decide)',
      );
    }
    const id = recordIdOf(file, stack, i, naming.id, naming.from);
    const header = stack.metadata?.(i, { keepPatientIdentity: metadata?.keepPatientIdentity ?? false });
    const sealed = recordMetadata(header, id, metadata);
    return { id, image, ...(sealed ? { metadata: sealed } : {}) };
  });
}

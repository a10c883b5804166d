import type { Layout, Transport } from '@fnn/shared';
import { call, checkAddress, connectC1, connectReplica } from '../connect';
import { expandImagePaths, openImageFile, parseImageOptions, recordIdOf, ruledImage, sizeRefusal, type ImageFlags } from '../image-files';
import { loadC1PublicKey, loadPublicKey, loadRecordKey } from '../key-files';
import type { NamedImage } from '@fnn/shared';
import { grpcOwnerLink, openCollectionWriter } from '../owner-upload';
import { CliError, classify, EXIT, type Output } from '../output';
import { progressBar } from '../progress';

export interface UploadOptions extends ImageFlags {
  c1: string;
  c2: string;
  keys: string;
  id?: string;
  /** What to store: the packed layout, and the paper's per-pixel one unless --no-paper-layout (then fnn and bf cannot run). */
  layouts: Layout[];
  transport: Transport;
}

type Size = { width: number; height: number };

/** Groups' worth of records read before encrypting: fills partial groups and bounds memory. */
const BATCH_GROUPS = 4;

const depthText = (maxValue: number) => (maxValue === 255 ? '8-bit (0..255)' : '16-bit (0..65535)');

/**
 * `fnn upload`: every image of every file (a PNG, each frame of a DICOM, each
 * slice of a NIfTI volume) is encrypted and sent as its own request, so each
 * is one transaction at C1: a failure leaves the others stored and nothing
 * half-written. A file that cannot be read is reported by name and skipped.
 *
 * Two passes: the first opens every file (headers) to count the records for
 * the progress bar and to refuse unreadable or mis-sized files before any
 * encryption; the second decodes one file at a time (all its images, so a
 * bad frame fails the whole file before any of it is stored) and uploads.
 */
export async function upload(out: Output, paths: string[], options: UploadOptions) {
  const address = checkAddress(options.c1, '--c1', 'FNN_C1');
  const replicaAddress = checkAddress(options.c2, '--c2', 'FNN_C2');
  const files = expandImagePaths(paths);
  if (options.id !== undefined && files.length !== 1) throw new CliError('usage', '--id names the records of one file: give one file');
  const imageOptions = parseImageOptions(options);
  // Read now, so a missing key file is reported before any image is opened.
  loadPublicKey(options.keys);
  loadC1PublicKey(options.keys);
  loadRecordKey(options.keys);
  const client = connectC1(address, options.transport);
  const replica = connectReplica(replicaAddress, options.transport);
  let owner: ReturnType<typeof openCollectionWriter> | undefined;
  const started = Date.now();
  let stored = 0;
  let notUploaded = 0;
  let total = 0;
  try {
    // The collection's size and depth, so that a mismatch is caught here,
    // with a message that says what to do, rather than refused by C1 after
    // the image has been encrypted.
    const shape = await call(client.status.bind(client), {}, 30_000);
    const collection: Size | undefined = shape.width ? { width: shape.width, height: shape.height } : undefined;
    if (
      imageOptions.size &&
      collection &&
      (imageOptions.size.width !== collection.width || imageOptions.size.height !== collection.height)
    ) {
      throw new CliError(
        'usage',
        `--size ${imageOptions.size.width}x${imageOptions.size.height} differs from the collection's ${collection.width}x${collection.height}`,
      );
    }
    let target: Size | undefined = imageOptions.size ?? collection;
    if (imageOptions.fit === 'crop' && !target) {
      throw new CliError('usage', '--fit crop needs --size WIDTHxHEIGHT: the collection is empty, so it has no size yet');
    }
    let depth = shape.maxValue || undefined;

    // Quiet until pass 1 has counted the records.
    let bar = progressBar(0, 'records', false);
    const failed = (file: string, id: string, error: unknown, records: number, where: string) => {
      notUploaded += records;
      const { reason } = classify(error);
      bar.around(() => out.result({ file, id, status: 'failed', error: reason }, `${where}${file}: FAILED: ${reason}`));
      // C1 is down, or refuses this certificate: the rest would fail too
      if (classify(error).code === EXIT.unavailable || classify(error).code === EXIT.refused) throw error;
    };

    const plan: { file: string; count: number }[] = [];
    for (const file of files) {
      try {
        const stack = await openImageFile(file, imageOptions);
        // An empty collection takes the size of its first image.
        target ??= { width: stack.width, height: stack.height };
        if (imageOptions.fit === 'refuse' && (stack.width !== target.width || stack.height !== target.height)) {
          throw sizeRefusal(stack.name, stack, target);
        }
        plan.push({ file, count: stack.count });
      } catch (error) {
        failed(file, recordIdOf(file, undefined, 0, options.id), error, 1, '');
      }
    }
    total = plan.reduce((sum, p) => sum + p.count, 0);
    bar = progressBar(total, 'records', !out.json);
    owner = plan.length > 0 ? openCollectionWriter(grpcOwnerLink(client, replica), options.keys, options.layouts) : undefined;
    // Records wait here until a few groups' worth are read: a group is encrypted in one go.
    let pending: (NamedImage & { file: string })[] = [];
    let n = 0;
    const flush = async () => {
      const batch = pending;
      pending = [];
      const fileOf = new Map(batch.map((r) => [r.id, r.file]));
      const reported = new Set<string>();
      await owner!.writer
        .upload(batch, (outcome) => {
          for (const id of outcome.ids) reported.add(id);
          for (const id of outcome.ids) {
            n++;
            bar.tick();
            const file = fileOf.get(id)!;
            if (outcome.ok) {
              stored++;
              const status = outcome.replaced.has(id) ? 'replaced' : 'stored';
              bar.around(() =>
                out.result({ file, id, status, total: outcome.total }, `[${n}/${total}] ${id}: ${status} (${outcome.total} records)`),
              );
            } else failed(file, id, outcome.error, 1, `[${n}/${total}] `);
          }
        })
        .catch((error) => {
          // Refused before any group was written (slot allocation): every record of the batch failed.
          // Or a group failed because C1 or C2 is unreachable (failed() threw it to stop the upload):
          // the records not reported yet failed too, and the upload stops with that error (exit 5 or 6)
          // even when it was the batch's last group.
          for (const r of batch.filter((b) => !reported.has(b.id))) {
            n++;
            bar.tick();
            failed(r.file, r.id, error, 1, `[${n}/${total}] `);
          }
          const { code } = classify(error);
          if (code === EXIT.unavailable || code === EXIT.refused) throw error;
        });
    };
    try {
      for (const { file, count } of plan) {
        let records: NamedImage[];
        try {
          const stack = await openImageFile(file, imageOptions);
          records = Array.from({ length: stack.count }, (_, i) => {
            let image = ruledImage(stack, i, imageOptions, target);
            depth ??= image.maxValue;
            // 8-bit values are valid 16-bit values: only the declared range changes.
            if (image.maxValue < depth) image = { ...image, maxValue: depth };
            if (image.maxValue !== depth) {
              throw new CliError(
                'usage',
                `${stack.name}: its pixel depth is ${depthText(image.maxValue)}, the collection's ${depthText(depth)} ` +
                  '(a collection keeps the depth of its first upload, which the file type and --offset decide)',
              );
            }
            return { id: recordIdOf(file, stack, i, options.id), image };
          });
        } catch (error) {
          n += count;
          bar.tick(count);
          failed(file, recordIdOf(file, undefined, 0, options.id), error, count, `[${n}/${total}] `);
          continue;
        }
        for (const record of records) {
          // The same ID again (a file given twice): upload the earlier one first, so the later one replaces it.
          if (pending.some((p) => p.id === record.id)) await flush();
          pending.push({ ...record, file });
          if (pending.length >= BATCH_GROUPS * owner!.writer.params(record.image).groupSize) await flush();
        }
      }
      if (pending.length > 0) await flush();
    } finally {
      bar.stop();
    }
  } finally {
    client.close();
    replica.close();
    await owner?.close();
  }
  out.note(
    `uploaded ${stored} of ${total} images from ${files.length} file${files.length === 1 ? '' : 's'} in ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
  if (notUploaded > 0)
    throw new CliError('invalid', `${notUploaded} image${notUploaded === 1 ? ' was' : 's were'} not uploaded (see the FAILED lines)`);
}

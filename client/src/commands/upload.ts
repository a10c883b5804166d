import { basename } from 'node:path';
import type * as wire from '@fnn/proto';
import { DEFAULT_COLLECTION, describeGrpcError, type Transport } from '@fnn/shared';
import { rememberedImageOptions, rememberedLayouts, rememberedOf } from '../collection-settings';
import { collectionFlag } from '../collections';
import { call, checkAddress, connectC1, connectReplica } from '../connect';
import { expandImagePaths, parseIdFrom, parseImageOptions, recordIdOf, type ImageFlags, type RecordNaming } from '../image-files';
import { loadC1PublicKey, loadPublicKey, loadRecordKey } from '../key-files';
import { grpcOwnerLink, openCollectionWriter } from '../owner-upload';
import { CliError, classify, EXIT, ownerOnly, type Output } from '../output';
import { progressBar } from '../progress';
import { readLabels, type MetadataOptions } from '../record-labels';
import { planUpload, readPlannedFile } from '../upload-plan';
import { sendPlan } from '../upload-send';

export interface UploadOptions extends ImageFlags {
  c1: string;
  c2: string;
  keys: string;
  id?: string;
  /** --id-from: sop (default: a DICOM's SOP Instance UID) or file (the file name). */
  idFrom?: string;
  /** --labels FILE.csv: ID,label rows, each label sealed with its record. */
  labels?: string;
  /** --keep-patient-identity: seal PatientName and PatientID too (left out by default). */
  keepPatientIdentity?: boolean;
  /**
   * --paper-layout (true), --no-paper-layout (false: only the packed layout,
   * so fnn and bf cannot run) or neither: the collection's, both for a new one.
   */
  paperLayout?: boolean;
  /** The collection to upload into (--collection), created by its first upload; the default one when absent. */
  collection?: string;
  transport: Transport;
}

/** A record named by its SOP Instance UID (or --id) also names the file it came from. */
const fromFile = (file: string, id: string) => (id.startsWith(basename(file)) ? '' : ` (${basename(file)})`);

/** What C1's Status would say of a collection created by this upload: empty, no size, no settings. */
const NEW_COLLECTION: wire.DatabaseStatus = {
  records: 0n,
  width: 0,
  height: 0,
  maxValue: 0,
  keyBits: 0,
  keyFingerprint: '',
  c2Reachable: true,
  layouts: [],
  settings: undefined,
};

/** C1 is down, or refuses this certificate: the rest of the upload would fail too. */
const stops = (code: number) => code === EXIT.unavailable || code === EXIT.refused;

/**
 * `fnn upload`: every image of every file (a PNG, each frame of a DICOM, each
 * slice of a NIfTI volume) is encrypted and sent as its own request, so each
 * is one transaction at C1: a failure leaves the others stored and nothing
 * half-written. A file that cannot be read is reported by name and skipped.
 *
 * Two passes: planning (upload-plan.ts) opens every file (headers) to count
 * the records for the progress bar and to refuse unreadable or mis-sized
 * files before any encryption; sending (upload-send.ts) decodes one file at a
 * time (all its images, so a bad frame fails the whole file before any of it
 * is stored) and uploads. This command keeps the flags and the output.
 */
export async function upload(out: Output, paths: string[], options: UploadOptions) {
  const address = checkAddress(options.c1, '--c1', 'FNN_C1');
  const replicaAddress = checkAddress(options.c2, '--c2', 'FNN_C2');
  const collection = collectionFlag(options.collection);
  const files = expandImagePaths(paths);
  if (options.id !== undefined && files.length !== 1) throw new CliError('usage', '--id names the records of one file: give one file');
  parseImageOptions(options); // a malformed flag is reported before anything is read or connected
  const naming: RecordNaming = { id: options.id, from: parseIdFrom(options.idFrom) };
  const metadata: MetadataOptions = {
    keepPatientIdentity: options.keepPatientIdentity === true,
    labels: options.labels === undefined ? undefined : readLabels(options.labels),
  };
  // Read now, so a missing key file is reported before any image is opened.
  loadPublicKey(options.keys, 'owner');
  loadC1PublicKey(options.keys, 'owner');
  loadRecordKey(options.keys, 'owner');
  const client = connectC1(address, options.transport, collection);
  const replica = connectReplica(replicaAddress, options.transport, collection);
  let owner: ReturnType<typeof openCollectionWriter> | undefined;
  const started = Date.now();
  let stored = 0;
  let notUploaded = 0;
  let total = 0;
  try {
    // The collection's size and depth, so that a mismatch is caught here,
    // with a message that says what to do, rather than refused by C1 after
    // the image has been encrypted.
    const shape = await call(client.status.bind(client), {}, 30_000).catch((error: unknown) => {
      // A collection C1 does not hold yet: this upload creates it (AllocateSlots), as an empty one takes its first image's size.
      if (collection !== DEFAULT_COLLECTION && describeGrpcError(error)?.code === 'NOT_FOUND') return NEW_COLLECTION;
      throw error;
    });
    // What the collection was made with, applied to this upload before any image is read or encrypted.
    const remembered = rememberedOf(shape);
    const imageOptions = rememberedImageOptions(options, remembered);
    const layouts = rememberedLayouts(options.paperLayout, remembered);
    // Quiet until pass 1 has counted the records.
    let bar = progressBar(0, 'records', false);
    const failed = (file: string, id: string, cause: unknown, records: number, where: string) => {
      notUploaded += records;
      const error = ownerOnly(cause, 'upload');
      const { reason, code } = classify(error);
      bar.around(() => out.result({ file, id, status: 'failed', error: reason }, `${where}${file}: FAILED: ${reason}`));
      if (stops(code)) throw error;
    };
    const plan = await planUpload(files, imageOptions, shape, naming, (file, id, error) => failed(file, id, error, 1, ''));
    total = plan.total;
    bar = progressBar(total, 'records', !out.json);
    owner =
      plan.files.length > 0
        ? openCollectionWriter(grpcOwnerLink(client, replica), options.keys, layouts, {
            offset: imageOptions.rule.offset,
            fit: imageOptions.fit,
          })
        : undefined;
    let n = 0;
    const position = (count = 1) => {
      n += count;
      bar.tick(count);
      return `[${n}/${total}] `;
    };
    try {
      if (owner)
        await sendPlan(
          plan,
          owner.writer,
          (file) => readPlannedFile(plan, file, imageOptions, naming, metadata),
          {
            stored: (file, id, replaced, records) => {
              stored++;
              const status = replaced ? 'replaced' : 'stored';
              const where = position();
              bar.around(() =>
                out.result({ file, id, status, total: records }, `${where}${id}${fromFile(file, id)}: ${status} (${records} records)`),
              );
            },
            failed: (file, id, error) => failed(file, id, error, 1, position()),
            unreadable: (file, error, count) => failed(file, recordIdOf(file, undefined, 0, options.id), error, count, position(count)),
          },
          (error) => stops(classify(error).code),
        );
    } finally {
      bar.stop();
    }
  } finally {
    client.close();
    replica.close();
    await owner?.close();
  }
  const unmatched = metadata.labels?.unmatched() ?? [];
  if (unmatched.length > 0) {
    const shown = unmatched.slice(0, 5).join(', ') + (unmatched.length > 5 ? `, ... (${unmatched.length - 5} more)` : '');
    const note = `${metadata.labels!.file}: ${unmatched.length} ID${unmatched.length === 1 ? '' : 's'} labelled no record of this upload: ${shown}`;
    if (out.json) out.result({ labels: metadata.labels!.file, unmatched }, '');
    else out.note(note);
  }
  out.note(
    `uploaded ${stored} of ${total} images from ${files.length} file${files.length === 1 ? '' : 's'} in ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
  if (notUploaded > 0)
    throw new CliError('invalid', `${notUploaded} image${notUploaded === 1 ? ' was' : 's were'} not uploaded (see the FAILED lines)`);
}

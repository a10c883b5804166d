import type * as wire from '@fnn/proto';
import type { RecordKey } from '@fnn/shared';
import { call } from './connect';
import {
  checkUid,
  DicomWebClient,
  dicomWebAuth,
  instanceRecordIds,
  parseDicomWebUrl,
  parseSince,
  type AuthFlags,
  type DicomWebFilter,
  type InstanceRef,
} from './dicomweb';
import { openImageBytes, type OpenImages } from './image-files';
import { CliError } from './output';
import type { CollectionShape } from './upload-plan';

// `fnn upload --dicomweb`: the PACS's instances as the upload's sources. Each
// is named by its SOPInstanceUID, as a file of that name would be, and its
// bytes go through the same decoding, planning and sending as a file's
// (upload-plan.ts, upload-send.ts), so the records are the same.

export interface DicomWebFlags extends AuthFlags {
  dicomweb?: string;
  study?: string[];
  series?: string[];
  all?: boolean;
  since?: string;
}

/** Bytes kept between the plan's pass and the sending pass; past this, an instance is fetched again. */
const CACHE_BYTES = 512 * 1024 * 1024;
/** Lookups one AllocateSlots call may carry (C1's MAX_SLOTS_PER_CALL). */
const LOOKUPS_PER_CALL = 10_000;

/** The PACS and what to take from it, from the flags; every mistake a usage error before anything is fetched. */
export function dicomWebImport(flags: DicomWebFlags): { client: DicomWebClient; filter: DicomWebFilter; describe: string } {
  const root = parseDicomWebUrl(flags.dicomweb!);
  const chosen = [flags.study !== undefined, flags.series !== undefined, !!flags.all].filter(Boolean).length;
  if (chosen !== 1) throw new CliError('usage', '--dicomweb needs one of --study UID..., --series UID... and --all');
  const selection = flags.study
    ? { studies: flags.study.map((u) => checkUid(u, '--study')) }
    : flags.series
      ? { series: flags.series.map((u) => checkUid(u, '--series')) }
      : { all: true as const };
  const since = flags.since !== undefined ? parseSince(flags.since) : undefined;
  const what = flags.study ? `--study ${flags.study.join(' ')}` : flags.series ? `--series ${flags.series.join(' ')}` : '--all';
  return {
    client: new DicomWebClient(root, dicomWebAuth(flags, root)),
    filter: { selection, since },
    describe: since ? `${what} --since ${flags.since}` : what,
  };
}

/**
 * The instances whose every record C1 already holds, by ID: asked with
 * AllocateSlots, whose reply marks a lookup tag `stored`. It reserves
 * nothing; its one write (fixing the collection's id) happens only for a
 * collection that has none, i.e. an empty one, which is never asked.
 */
export async function storedInstances(
  c1: Pick<wire.DatabaseClient, 'allocateSlots'>,
  recordKey: RecordKey,
  shape: CollectionShape,
  refs: InstanceRef[],
): Promise<Set<string>> {
  if (!shape.width) return new Set();
  const ids = refs.flatMap((ref) => instanceRecordIds(ref).map((id) => ({ sop: ref.sop, id })));
  const missing = new Set<string>();
  for (let i = 0; i < ids.length; i += LOOKUPS_PER_CALL) {
    const batch = ids.slice(i, i + LOOKUPS_PER_CALL);
    const { slots } = await call(
      c1.allocateSlots.bind(c1),
      { lookupTags: batch.map((r) => recordKey.lookupTag(r.id)), width: shape.width, height: shape.height, maxValue: shape.maxValue },
      60_000,
    );
    slots.forEach((slot, j) => {
      if (!slot.stored) missing.add(batch[j].sop);
    });
  }
  return new Set(refs.map((r) => r.sop).filter((sop) => !missing.has(sop)));
}

/**
 * The upload's opener for PACS instances: the first pass fetches each (and
 * hears of it, for the progress bar), keeping its bytes while they fit in
 * CACHE_BYTES; the second takes them from there, or fetches again.
 */
export function pacsOpener(
  client: Pick<DicomWebClient, 'fetchInstance'>,
  refs: InstanceRef[],
  fetched: () => void,
  cacheBytes = CACHE_BYTES,
): OpenImages {
  const bySop = new Map(refs.map((r) => [r.sop, r]));
  const kept = new Map<string, Buffer>();
  let keptBytes = 0;
  return async (sop, options) => {
    let bytes = kept.get(sop);
    if (bytes) {
      kept.delete(sop);
      keptBytes -= bytes.length;
    } else {
      bytes = await client.fetchInstance(bySop.get(sop)!);
      fetched();
      if (keptBytes + bytes.length <= cacheBytes) {
        kept.set(sop, bytes);
        keptBytes += bytes.length;
      }
    }
    return openImageBytes(bytes, sop, options);
  };
}

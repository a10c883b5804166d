import type { CollectionWriter, NamedImage } from '@fnn/shared';
import type { UploadPlan } from './upload-plan';

// Sending a planned upload (`fnn upload`, pass 2): files decoded one at a
// time, their records gathered into batches of a few groups and handed to the
// owner's CollectionWriter, every record's outcome reported as it settles.

/** Groups' worth of records read before encrypting: fills partial groups and bounds memory. */
const BATCH_GROUPS = 4;

export interface UploadEvents {
  /** One record stored (or replaced); `total` is the collection's size after its group landed. */
  stored(file: string, id: string, replaced: boolean, total: number): void;
  /**
   * One record failed. Throwing stops the upload with that error: C1 is down
   * or refuses the certificate, so the rest would fail too.
   */
  failed(file: string, id: string, error: unknown): void;
  /** A planned file could not be decoded after all: its `count` records failed, the others go on. */
  unreadable(file: string, error: unknown, count: number): void;
}

/** Every planned file's records through `writer`, in the plan's order (C1's upload order is the tie rule). */
export async function sendPlan(
  plan: UploadPlan,
  writer: CollectionWriter,
  read: (file: string) => Promise<NamedImage[]>,
  events: UploadEvents,
  stops: (error: unknown) => boolean,
): Promise<void> {
  // Records wait here until a few groups' worth are read: a group is encrypted in one go.
  let pending: (NamedImage & { file: string })[] = [];
  const flush = async () => {
    const batch = pending;
    pending = [];
    const fileOf = new Map(batch.map((r) => [r.id, r.file]));
    const reported = new Set<string>();
    await writer
      .upload(batch, (outcome) => {
        for (const id of outcome.ids) reported.add(id);
        for (const id of outcome.ids) {
          const file = fileOf.get(id)!;
          if (outcome.ok) events.stored(file, id, outcome.replaced.has(id), outcome.total);
          else events.failed(file, id, outcome.error);
        }
      })
      .catch((error) => {
        // Refused before any group was written (slot allocation): every record of the batch failed.
        // Or a group failed because C1 or C2 is unreachable (failed() threw it to stop the upload):
        // the records not reported yet failed too, and the upload stops with that error (exit 5 or 6)
        // even when it was the batch's last group.
        for (const r of batch.filter((b) => !reported.has(b.id))) events.failed(r.file, r.id, error);
        if (stops(error)) throw error;
      });
  };
  for (const { file, count } of plan.files) {
    let records: NamedImage[];
    try {
      records = await read(file);
    } catch (error) {
      events.unreadable(file, error, count);
      continue;
    }
    for (const record of records) {
      // The same ID again (a file given twice): upload the earlier one first, so the later one replaces it.
      if (pending.some((p) => p.id === record.id)) await flush();
      pending.push({ ...record, file });
      if (pending.length >= BATCH_GROUPS * writer.params(record.image).groupSize) await flush();
    }
  }
  if (pending.length > 0) await flush();
}

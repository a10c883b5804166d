import { closeSync, fstatSync, openSync, readFileSync } from 'node:fs';
import { parse } from 'csv-parse/sync';
import { MAX_LABEL_BYTES, type RecordMetadata } from '@fnn/shared';
import { CliError } from './output';

// `fnn upload --labels FILE.csv`: the owner's label of each record (a
// diagnosis, free text), sealed with the record under k like its DICOM
// metadata. The file is CSV (RFC 4180): two columns, ID and label, an optional
// header row `ID,label`. A label holding a comma, a quote or a line break is
// quoted, which a split on commas would get wrong: csv-parse (the CSV project's
// parser, no dependencies) reads it.

/** The largest labels file read: 100,000 records with 300-byte labels, and a bound on what one flag can make the CLI hold. */
export const MAX_LABELS_FILE_BYTES = 32 * 1024 * 1024;

/** What the upload seals with each record besides the image. */
export interface MetadataOptions {
  /** --keep-patient-identity: PatientName and PatientID are sealed too. Default: left out. */
  keepPatientIdentity: boolean;
  labels?: Labels;
}

/**
 * The labels of one upload, by record ID. A record takes the label of its
 * exact ID, else that of its base ID (`UID` labels every `UID#frameN` of a
 * multi-frame file, `brain.nii.gz` every slice). IDs that label no record of
 * the upload are reported after it, not refused: the file may cover the whole
 * collection while this upload adds a part of it.
 */
export class Labels {
  private readonly used = new Set<string>();

  constructor(
    readonly file: string,
    private readonly byId: ReadonlyMap<string, string>,
  ) {}

  get size(): number {
    return this.byId.size;
  }

  labelOf(id: string): string | undefined {
    for (const key of [id, id.slice(0, Math.max(0, id.lastIndexOf('#')))]) {
      if (!key) continue;
      const label = this.byId.get(key);
      if (label !== undefined) {
        this.used.add(key);
        return label;
      }
    }
    return undefined;
  }

  /** The IDs of the file that labelled no record, in the file's order. */
  unmatched(): string[] {
    return [...this.byId.keys()].filter((id) => !this.used.has(id));
  }
}

/** --labels FILE: every row checked before anything is read or encrypted; a usage error names the row. */
export function readLabels(path: string): Labels {
  let text: string;
  try {
    const fd = openSync(path, 'r');
    try {
      const size = fstatSync(fd).size;
      if (size > MAX_LABELS_FILE_BYTES)
        throw new CliError('usage', `--labels ${path}: ${size} bytes; a labels file holds at most ${MAX_LABELS_FILE_BYTES} bytes`);
    } finally {
      closeSync(fd);
    }
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if (error instanceof CliError) throw error;
    throw new CliError('usage', `--labels ${path}: cannot be read`);
  }
  let rows: string[][];
  try {
    rows = parse(text, { bom: true, skip_empty_lines: true, relax_column_count: true }) as string[][];
  } catch (error) {
    const why = (error as Error).message.replace(/^Invalid \w+:\s*/, '');
    throw new CliError('usage', `--labels ${path}: not CSV (${why})`);
  }
  const byId = new Map<string, string>();
  const lineOf = new Map<string, number>();
  rows.forEach((row, i) => {
    const where = `--labels ${path}, row ${i + 1}`;
    if (i === 0 && row.length === 2 && row[0].trim().toLowerCase() === 'id' && row[1].trim().toLowerCase() === 'label') return;
    if (row.length !== 2)
      throw new CliError('usage', `${where}: ${row.length} columns; each row is ID,label (quote a label that holds a comma)`);
    const id = row[0].trim();
    const label = row[1].trim();
    if (!id) throw new CliError('usage', `${where}: the ID is empty`);
    if (Buffer.byteLength(label) > MAX_LABEL_BYTES)
      throw new CliError('usage', `${where}: the label of ${id} is longer than ${MAX_LABEL_BYTES} bytes`);
    const before = lineOf.get(id);
    if (before !== undefined && byId.get(id) !== label)
      throw new CliError('usage', `${where}: ${id} is labelled again, differently (row ${before}); give each ID one label`);
    lineOf.set(id, i + 1);
    if (label) byId.set(id, label);
  });
  return new Labels(path, byId);
}

/** Image i's metadata for sealing: its DICOM header's (patient identity only when kept) and its label. */
export function recordMetadata(
  fromHeader: RecordMetadata | undefined,
  id: string,
  options: MetadataOptions | undefined,
): RecordMetadata | undefined {
  const label = options?.labels?.labelOf(id);
  const m: RecordMetadata = { ...(fromHeader ?? {}), ...(label !== undefined ? { label } : {}) };
  return Object.keys(m).length > 0 ? m : undefined;
}

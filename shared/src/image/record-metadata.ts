// What a record says about itself besides its pixels: the DICOM header's
// clinical identity (modality, body part, study and series, date, UIDs, the
// display window) and the owner's label (a diagnosis, free text). It is sealed
// under the owner's record key k together with the image (sealed-image.ts,
// 'fnn image v2'), so C1 and C2 store and return it without being able to read
// it; the doctor opens it with every result.
//
// Patient name and patient ID are read only when asked for
// (`keepPatientIdentity`, the CLI's --keep-patient-identity): by default they
// never leave the owner's machine, not even sealed.
//
// The serialisation is canonical and bounded: the fields below in this order,
// only those present, as one JSON object in UTF-8. Every text field has a cap
// in UTF-8 bytes; a DICOM value over its cap is cut at a character boundary
// (a well-formed one never is: LO and PN hold 64 characters, UI 64 bytes),
// a label over its cap is refused where it is read (the owner wrote it and
// must see it whole), and serialising a field over its cap is refused.

import type * as dicomParser from 'dicom-parser';
import { invalidInput } from '../errors';

export interface RecordMetadata {
  /** (0008,0060), e.g. MR, CT. */
  modality?: string;
  /** (0018,0015), e.g. HEAD. */
  bodyPart?: string;
  /** (0008,1030). */
  studyDescription?: string;
  /** (0008,103E). */
  seriesDescription?: string;
  /** (0008,0020) as YYYY-MM-DD; left out when the header's is not a date. */
  studyDate?: string;
  /** (0020,000D). */
  studyInstanceUid?: string;
  /** (0020,000E). */
  seriesInstanceUid?: string;
  /** (0008,0018), else the file meta's (0002,0003). */
  sopInstanceUid?: string;
  /**
   * The display window (0028,1050/1051, per frame in an enhanced file), in the
   * record's values before the collection's offset: the DICOM's modality units
   * (Hounsfield units for CT), mirrored as the pixels are for MONOCHROME1.
   */
  windowCenter?: number;
  windowWidth?: number;
  /** The owner's label (`fnn upload --labels`), e.g. a diagnosis. */
  label?: string;
  /** (0010,0010), only with keepPatientIdentity. */
  patientName?: string;
  /** (0010,0020), only with keepPatientIdentity. */
  patientId?: string;
}

type TextField = Exclude<keyof RecordMetadata, 'windowCenter' | 'windowWidth'>;
type NumberField = 'windowCenter' | 'windowWidth';

/** The canonical order of the fields, which is also the order of human output. */
export const RECORD_METADATA_FIELDS = [
  'modality',
  'bodyPart',
  'studyDescription',
  'seriesDescription',
  'studyDate',
  'studyInstanceUid',
  'seriesInstanceUid',
  'sopInstanceUid',
  'windowCenter',
  'windowWidth',
  'label',
  'patientName',
  'patientId',
] as const satisfies readonly (keyof RecordMetadata)[];

const NUMBER_FIELDS: ReadonlySet<string> = new Set<NumberField>(['windowCenter', 'windowWidth']);

/** Cap of a DICOM text field, in UTF-8 bytes. */
export const MAX_METADATA_FIELD_BYTES = 256;
/** Cap of the owner's label, in UTF-8 bytes. */
export const MAX_LABEL_BYTES = 1024;
/**
 * Cap of the whole serialisation, checked when a sealed record is opened;
 * above what the field caps allow (12 x 256 + 1024 bytes and the JSON around them).
 */
export const MAX_METADATA_BYTES = 8192;

/** Each run of C0 control characters (and DEL) as one space. */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const withoutControls = (text: string) => text.replace(/[\u0000-\u001f\u007f]+/g, ' ');

const capOf = (field: TextField) => (field === 'label' ? MAX_LABEL_BYTES : MAX_METADATA_FIELD_BYTES);

/** `text` cut to at most `max` UTF-8 bytes at a character boundary. */
export function truncateUtf8(text: string, max: number): string {
  if (Buffer.byteLength(text) <= max) return text;
  let out = '';
  let bytes = 0;
  for (const ch of text) {
    const n = Buffer.byteLength(ch);
    if (bytes + n > max) break;
    out += ch;
    bytes += n;
  }
  return out;
}

/** The metadata with only its present fields, in canonical order (what `--json` prints). */
export function presentMetadata(m: RecordMetadata): RecordMetadata {
  const out: Record<string, string | number> = {};
  for (const field of RECORD_METADATA_FIELDS) {
    const v = m[field];
    if (v === undefined || v === '') continue;
    out[field] = v;
  }
  return out as RecordMetadata;
}

export const isEmptyMetadata = (m: RecordMetadata | undefined): boolean => !m || Object.keys(presentMetadata(m)).length === 0;

/** The canonical bytes of the metadata; refuses a field of the wrong type or over its cap. */
export function serializeRecordMetadata(m: RecordMetadata): Buffer {
  const present = presentMetadata(m) as Record<string, unknown>;
  for (const [field, v] of Object.entries(present)) {
    if (NUMBER_FIELDS.has(field)) {
      if (typeof v !== 'number' || !Number.isFinite(v)) throw invalidInput(`record metadata: ${field} must be a finite number`);
    } else if (typeof v !== 'string') {
      throw invalidInput(`record metadata: ${field} must be text`);
    } else if (Buffer.byteLength(v) > capOf(field as TextField)) {
      throw invalidInput(`record metadata: ${field} is longer than ${capOf(field as TextField)} bytes`);
    }
  }
  const bytes = Buffer.from(JSON.stringify(present), 'utf8');
  if (bytes.length > MAX_METADATA_BYTES) throw invalidInput(`record metadata is longer than ${MAX_METADATA_BYTES} bytes`);
  return bytes;
}

/**
 * The metadata from its bytes. Fields this version does not know are left
 * out (a newer writer's); a known field of the wrong type, over its cap, or
 * bytes that are not one JSON object are refused.
 */
export function parseRecordMetadata(bytes: Uint8Array): RecordMetadata {
  if (bytes.length === 0) return {};
  if (bytes.length > MAX_METADATA_BYTES) throw invalidInput(`record metadata is longer than ${MAX_METADATA_BYTES} bytes`);
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    throw invalidInput('record metadata is not valid JSON text');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalidInput('record metadata is not an object');
  const source = value as Record<string, unknown>;
  const out: Record<string, string | number> = {};
  for (const field of RECORD_METADATA_FIELDS) {
    const v = source[field];
    if (v === undefined) continue;
    if (NUMBER_FIELDS.has(field) ? typeof v !== 'number' || !Number.isFinite(v) : typeof v !== 'string')
      throw invalidInput(`record metadata: ${field} has the wrong type`);
    if (typeof v === 'string' && Buffer.byteLength(v) > capOf(field as TextField))
      throw invalidInput(`record metadata: ${field} is longer than ${capOf(field as TextField)} bytes`);
    out[field] = v as string | number;
  }
  return out as RecordMetadata;
}

// ---- DICOM ----------------------------------------------------------------

/**
 * Specific Character Set (0008,0005) -> a WHATWG decoder label, for the single
 * character sets (PS3.3 C.12.1.1.2). Absent: the default repertoire (ASCII).
 * Code extensions (ISO 2022 ...) are read as Latin-1: their ASCII part is
 * right, other characters may not be.
 */
const CHARSETS: Record<string, string> = {
  '': 'latin1',
  ISO_IR_6: 'latin1',
  'ISO_IR 6': 'latin1',
  'ISO_IR 100': 'latin1',
  'ISO_IR 101': 'iso-8859-2',
  'ISO_IR 109': 'iso-8859-3',
  'ISO_IR 110': 'iso-8859-4',
  'ISO_IR 144': 'iso-8859-5',
  'ISO_IR 127': 'iso-8859-6',
  'ISO_IR 126': 'iso-8859-7',
  'ISO_IR 138': 'iso-8859-8',
  'ISO_IR 148': 'iso-8859-9',
  'ISO_IR 203': 'iso-8859-15',
  'ISO_IR 166': 'windows-874',
  'ISO_IR 13': 'shift_jis',
  'ISO_IR 192': 'utf-8',
  GB18030: 'gb18030',
  GBK: 'gbk',
};

function decoderOf(ds: dicomParser.DataSet): TextDecoder {
  const declared = (ds.string('x00080005') ?? '').split('\\')[0].trim();
  const label = CHARSETS[declared] ?? 'latin1';
  try {
    return new TextDecoder(label);
  } catch {
    return new TextDecoder('latin1');
  }
}

/** A text element's value (the first of several), decoded, trimmed of padding, bounded; undefined when absent or empty. */
function textOf(ds: dicomParser.DataSet, tag: string, decoder: TextDecoder, multi = true): string | undefined {
  const el = ds.elements[tag];
  if (!el || el.length === 0 || el.length === undefined) return undefined;
  // Element values are bounded by the file; read at most what the cap can keep (4 bytes per character at worst).
  const bytes = ds.byteArray.subarray(el.dataOffset, el.dataOffset + Math.min(el.length, 4 * MAX_METADATA_FIELD_BYTES));
  let text = decoder.decode(bytes).replace(/\0+$/, '');
  if (multi) text = text.split('\\')[0];
  // Control characters have no place in a header value; they would break a line of output.
  text = withoutControls(text).trim();
  return text ? truncateUtf8(text, MAX_METADATA_FIELD_BYTES) : undefined;
}

/** DA (YYYYMMDD, or the old YYYY.MM.DD) as YYYY-MM-DD; undefined when it is not a date. */
function dateOf(text: string | undefined): string | undefined {
  const m = /^(\d{4})\.?(\d{2})\.?(\d{2})$/.exec(text ?? '');
  if (!m) return undefined;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const date = new Date(Date.UTC(y, mo - 1, d));
  if (date.getUTCFullYear() !== y || date.getUTCMonth() !== mo - 1 || date.getUTCDate() !== d) return undefined;
  return `${m[1]}-${m[2]}-${m[3]}`;
}

const UID = /^[0-9]+(\.[0-9]+)*$/;
const uidOf = (text: string | undefined) => (text && text.length <= 64 && UID.test(text) ? text : undefined);

/** The first value of a DS element as a finite number. */
function decimalNumber(ds: dicomParser.DataSet | undefined, tag: string): number | undefined {
  const text = ds?.string(tag)?.split('\\')[0].trim();
  if (!text || !/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(text)) return undefined;
  const n = Number(text);
  return Number.isFinite(n) ? n : undefined;
}

export interface DicomMetadataOptions {
  /** Read PatientName and PatientID too (--keep-patient-identity). Default: never read. */
  keepPatientIdentity?: boolean;
}

/** The SOP Instance UID of a dataset (its own, else the file meta's) when well-formed. */
export function dicomSopInstanceUid(ds: dicomParser.DataSet): string | undefined {
  for (const tag of ['x00080018', 'x00020003']) {
    const uid = uidOf(ds.string(tag)?.replace(/\0/g, '').trim());
    if (uid) return uid;
  }
  return undefined;
}

/**
 * The window of frame `frame` as the header gives it: the per-frame
 * functional group's Frame VOI LUT (enhanced multi-frame), else the shared
 * one, else the top-level WindowCenter/WindowWidth. Width below 1 is none.
 */
export function dicomWindow(ds: dicomParser.DataSet, frame: number): { center: number; width: number } | undefined {
  const voi = (groups: dicomParser.Element | undefined, item: number) =>
    groups?.items?.[item]?.dataSet?.elements.x00289132?.items?.[0]?.dataSet;
  for (const source of [voi(ds.elements.x52009230, frame), voi(ds.elements.x52009229, 0), ds]) {
    const center = decimalNumber(source, 'x00281050');
    const width = decimalNumber(source, 'x00281051');
    if (center !== undefined && width !== undefined) return width >= 1 ? { center, width } : undefined;
  }
  return undefined;
}

/**
 * The metadata of a DICOM dataset (the window not included: it depends on
 * the frame and on how the pixels were mapped, which dicom.ts knows).
 */
export function dicomRecordMetadata(ds: dicomParser.DataSet, options: DicomMetadataOptions = {}): RecordMetadata {
  const decoder = decoderOf(ds);
  const ascii = new TextDecoder('latin1');
  const m: RecordMetadata = {
    modality: textOf(ds, 'x00080060', ascii),
    bodyPart: textOf(ds, 'x00180015', ascii),
    studyDescription: textOf(ds, 'x00081030', decoder),
    seriesDescription: textOf(ds, 'x0008103e', decoder),
    studyDate: dateOf(textOf(ds, 'x00080020', ascii)),
    studyInstanceUid: uidOf(textOf(ds, 'x0020000d', ascii)),
    seriesInstanceUid: uidOf(textOf(ds, 'x0020000e', ascii)),
    sopInstanceUid: dicomSopInstanceUid(ds),
  };
  if (options.keepPatientIdentity) {
    m.patientName = textOf(ds, 'x00100010', decoder);
    m.patientId = textOf(ds, 'x00100020', decoder, false);
  }
  return presentMetadata(m);
}

/** One compact line for people: `MR · HEAD · "Brain T1" · 2024-03-05 · label: glioma`. */
export function metadataLine(m: RecordMetadata | undefined): string {
  if (!m) return '';
  const quote = (s: string) => `"${s}"`;
  const parts = [
    m.modality,
    m.bodyPart,
    m.studyDescription && quote(m.studyDescription),
    m.seriesDescription && quote(m.seriesDescription),
    m.studyDate,
    m.windowWidth !== undefined && m.windowCenter !== undefined ? `W ${m.windowWidth} / L ${m.windowCenter}` : undefined,
    m.label !== undefined && m.label !== '' ? `label: ${m.label}` : undefined,
    m.patientName !== undefined ? `patient: ${m.patientName}${m.patientId ? ` (${m.patientId})` : ''}` : undefined,
    m.patientName === undefined && m.patientId !== undefined ? `patient ID: ${m.patientId}` : undefined,
  ].filter((p): p is string => typeof p === 'string' && p !== '');
  // A label may hold line breaks (a quoted CSV field): one line all the same.
  return withoutControls(parts.join(' · '));
}

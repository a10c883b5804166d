import { invalidInput } from '@fnn/shared';

// The limits both daemons enforce on what arrives over the wire, in one place
// so that C1 and C2 refuse the same requests with the same words.

/** The largest images the protocols' bounds allow: 512x512 pixels... */
export const MAX_DIMENSION = 512 * 512;
/** ...of at most 16 bits. */
export const MAX_PIXEL_VALUE = 65535;
/** Nearest neighbours one query may ask for. */
export const MAX_K = 100;
/** HMAC-SHA256 of an identifier: what C1 and C2 know a record by. */
export const LOOKUP_TAG_BYTES = 32;
/** The owner's random version of a group change, the same at C1 and C2 (group digests). */
export const GROUP_VERSION_BYTES = 16;

/** Width and height of a collection's images: positive integers, at most MAX_DIMENSION pixels. */
export function checkImageSize(width: number, height: number): void {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1)
    throw invalidInput('image width and height must be positive');
  if (width * height > MAX_DIMENSION) throw invalidInput(`images above ${MAX_DIMENSION} pixels are not supported`);
}

/** A collection's pixel depth (its largest pixel value). */
export function checkPixelDepth(maxValue: number): void {
  if (!Number.isInteger(maxValue) || maxValue < 1 || maxValue > MAX_PIXEL_VALUE)
    throw invalidInput(`pixel depth must be between 1 and ${MAX_PIXEL_VALUE}`);
}

/** One lookup tag; `what` names its record in the refusal. */
export function checkLookupTag(tag: Uint8Array, what?: string): void {
  if (tag.length !== LOOKUP_TAG_BYTES) throw invalidInput(`${what ? `${what}: ` : ''}lookup tag must be ${LOOKUP_TAG_BYTES} bytes`);
}

export function checkLookupTags(tags: Uint8Array[]): void {
  for (const tag of tags) checkLookupTag(tag);
}

/** A group change's version. */
export function checkGroupVersion(version: Uint8Array): void {
  if (version.length !== GROUP_VERSION_BYTES) throw invalidInput(`a group change needs a ${GROUP_VERSION_BYTES}-byte version`);
}

// Which reader a file needs, by its content first (hospital DICOM files often
// have no extension), then by its name.

import { invalidInput } from '../errors';
import { isDicomPart10, openDicom } from './dicom';
import { looksLikeNifti, openNifti, type SliceAxis } from './nifti';
import { applyPixelRule, type PixelRule } from './pixel-rule';
import { decodePng } from './png';
import type { ImageFormat, ImageStack } from './stack';

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47];

export function detectImageFormat(bytes: Uint8Array, name: string): ImageFormat | undefined {
  if (PNG_SIGNATURE.every((b, i) => bytes[i] === b)) return 'png';
  if (isDicomPart10(bytes)) return 'dicom';
  const lower = name.toLowerCase();
  if (lower.endsWith('.nii') || lower.endsWith('.nii.gz') || (looksLikeNifti(bytes) && !lower.endsWith('.png'))) return 'nifti';
  if (lower.endsWith('.png')) return 'png';
  if (lower.endsWith('.dcm') || lower.endsWith('.dicom')) return 'dicom';
  return undefined;
}

export interface OpenOptions {
  /** NIfTI: the voxel axis to slice along (default z). */
  axis?: SliceAxis;
}

/** A PNG, a DICOM Part 10 file or a NIfTI volume, as a stack of images. */
export async function openImageStack(bytes: Uint8Array, name: string, options: OpenOptions = {}): Promise<ImageStack> {
  const format = detectImageFormat(bytes, name);
  if (format === 'dicom') return openDicom(bytes, name);
  if (format === 'nifti') return openNifti(bytes, name, options.axis ?? 'z');
  if (format === 'png') return pngStack(bytes, name);
  throw invalidInput(`${name}: not a PNG, DICOM Part 10 or NIfTI file`);
}

function pngStack(bytes: Uint8Array, name: string): ImageStack {
  const png = decodePng(bytes, name);
  return {
    format: 'png',
    name,
    width: png.width,
    height: png.height,
    count: 1,
    label: () => '',
    image: (_i: number, rule: PixelRule) =>
      applyPixelRule({ width: png.width, height: png.height, values: png.pixels, range: [0, png.maxValue], where: name }, rule),
  };
}

// What every image file reader gives back: one or more same-size grayscale
// images (a PNG is one; a multi-frame DICOM, one per frame; a NIfTI volume,
// one per slice). Opening reads the header and finds every image, so a file
// that cannot be read at all fails there; each image is decoded on demand.

import type { GrayImage } from './image';
import type { PixelRule } from './pixel-rule';
import type { DicomMetadataOptions, RecordMetadata } from './record-metadata';

export type ImageFormat = 'png' | 'dicom' | 'nifti';

export interface ImageStack {
  format: ImageFormat;
  /** The file's name, as messages use it. */
  name: string;
  width: number;
  height: number;
  count: number;
  /**
   * What tells image i apart within the file, for record IDs (`name#label`):
   * '' when the file holds one image, else `frame3` (DICOM, from 1) or `z012`
   * (NIfTI, the 0-based slice index along the axis).
   */
  label(i: number): string;
  /**
   * DICOM: the file's SOP Instance UID (0008,0018, else the file meta's
   * MediaStorageSOPInstanceUID), when it is a well-formed UID. It names the
   * instance whatever its encoding, so it is the default record ID.
   */
  sopInstanceUid?: string;
  /**
   * DICOM: what the header says of image i (record-metadata.ts), patient
   * name and ID only when asked for. Other formats have none.
   */
  metadata?(i: number, options?: DicomMetadataOptions): RecordMetadata;
  /** Image i under the collection's pixel rule; throws an invalid-input FnnError naming the file. */
  image(i: number, rule: PixelRule): GrayImage;
}

#!/usr/bin/env bash
# Regenerates the DICOM fixtures that are not copied verbatim from pydicom.
# Not run by the tests (they use the files as committed). Needs Debian's
# python3-pydicom, python3-pil, dcmtk and libgdcm-tools, and node with the
# repository installed (for the PNG decoder).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../../.." && pwd)"
src=/usr/lib/python3/dist-packages/pydicom/data/test_files
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# Verbatim copies from pydicom's test files.
for f in MR_small.dcm MR_small_implicit.dcm MR_small_bigendian.dcm MR_small_RLE.dcm \
         MR_small_jpeg_ls_lossless.dcm MR_small_jp2klossless.dcm JPGExtended.dcm \
         CT_small.dcm image_dfl.dcm MR_truncated.dcm rtplan.dcm SC_rgb_rle.dcm; do
  cp "$src/$f" "$here/$f"
done

# MR_small (16-bit signed) through DCMTK's JPEG lossless encoder:
# selection value 1 (4.70) and 6 (4.57).
dcmcjpeg +e1 "$src/MR_small.dcm" "$here/MR_small_jpeg_lossless_sv1_dcmtk.dcm"
dcmcjpeg +el +sv 6 "$src/MR_small.dcm" "$here/MR_small_jpeg_lossless_sv6_dcmtk.dcm"
# The same image as a 16-bit PNG written by Pillow (values are all >= 0).
/usr/bin/python3 - "$src/MR_small.dcm" "$here/MR_small.png" <<'PY'
import sys, numpy, pydicom
from PIL import Image
a = pydicom.dcmread(sys.argv[1]).pixel_array
assert a.min() >= 0
Image.fromarray(a.astype(numpy.uint16)).save(sys.argv[2])
PY

# A 3-frame file for the CLI's name#frameN records: MR_small's pixels plus
# 0, 1000 and 2000 in frames 1..3, RLE-compressed by DCMTK.
/usr/bin/python3 - "$src/MR_small.dcm" "$tmp/mf.dcm" <<'PY'
import sys, numpy, pydicom
ds = pydicom.dcmread(sys.argv[1])
a = ds.pixel_array.astype(numpy.int16)
ds.NumberOfFrames = 3
ds.PixelData = numpy.stack([a, a + 1000, a + 2000]).astype('<i2').tobytes()
ds.save_as(sys.argv[2])
PY
dcmcrle "$tmp/mf.dcm" "$here/MR_small_3frames_rle_dcmtk.dcm"

# demo/images/ch2-z106.png (8-bit, 16x16, real MRI) as DICOM written by
# pydicom, MONOCHROME2 and MONOCHROME1, then compressed by DCMTK and GDCM.
node -e "
const {decodePng}=require('$root/shared/dist/index.js');const fs=require('fs');
const img=decodePng(fs.readFileSync('$root/demo/images/ch2-z106.png'),'x');
fs.writeFileSync('$tmp/ch2.raw',Buffer.from(Uint8Array.from(img.pixels)));"
/usr/bin/python3 - "$tmp/ch2.raw" "$here" <<'PY'
import sys, pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage
raw = open(sys.argv[1], 'rb').read()
def write(name, photometric, pixels):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = '1.2.826.0.1.3680043.8.498.1'
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = 'MR'
    ds.PatientName = 'ch2^template'
    ds.Rows, ds.Columns = 16, 16
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = pixels
    ds.is_little_endian, ds.is_implicit_VR = True, False
    ds.save_as(f'{sys.argv[2]}/{name}', write_like_original=False)
write('ch2-z106.dcm', 'MONOCHROME2', raw)
write('ch2-z106_monochrome1.dcm', 'MONOCHROME1', bytes(255 - b for b in raw))
PY
dcmcrle "$here/ch2-z106.dcm" "$here/ch2-z106_rle_dcmtk.dcm"
dcmcjpeg +eb +q 90 "$here/ch2-z106.dcm" "$here/ch2-z106_jpeg_baseline_dcmtk.dcm"
dcmcjpeg +ee +q 90 "$here/ch2-z106.dcm" "$here/ch2-z106_jpeg_extended_dcmtk.dcm"
dcmcjpeg +e1 "$here/ch2-z106.dcm" "$here/ch2-z106_jpeg_lossless_sv1_dcmtk.dcm"
dcmcjpeg +el +sv 6 "$here/ch2-z106.dcm" "$here/ch2-z106_jpeg_lossless_sv6_dcmtk.dcm"
dcmcjpls "$here/ch2-z106.dcm" "$here/ch2-z106_jpegls_dcmtk.dcm"
gdcmconv --j2k "$here/ch2-z106.dcm" "$here/ch2-z106_j2k_gdcm.dcm"
dcmconv +tb "$here/ch2-z106.dcm" "$here/ch2-z106_bigendian_dcmtk.dcm"
dcmconv +ti "$here/ch2-z106.dcm" "$here/ch2-z106_implicit_dcmtk.dcm"
# DCMTK's own decode of the lossy ones: the reference the tests compare with.
for f in jpeg_baseline jpeg_extended; do
  dcmdjpeg "$here/ch2-z106_${f}_dcmtk.dcm" "$tmp/$f.dcm"
  /usr/bin/python3 -c "import pydicom,sys; sys.stdout.buffer.write(pydicom.dcmread('$tmp/$f.dcm').PixelData)" > "$here/ch2-z106_${f}_dcmtk.decoded.raw"
done
# DCMTK's decode of JPGExtended.dcm (12-bit lossy): its sha256, for the test.
dcmdjpeg "$src/JPGExtended.dcm" "$tmp/ext.dcm"
/usr/bin/python3 -c "import pydicom,sys; sys.stdout.buffer.write(pydicom.dcmread('$tmp/ext.dcm').PixelData)" | sha256sum

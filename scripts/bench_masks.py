"""The Python half of scripts/bench-masks: writes the lung1 mask both sides time (NRRD, with
the CT's spacing, which the EDT uses), then times
scipy.ndimage on it as a Python user writes each operation and prints MEDAS's time as a
fraction of scipy's."""
import json
import os
import sys

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as nd

from bench_io import print_ratios  # the ratio table every benchmark prints


def write_lung_mask(ct_path, mask_path):
    """HU <= -400 as uint8 with the CT's geometry (an uncompressed NRRD both sides read)."""
    mask = sitk.Cast(sitk.ReadImage(ct_path) <= -400, sitk.sitkUInt8)
    sitk.WriteImage(mask, mask_path, useCompression=False)


def ball(radius):
    d = np.arange(-radius, radius + 1)
    i, j, k = np.meshgrid(d, d, d, indexing="ij")
    return i * i + j * j + k * k <= radius * radius


def keep_largest(mask):
    labels, _ = nd.label(mask)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == np.argmax(sizes)


def compare(mask_path, ours_json, repeats):
    ours = json.load(open(ours_json))
    image = sitk.ReadImage(mask_path)
    mask = sitk.GetArrayFromImage(image) != 0  # axes k, j, i as Python users hold it
    spacing = image.GetSpacing()[::-1]
    b2 = ball(2)
    rows = [
        ("connected components 6", "nd.label (6-conn.)", "label_6",
         lambda: nd.label(mask, structure=nd.generate_binary_structure(3, 1))),
        ("connected components 26", "nd.label (26-conn.)", "label_26",
         lambda: nd.label(mask, structure=nd.generate_binary_structure(3, 3))),
        ("exact EDT (spacing)", "nd.distance_transform_edt", "edt",
         lambda: nd.distance_transform_edt(mask, sampling=spacing)),
        ("dilate ball r=2", "nd.binary_dilation", "dilate_ball_2", lambda: nd.binary_dilation(mask, structure=b2)),
        ("erode ball r=2", "nd.binary_erosion", "erode_ball_2", lambda: nd.binary_erosion(mask, structure=b2)),
        ("fill holes (3-D)", "nd.binary_fill_holes", "fill_holes", lambda: nd.binary_fill_holes(mask)),
        ("keep largest", "nd.label + bincount", "keep_largest", lambda: keep_largest(mask)),
    ]
    size = "x".join(str(n) for n in ours["size"])
    print(f"lung1 mask (HU <= -400) {size}, {int(mask.sum())} voxels set, best of {repeats}, "
          f"{os.cpu_count()} cores, MEDAS {ours['threads']} threads, scipy 1 thread")
    print_ratios(rows, ours, repeats, widths=(26, 28))


def main():
    if sys.argv[1] == "write-mask":
        write_lung_mask(sys.argv[2], sys.argv[3])
    else:
        compare(sys.argv[2], sys.argv[3], int(sys.argv[4]))


if __name__ == "__main__":
    main()

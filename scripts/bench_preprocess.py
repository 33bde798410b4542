"""Times SimpleITK and scikit-image on the pre-processing cases scripts/bench-preprocess ran
with MEDAS, on the same image, and prints MEDAS's time as a fraction of each reference's."""
import json
import os
import sys

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as nd
from skimage.filters import threshold_otsu

from bench_io import print_ratios  # the ratio table every benchmark prints


def to_spacing(image, spacing, interpolator, pixel):
    """What SimpleITK users write to resample to a spacing (the grid MEDAS makes)."""
    size = [max(1, int(round(n * s / t))) for n, s, t in zip(image.GetSize(), image.GetSpacing(), spacing)]
    return sitk.Resample(image, size, sitk.Transform(), interpolator, image.GetOrigin(), spacing,
                         image.GetDirection(), 0.0, pixel)


def otsu_mask(array):
    """What scikit-image users write: the threshold, then the mask above it."""
    return array > threshold_otsu(array)


def ball(radius):
    d = np.arange(-radius, radius + 1)
    i, j, k = np.meshgrid(d, d, d, indexing="ij")
    return i * i + j * j + k * k <= radius * radius


def main():
    path, ours_json, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ours = json.load(open(ours_json))
    image = sitk.ReadImage(path)
    array = sitk.GetArrayFromImage(image)
    one = (1.0, 1.0, 1.0)
    rows = [
        ("window/level (lung)", "SimpleITK Cast+IntensityWindowing", "window_level_lung",
         lambda: sitk.IntensityWindowing(sitk.Cast(image, sitk.sitkFloat32), -1350.0, 150.0, 0.0, 1.0)),
        ("resample 1 mm linear", "SimpleITK Resample", "resample_linear_1mm",
         lambda: to_spacing(image, one, sitk.sitkLinear, sitk.sitkFloat32)),
        ("resample 1 mm nearest", "SimpleITK Resample", "resample_nearest_1mm",
         lambda: to_spacing(image, one, sitk.sitkNearestNeighbor, sitk.sitkUnknown)),
        ("resample 1 mm B-spline", "SimpleITK Resample", "resample_bspline_1mm",
         lambda: to_spacing(image, one, sitk.sitkBSpline, sitk.sitkFloat32)),
        ("Otsu + mask", "skimage threshold_otsu, a > t", "otsu_256", lambda: otsu_mask(array)),
        ("grey dilation ball r=2", "scipy nd.grey_dilation", "grey_dilate_ball_2",
         lambda: nd.grey_dilation(array, footprint=ball(2))),
        ("grey closing box r=1", "scipy nd.grey_closing", "grey_close_box_1",
         lambda: nd.grey_closing(array, footprint=np.ones((3, 3, 3), bool))),
    ]
    size = "x".join(str(n) for n in ours["size"])
    print(f"lung1 CT {size} {array.dtype}, best of {repeats}, {os.cpu_count()} cores, "
          f"SimpleITK {sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()} threads, MEDAS {ours['threads']} threads")
    print_ratios(rows, ours, repeats, widths=(24, 36))


if __name__ == "__main__":
    main()

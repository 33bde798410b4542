"""Times numpy, SimpleITK and scikit-image on the intensity cases scripts/bench-intensity ran
with MEDAS, on the same images, and prints MEDAS's time as a fraction of each reference's."""
import json
import os
import sys

import numpy as np
import SimpleITK as sitk
from skimage.filters import threshold_multiotsu

from bench_io import print_ratios  # the ratio table every benchmark prints


def zscore(a, m=None):
    """nnU-Net's z-score in numpy (float64 statistics, float32 out; 0 outside the mask)."""
    if m is None:
        return ((a - a.mean()) / a.std()).astype(np.float32)
    inside = a[m]
    mean, std = inside.mean(), inside.std()
    return np.where(m, (a - mean) / std, 0).astype(np.float32)


def clip_percentiles(a):
    low, high = np.percentile(a, [0.5, 99.5])
    return np.clip(a, low, high).astype(np.float32)


def multi_otsu(f):
    """skimage's multi-Otsu on the float32 array (256 bins, as MEDAS) and its class image."""
    return np.digitize(f, bins=threshold_multiotsu(f, classes=3, nbins=256)).astype(np.uint8)


def main():
    ct_path, mask_path, reference_path, ours_json, repeats = sys.argv[1:6]
    repeats = int(repeats)
    ours = json.load(open(ours_json))
    image = sitk.ReadImage(ct_path)
    reference = sitk.ReadImage(reference_path)
    a = sitk.GetArrayFromImage(image)
    m = sitk.GetArrayFromImage(sitk.ReadImage(mask_path)) != 0
    f = a.astype(np.float32)
    f32 = sitk.sitkFloat32
    rows = [
        ("z-score", "numpy (a - mean) / std", "zscore", lambda: zscore(a)),
        ("z-score in mask", "numpy, 0 outside the mask", "zscore_mask", lambda: zscore(a, m)),
        ("clip 0.5-99.5 %", "numpy percentile + clip", "clip_percentiles", lambda: clip_percentiles(a)),
        ("rescale [0, 1]", "SimpleITK Cast+RescaleIntensity", "rescale",
         lambda: sitk.RescaleIntensity(sitk.Cast(image, f32), 0.0, 1.0)),
        ("histogram match", "SimpleITK Cast+HistogramMatching", "histogram_match",
         lambda: sitk.HistogramMatching(sitk.Cast(image, f32), sitk.Cast(reference, f32))),
        ("multi-Otsu 3 classes", "skimage multiotsu + np.digitize", "multi_otsu_3", lambda: multi_otsu(f)),
    ]
    size = "x".join(str(n) for n in ours["size"])
    print(f"lung1 CT {size} {a.dtype}, best of {repeats}, {os.cpu_count()} cores, "
          f"SimpleITK {sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()} threads, MEDAS {ours['threads']} threads")
    print_ratios(rows, ours, repeats, widths=(22, 34))


if __name__ == "__main__":
    main()

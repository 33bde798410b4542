"""Times scikit-image, torchstain (numpy backend) and staintools' Vahadane recipe (SPAMS) on the pathology cases
scripts/bench-pathology ran with MEDAS, on the same pixels, and prints MEDAS's time as a
fraction of each reference's."""
import json
import os
import sys
from importlib.metadata import version

import numpy as np
import spams
import torchstain
from skimage import color, io
from skimage.filters import threshold_otsu

from bench_io import best  # best-of-N wall time, shared with the I/O benchmark


def macenko(source, target):
    """What torchstain users write: fit on the target, normalise the image (no H and E images)."""
    normalizer = torchstain.normalizers.MacenkoNormalizer(backend="numpy")
    normalizer.fit(target)
    return normalizer.normalize(source, stains=False)


def reinhard(source, target):
    normalizer = torchstain.normalizers.ReinhardNormalizer(backend="numpy")
    normalizer.fit(target)
    return normalizer.normalize(source)


def vahadane_stains_and_concentrations(rgb):
    """staintools 2.1.2's VahadaneStainExtractor and get_concentrations, its SPAMS calls verbatim
    (tissue L* < 80 from skimage instead of OpenCV, so staintools' OpenCV is not needed)."""
    od = np.maximum(-np.log(np.maximum(rgb, 1) / 255.0), 1e-6).reshape(-1, 3)
    tissue_od = np.asfortranarray(od[(color.rgb2lab(rgb)[..., 0] < 80).reshape(-1)].T)
    d = spams.trainDL(X=tissue_od, K=2, lambda1=0.1, mode=2, modeD=0, posAlpha=True, posD=True, verbose=False).T
    if d[0, 0] < d[1, 0]:
        d = d[[1, 0]]
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    return d, spams.lasso(X=np.asfortranarray(od.T), D=np.asfortranarray(d.T), mode=2, lambda1=0.01, pos=True).toarray().T


def vahadane(source, target):
    """staintools' StainNormalizer("vahadane"): fit on the target, transform the image."""
    target_stains, target_c = vahadane_stains_and_concentrations(target)
    _, c = vahadane_stains_and_concentrations(source)
    c *= np.percentile(target_c, 99, axis=0) / np.percentile(c, 99, axis=0)
    return (255 * np.exp(-c @ target_stains)).reshape(source.shape).astype(np.uint8)


def tissue(rgb):
    """What scikit-image users write: grey level, Otsu's threshold, tissue below it."""
    grey = color.rgb2gray(rgb)
    return grey < threshold_otsu(grey)


def main():
    ihc_path, work, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ours = {name: json.load(open(f"{work}/medas_{name}.json")) for name in ("ihc", "slide", "tile")}
    ihc, slide, target = io.imread(ihc_path), io.imread(f"{work}/slide.png"), io.imread(f"{work}/target.png")
    tile = io.imread(f"{work}/tile.png")
    slide_hed = color.rgb2hed(slide)
    rows = [
        ("ihc", "rgb2hed", "skimage rgb2hed", "rgb2hed", lambda: color.rgb2hed(ihc)),
        ("slide", "rgb2hed", "skimage rgb2hed", "rgb2hed", lambda: color.rgb2hed(slide)),
        ("slide", "hed2rgb", "skimage hed2rgb", "hed2rgb", lambda: color.hed2rgb(slide_hed)),
        ("slide", "Macenko", "torchstain fit + normalize", "macenko", lambda: macenko(slide, target)),
        ("slide", "Reinhard", "torchstain fit + normalize", "reinhard", lambda: reinhard(slide, target)),
        ("tile", "Vahadane", "staintools recipe (SPAMS)", "vahadane", lambda: vahadane(tile, target)),
        ("slide", "tissue mask", "rgb2gray + threshold_otsu", "tissue_grey", lambda: tissue(slide)),
    ]
    print(f"ihc.png {ihc.shape[1]}x{ihc.shape[0]}; cmu_small_region.svs level 0 {slide.shape[1]}x{slide.shape[0]}, "
          f"tile {tile.shape[1]}x{tile.shape[0]}, target {target.shape[1]}x{target.shape[0]}; best of {repeats}, {os.cpu_count()} cores, "
          f"MEDAS {ours['slide']['threads']} threads, numpy {np.__version__}, torchstain {version('torchstain')}, "
          f"spams-bin {version('spams-bin')}")
    print(f"{'image':6} {'case':12} {'reference':28} {'reference s':>12} {'MEDAS s':>9} {'MEDAS / ref':>12}")
    for image, what, reference, key, fn in rows:
        theirs, mine = best(fn, repeats), ours[image]["tools"][key]["best_s"]
        print(f"{image:6} {what:12} {reference:28} {theirs:12.4f} {mine:9.4f} {mine / theirs:12.2f}")


if __name__ == "__main__":
    main()

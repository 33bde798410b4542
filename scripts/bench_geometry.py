"""Times SimpleITK on the geometry cases scripts/bench-geometry ran with MEDAS, on the same
image and the same grids, and prints MEDAS's time as a fraction of SimpleITK's."""
import json
import os
import sys

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as nd
from skimage.transform import resize

from bench_io import print_ratios  # the ratio table every benchmark prints


def grid(size, spacing, origin, direction):
    ref = sitk.Image(size, sitk.sitkUInt8)
    ref.SetSpacing(spacing)
    ref.SetOrigin(origin)
    ref.SetDirection(direction)
    return ref


def oblique_direction():
    """10 degrees about z, then 5 about x (Rz @ Rx), as benches/geometry.rs builds it."""
    c, s = np.cos(np.radians(10)), np.sin(np.radians(10))
    rz = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    c, s = np.cos(np.radians(5)), np.sin(np.radians(5))
    rx = np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    return tuple((rz @ rx).ravel())


def affine():
    """The transform benches/geometry.rs writes: 8 degrees about z, x scaled by 1.05, centre
    (0, -180, -300), translation (4, -6, 3)."""
    c, s = np.cos(np.radians(8)), np.sin(np.radians(8))
    transform = sitk.AffineTransform(3)
    transform.SetMatrix((1.05 * c, -s, 0, 1.05 * s, c, 0, 0, 0, 1))
    transform.SetCenter((0, -180, -300))
    transform.SetTranslation((4, -6, 3))
    return transform


def largest(mask, count=1, min_voxels=0):
    """The `count` largest connected regions (6-connected) of at least `min_voxels` voxels."""
    labels, _ = nd.label(mask)
    sizes = np.bincount(labels.ravel())[1:]
    keep = [l + 1 for l in np.argsort(-sizes, kind="stable")[:count] if sizes[l] >= min_voxels]
    return np.isin(labels, keep)


def fill_slices(mask):
    return np.stack([nd.binary_fill_holes(s) for s in mask])


def body_mask(ct):
    """The body-mask recipe of tests/anatomy.rs (scipy): > -500 HU, largest region, holes filled per slice."""
    return fill_slices(largest(ct > -500.0))


def lung_mask(ct, voxel_ml):
    """The lung-mask recipe of tests/anatomy.rs: air (< -320 HU) inside the body, the two largest
    regions of at least 50 ml, holes filled per slice."""
    air = body_mask(ct) & (ct < -320.0)
    return fill_slices(largest(air, 2, int(np.ceil(50.0 / voxel_ml))))


def crop_centre(image, size, value):
    """What SimpleITK users write: pad the axes that grow, crop those that shrink."""
    n = image.GetSize()
    before = [max(0, (m - k) // 2) for k, m in zip(n, size)]
    after = [max(0, m - k - b) for k, m, b in zip(n, size, before)]
    padded = sitk.ConstantPad(image, before, after, value)
    low = [max(0, (k - m) // 2) for k, m in zip(padded.GetSize(), size)]
    return sitk.Crop(padded, low, [k - m - l for k, m, l in zip(padded.GetSize(), size, low)])


def crop_mask(image, mask, margin):
    """Bounding box of the mask's label 1 (LabelShapeStatistics), grown and clipped, then ROI."""
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(mask)
    box = stats.GetBoundingBox(1)
    low = [max(0, box[a] - margin[a]) for a in range(3)]
    high = [min(image.GetSize()[a], box[a] + box[a + 3] + margin[a]) for a in range(3)]
    return sitk.RegionOfInterest(image, [h - l for l, h in zip(low, high)], low)


def split(image):
    half = [n // 2 for n in image.GetSize()]
    return [image[tuple(slice(o, o + 2 * h - 1, 2) for h in half)] for o in (0, 1)]


def main():
    path, ours_json, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ours = json.load(open(ours_json))
    image = sitk.ReadImage(path)
    aligned = grid([300, 280, 170], (1.1, 1.2, 1.3), (-150.3, -300.7, -770.2), image.GetDirection())
    oblique = grid([200, 190, 150], (1.5, 1.5, 1.5), (-130.0, -340.0, -800.0), oblique_direction())
    mask = sitk.Cast(image > 300, sitk.sitkUInt8)
    array = sitk.GetArrayFromImage(image)  # axes k, j, i as Python users hold it
    size = [300, 300, 60]
    spacing = [s * n / m for s, n, m in zip(image.GetSpacing(), image.GetSize(), size)]
    identity = sitk.Transform()
    moved = affine()
    resample = "SimpleITK Resample"
    rows = [
        ("resample onto grid, linear", resample, "resample_reference_linear",
         lambda: sitk.Resample(image, aligned, identity, sitk.sitkLinear, 0.0, sitk.sitkFloat32)),
        ("resample onto grid, nearest", resample, "resample_reference_nearest",
         lambda: sitk.Resample(image, aligned, identity, sitk.sitkNearestNeighbor, 0.0)),
        ("resample onto grid, B-spline", resample, "resample_reference_bspline",
         lambda: sitk.Resample(image, aligned, identity, sitk.sitkBSpline, 0.0, sitk.sitkFloat32)),
        ("resample oblique, linear", resample, "resample_oblique_linear",
         lambda: sitk.Resample(image, oblique, identity, sitk.sitkLinear, 0.0, sitk.sitkFloat32)),
        ("resample to shape, linear", resample, "resample_shape_linear",
         lambda: sitk.Resample(image, size, identity, sitk.sitkLinear, image.GetOrigin(), spacing,
                               image.GetDirection(), 0.0, sitk.sitkFloat32)),
        ("reorient to RAS", "SimpleITK DICOMOrient", "reorient_ras", lambda: sitk.DICOMOrient(image, "RAS")),
        ("flip i and j", "SimpleITK Flip", "flip_01", lambda: sitk.Flip(image, [True, True, False])),
        ("crop/pad centre", "SimpleITK ConstantPad + Crop", "crop_centre",
         lambda: crop_centre(image, [300, 600, 40], -1024)),
        ("crop to mask box", "LabelShapeStatistics + ROI", "crop_mask", lambda: crop_mask(image, mask, [5, 0, 2])),
        ("sub-voxel split", "SimpleITK slicing [o::2]", "subvoxel_split", lambda: split(image)),
        ("resize to 256x256x96, linear", "skimage resize, order 1", "resize_linear",
         lambda: resize(array, (96, 256, 256), order=1, mode="edge", anti_aliasing=False, preserve_range=True)),
        ("rot90 in the i-j plane", "numpy rot90 + copy", "rot90_01",
         lambda: np.ascontiguousarray(np.rot90(array, 1, axes=(2, 1)))),
        ("cast to float32", "SimpleITK Cast", "cast_float32", lambda: sitk.Cast(image, sitk.sitkFloat32)),
        ("threshold HU <= -400", "numpy (a <= t).astype(uint8)", "threshold_upper",
         lambda: (array <= -400).astype(np.uint8)),
        ("apply affine transform, linear", resample, "apply_affine_linear",
         lambda: sitk.Resample(image, aligned, moved, sitk.sitkLinear, 0.0, sitk.sitkFloat32)),
        ("body mask", "scipy recipe (tests/anatomy.rs)", "body_mask", lambda: body_mask(array)),
        ("lung mask", "scipy recipe (tests/anatomy.rs)", "lung_mask",
         lambda: lung_mask(array, float(np.prod(image.GetSpacing())) / 1000.0)),
        ("apply affine transform, nearest", resample, "apply_affine_nearest",
         lambda: sitk.Resample(image, aligned, moved, sitk.sitkNearestNeighbor, 0.0)),
    ]
    size_text = "x".join(str(n) for n in ours["size"])
    print(f"lung1 CT {size_text} int16, best of {repeats}, {os.cpu_count()} cores, "
          f"SimpleITK {sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()} threads, MEDAS {ours['threads']} threads")
    print_ratios(rows, ours, repeats, widths=(30, 30))


if __name__ == "__main__":
    main()

"""The brain-mask-by-registration recipe on real data, shared by tests/brain_mask.rs and
scripts/bench-brain-mask: a subject made from the MNI ICBM152 2009a T1 template (moved by a
known affine transform, resampled onto a 1.5 mm y-flipped grid, times a smooth bias field, plus
noise), its true brain mask (nilearn's load_mni152_brain_mask rule, moved the same way,
nearest), and SimpleITK's version of what preprocess.brain_mask does with its defaults
(ImageRegistrationMethod affine with the template fixed, Mattes MI 50 bins, 10% random samples, regular-step gradient
descent, physical-shift scales, shrink [4, 2], sigmas [2, 1] voxels, moments initializer; then
sitk.Resample of the template mask through the inverse transform, nearest).

usage: bench_brain_mask.py prepare NILEARN_DIR OUT
       bench_brain_mask.py compare OUT REPEATS   (after the Rust probe wrote OUT/medas.json)"""
import json
import os
import sys
import tempfile
import time

import numpy as np
import SimpleITK as sitk

from bench_registration import register  # the same SimpleITK registration settings

TEMPLATE = "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"


def template_mask(template):
    """nilearn's load_mni152_brain_mask(resolution=1): template / max > 0.2, in float32."""
    values = sitk.GetArrayFromImage(template).astype(np.float32)
    mask = sitk.GetImageFromArray((values / values.max() > np.float32(0.2)).astype(np.uint8))
    mask.CopyInformation(template)
    return mask


def truth(template):
    """Subject point -> template point: rotations of 14, -8 and 10 degrees, a 17 mm shift and
    scales 1.08 / 0.94 / 1.06 with a little shear, about the template's centre."""
    center = template.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in template.GetSize()])
    rotation = sitk.Euler3DTransform(center, np.radians(14.0), np.radians(-8.0), np.radians(10.0))
    shape = np.array([[1.08, 0.03, 0.0], [-0.02, 0.94, 0.04], [0.0, 0.02, 1.06]])
    affine = sitk.AffineTransform(3)
    affine.SetCenter(center)
    affine.SetMatrix((np.array(rotation.GetMatrix()).reshape(3, 3) @ shape).ravel().tolist())
    affine.SetTranslation((12.0, -10.0, 8.0))
    return affine


def subject_grid(template, transform):
    """A 1.5 mm grid, y flipped, holding the whole moved template with a 6 mm margin."""
    size = template.GetSize()
    corners = [template.TransformIndexToPhysicalPoint([i * (size[0] - 1), j * (size[1] - 1), k * (size[2] - 1)])
               for i in (0, 1) for j in (0, 1) for k in (0, 1)]
    inverse = transform.GetInverse()
    moved = np.array([inverse.TransformPoint(c) for c in corners])
    lo, hi = moved.min(axis=0) - 6.0, moved.max(axis=0) + 6.0
    grid = sitk.Image([int(np.ceil(n)) for n in (hi - lo) / 1.5], sitk.sitkFloat32)
    grid.SetSpacing((1.5, 1.5, 1.5))
    grid.SetOrigin((float(lo[0]), float(hi[1]), float(lo[2])))
    grid.SetDirection((1, 0, 0, 0, -1, 0, 0, 0, 1))
    return grid


def biased_and_noisy(image, seed=7):
    """Times a smooth multiplicative field (about +-20% across the head) plus Gaussian noise
    (sigma 2% of the maximum), magnitude taken as MR does."""
    values = sitk.GetArrayFromImage(image)
    k, j, i = np.meshgrid(*[np.linspace(-1.0, 1.0, n) for n in values.shape], indexing="ij")
    field = np.exp(0.15 * i - 0.1 * j + 0.08 * k * k)
    noise = np.random.default_rng(seed).normal(0.0, 0.02 * float(values.max()), values.shape)
    out = sitk.GetImageFromArray(np.abs(values * field + noise).astype(np.float32))
    out.CopyInformation(image)
    return out


def simpleitk_brain_mask(subject, template, mask):
    """What preprocess.brain_mask does with its defaults, in SimpleITK."""
    # The registration benchmark's settings, centred by moments; it also resamples the subject
    # onto the template's grid, as the tool outputs it.
    result, _ = register(template, subject, "affine", sitk.CenteredTransformInitializerFilter.MOMENTS)
    return sitk.Resample(mask, subject, result.GetInverse(), sitk.sitkNearestNeighbor, 0)


def dice(a, b):
    a, b = sitk.GetArrayViewFromImage(a) != 0, sitk.GetArrayViewFromImage(b) != 0
    return 2.0 * float(np.logical_and(a, b).sum()) / float(a.sum() + b.sum())


def prepare(nilearn, out):
    """Writes template.nrrd, template_mask.nrrd, subject.nrrd, truth_mask.nrrd and SimpleITK's
    mask (sitk_mask.nrrd) with its Dice and time (sitk.json)."""
    template = sitk.ReadImage(os.path.join(nilearn, TEMPLATE), sitk.sitkFloat32)
    mask = template_mask(template)
    transform = truth(template)
    grid = subject_grid(template, transform)
    subject = biased_and_noisy(sitk.Resample(template, grid, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32))
    true_mask = sitk.Resample(mask, grid, transform, sitk.sitkNearestNeighbor, 0)
    for name, image in [("template", template), ("template_mask", mask), ("subject", subject), ("truth_mask", true_mask)]:
        sitk.WriteImage(image, os.path.join(out, f"{name}.nrrd"))
    start = time.perf_counter()
    theirs = simpleitk_brain_mask(subject, template, mask)
    seconds = time.perf_counter() - start
    sitk.WriteImage(theirs, os.path.join(out, "sitk_mask.nrrd"))
    report = {"dice": dice(theirs, true_mask), "seconds": seconds, "subject_size": list(subject.GetSize())}
    json.dump(report, open(os.path.join(out, "sitk.json"), "w"))


def compare(out, repeats):
    """Times SimpleITK's recipe on the prepared inputs and prints MEDAS's time as a fraction."""
    read = lambda name: sitk.ReadImage(os.path.join(out, f"{name}.nrrd"))
    subject, template, mask, true_mask = read("subject"), read("template"), read("template_mask"), read("truth_mask")
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        theirs = simpleitk_brain_mask(subject, template, mask)
        times.append(time.perf_counter() - start)
    ours = json.load(open(os.path.join(out, "medas.json")))["tools"]["brain_mask_affine"]["best_s"]
    # MEDAS's mask: its saved transform applied to the template mask as the tool does (nearest).
    transform = sitk.ReadTransform(os.path.join(tempfile.gettempdir(), "medas_bench_brain_mask.tfm"))
    ours_dice = dice(sitk.Resample(mask, subject, transform, sitk.sitkNearestNeighbor, 0), true_mask)
    print(f"subject {'x'.join(map(str, subject.GetSize()))} (1.5 mm) from the MNI T1 template {'x'.join(map(str, template.GetSize()))}; "
          f"best of {repeats}, {os.cpu_count()} cores, SimpleITK {sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()} threads")
    print(f"{'case':22} {'SimpleITK s':>12} {'MEDAS s':>9} {'MEDAS / ref':>12} {'Dice sitk':>10} {'Dice MEDAS':>11}")
    print(f"{'brain_mask affine':22} {min(times):12.2f} {ours:9.2f} {ours / min(times):12.2f} {dice(theirs, true_mask):10.4f} {ours_dice:11.4f}")


if __name__ == "__main__":
    if sys.argv[1] == "prepare":
        prepare(sys.argv[2], sys.argv[3])
    else:
        compare(sys.argv[2], int(sys.argv[3]))

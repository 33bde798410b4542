"""Prepares the registration benchmark's images (the MNI template and two moved copies; and the
template shrunk 4x with a copy deformed by a known B-spline; tests/registration.rs and
tests/deformable.rs import the same transforms, grids and settings from here) and,
after scripts/bench-registration ran MEDAS on them, times SimpleITK's ImageRegistrationMethod
with the same settings on the same images and prints MEDAS's time as a fraction of it, with the
target-registration error of both (mean over the GM+WM > 0.5 brain mask)."""
import json
import os
import sys
import tempfile
import time

import numpy as np
import SimpleITK as sitk


def truths(fixed):
    """The known transforms of tests/registration.rs (about the template's centre)."""
    center = fixed.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in fixed.GetSize()])
    rigid = sitk.Euler3DTransform(center, 0.20, -0.12, 0.25, (12.0, -10.0, 8.0))
    affine = sitk.AffineTransform(3)
    affine.SetCenter(center)
    shape = np.array([[1.08, 0.04, 0.0], [-0.03, 0.95, 0.05], [0.02, 0.0, 1.04]])
    affine.SetMatrix((np.array(rigid.GetMatrix()).reshape(3, 3) @ shape).ravel().tolist())
    affine.SetTranslation((-9.0, 7.0, 11.0))
    return {"rigid": rigid, "affine": affine}


def bspline_truth(fixed):
    """A known smooth deformation over the template: a cubic B-spline on a 3-span mesh
    (sitk.BSplineTransformInitializer) with seeded coefficients, scaled so that the largest
    displacement over the grid's control points is 15 mm."""
    truth = sitk.BSplineTransformInitializer(fixed, [3, 3, 3])
    coefficients = np.random.default_rng(7).normal(size=len(truth.GetParameters()))
    truth.SetParameters((coefficients * 15.0 / np.abs(coefficients).max()).tolist())
    return truth


def bspline_problem(template):
    """The B-spline case of tests/deformable.rs: the template shrunk 4x (sitk.BinShrink), the
    known deformation over it, and the deformed copy. The moving grid is the fixed one shifted by
    a fraction of a voxel, so that samples do not fall on the moving image's voxel centres, where
    linear interpolation has kinks."""
    fixed = sitk.BinShrink(template, [4, 4, 4])
    truth = bspline_truth(fixed)
    grid = sitk.Image(fixed.GetSize(), sitk.sitkFloat32)
    grid.CopyInformation(fixed)
    grid.SetOrigin([o + d for o, d in zip(fixed.GetOrigin(), (1.3, -1.7, 0.9))])
    moving = sitk.Resample(fixed, grid, truth, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    return fixed, truth, moving


# On the template shrunk 4x (sitk.BinShrink): SimpleITK's B-spline registration takes minutes
# per run at 2x on two cores.
BSPLINE = {"mesh": 4, "shrink": [2, 1], "sigmas": [1.0, 0.0], "iterations": 50}


def register_bspline(fixed, moving, settings=BSPLINE):
    """SimpleITK's B-spline registration with the settings MEDAS gets (mean squares, 10% random
    samples, LBFGSB with its defaults but the iterations, the same pyramid)."""
    transform = sitk.BSplineTransformInitializer(fixed, [settings["mesh"]] * 3)
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMeanSquares()
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(0.1, 42)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsLBFGSB(gradientConvergenceTolerance=1e-5, numberOfIterations=settings["iterations"],
                                maximumNumberOfCorrections=5, maximumNumberOfFunctionEvaluations=1000,
                                costFunctionConvergenceFactor=1e7)
    method.SetShrinkFactorsPerLevel(settings["shrink"])
    method.SetSmoothingSigmasPerLevel(settings["sigmas"])
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    method.SetInitialTransform(transform, inPlace=True)
    result = method.Execute(fixed, moving)
    sitk.Resample(moving, fixed, result, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    return result, method


def moving_grid(fixed):
    """1.5 mm, x flipped, covering the template's box (as the test's moving grid)."""
    size = [int(np.ceil(n / 1.5)) + 4 for n in fixed.GetSize()]
    ends = np.array([fixed.GetOrigin(), fixed.TransformIndexToPhysicalPoint([n - 1 for n in fixed.GetSize()])])
    lo, hi = ends.min(axis=0), ends.max(axis=0)
    grid = sitk.Image(size, sitk.sitkFloat32)
    grid.SetSpacing((1.5, 1.5, 1.5))
    grid.SetOrigin((float(hi[0]) + 3.0, float(lo[1]) - 3.0, float(lo[2]) - 3.0))
    grid.SetDirection((-1, 0, 0, 0, 1, 0, 0, 0, 1))
    return grid


def prepare(nilearn, work):
    fixed = sitk.ReadImage(f"{nilearn}/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz", sitk.sitkFloat32)
    sitk.WriteImage(fixed, f"{work}/fixed.nrrd")
    grid = moving_grid(fixed)
    for kind, truth in truths(fixed).items():
        sitk.WriteImage(sitk.Resample(fixed, grid, truth, sitk.sitkLinear, 0.0, sitk.sitkFloat32), f"{work}/moving_{kind}.nrrd")
    small, truth, moving = bspline_problem(fixed)
    sitk.WriteImage(small, f"{work}/fixed_bspline.nrrd")
    sitk.WriteImage(moving, f"{work}/moving_bspline.nrrd")
    sitk.WriteTransform(truth, f"{work}/truth_bspline.tfm")


def register(fixed, moving, kind, initializer=sitk.CenteredTransformInitializerFilter.GEOMETRY):
    """SimpleITK's registration with the settings MEDAS gets (benches/registration.rs)."""
    initial = sitk.Euler3DTransform() if kind == "rigid" else sitk.AffineTransform(3)
    init = sitk.CenteredTransformInitializer(fixed, moving, initial, initializer)
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(50)
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(0.1, 42)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(1.0, 1e-3, 200, 0.5, 1e-4)
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel([4, 2])
    method.SetSmoothingSigmasPerLevel([2.0, 1.0])
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    method.SetInitialTransform(init, inPlace=False)
    result = method.Execute(fixed, moving)
    # The moving image resampled onto the fixed grid, as MEDAS's tool outputs it.
    sitk.Resample(moving, fixed, result, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    return result, method


def tre(truth, found, points):
    """Mean |T_true(T(x)) - x| over the points (mm)."""
    back = np.array([truth.TransformPoint(found.TransformPoint(p)) for p in points])
    return float(np.linalg.norm(back - points, axis=1).mean())


def brain_points(nilearn, fixed, every=50):
    gm = sitk.GetArrayFromImage(sitk.ReadImage(f"{nilearn}/mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz"))
    wm = sitk.GetArrayFromImage(sitk.ReadImage(f"{nilearn}/mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz"))
    k, j, i = np.nonzero(gm + wm > 0.5)
    return np.array([fixed.TransformIndexToPhysicalPoint((int(a), int(b), int(c))) for a, b, c in zip(i[::every], j[::every], k[::every])])


def compare(nilearn, work, repeats):
    fixed = sitk.ReadImage(f"{work}/fixed.nrrd")
    points = brain_points(nilearn, fixed)
    print(f"MNI T1 template {'x'.join(map(str, fixed.GetSize()))} float32 -> moved copy on a 1.5 mm x-flipped grid; "
          f"best of {repeats}, {os.cpu_count()} cores, SimpleITK {sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()} threads")
    print(f"{'case':28} {'SimpleITK s':>12} {'MEDAS s':>9} {'MEDAS / ref':>12} {'TRE sitk mm':>12} {'TRE MEDAS mm':>13}")
    for kind, truth in truths(fixed).items():
        moving = sitk.ReadImage(f"{work}/moving_{kind}.nrrd")
        ours = json.load(open(f"{work}/medas_{kind}.json"))
        mine = ours["tools"][f"register_{kind}_mattes"]["best_s"]
        times, result = [], None
        for _ in range(repeats):
            start = time.perf_counter()
            result, _ = register(fixed, moving, kind)
            times.append(time.perf_counter() - start)
        theirs = min(times)
        our_transform = sitk.ReadTransform(os.path.join(tempfile.gettempdir(), f"medas_bench_{kind}.tfm"))
        print(f"register {kind:8} Mattes MI    {theirs:12.2f} {mine:9.2f} {mine / theirs:12.2f} "
              f"{tre(truth, result, points):12.3f} {tre(truth, our_transform, points):13.3f}")
    compare_bspline(work, points, repeats)


def compare_bspline(work, points, repeats):
    """The B-spline row: the template shrunk 4x, the settings of tests/deformable.rs."""
    fixed, moving = sitk.ReadImage(f"{work}/fixed_bspline.nrrd"), sitk.ReadImage(f"{work}/moving_bspline.nrrd")
    truth = sitk.ReadTransform(f"{work}/truth_bspline.tfm")
    mine = json.load(open(f"{work}/medas_bspline.json"))["tools"]["register_bspline_mse"]["best_s"]
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result, method = register_bspline(fixed, moving)
        times.append(time.perf_counter() - start)
    theirs = min(times)
    our_transform = sitk.ReadTransform(os.path.join(tempfile.gettempdir(), "medas_bench_bspline.tfm"))
    print(f"register bspline MSE (4 mm)  {theirs:12.2f} {mine:9.2f} {mine / theirs:12.2f} "
          f"{tre(truth, result, points):12.3f} {tre(truth, our_transform, points):13.3f}"
          f"   (SimpleITK: {method.GetOptimizerIteration()} iterations in the last level)")


if __name__ == "__main__":
    if sys.argv[1] == "prepare":
        prepare(sys.argv[2], sys.argv[3])
    else:
        compare(sys.argv[2], sys.argv[3], int(sys.argv[4]))

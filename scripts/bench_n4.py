"""Times SimpleITK's N4 on the cases scripts/bench-n4 ran with MEDAS, on the same image, and
prints MEDAS's time as a fraction of SimpleITK's."""
import json
import os
import sys

import SimpleITK as sitk

from bench_io import best  # best-of-N wall time, shared with the I/O benchmark


def n4(image, threshold):
    """What SimpleITK's N4 example does: Otsu mask, shrink image and mask by 4, correct, then
    the log field at full resolution and the full-resolution corrected image."""
    mask = sitk.OtsuThreshold(image, 0, 1, 200)
    corrector = sitk.N4BiasFieldCorrectionImageFilter()
    corrector.SetMaximumNumberOfIterations([50, 50, 50, 50])
    corrector.SetConvergenceThreshold(threshold)
    corrector.Execute(sitk.Shrink(image, [4] * 3), sitk.Shrink(mask, [4] * 3))
    log_field = corrector.GetLogBiasFieldAsImage(image)
    return image / sitk.Exp(log_field)


def main():
    path, ours_json, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ours = json.load(open(ours_json))
    image = sitk.Cast(sitk.ReadImage(path), sitk.sitkFloat32)  # N4 needs real voxels; not timed
    rows = [
        ("N4, threshold 0.001", "n4_default", lambda: n4(image, 0.001)),
        ("N4, 200 iterations", "n4_200_iterations", lambda: n4(image, 0.0)),
    ]
    size = "x".join(str(n) for n in ours["size"])
    print(f"MNI T1 {size}, shrink 4, iterations [50]*4, best of {repeats}, {os.cpu_count()} cores, "
          f"SimpleITK {sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()} threads, MEDAS {ours['threads']} threads")
    print(f"{'case':24} {'SimpleITK s':>12} {'MEDAS s':>9} {'MEDAS / SimpleITK':>18}")
    for what, key, fn in rows:
        theirs, mine = best(fn, repeats), ours["tools"][key]["best_s"]
        print(f"{what:24} {theirs:12.3f} {mine:9.3f} {mine / theirs:18.3f}")


if __name__ == "__main__":
    main()

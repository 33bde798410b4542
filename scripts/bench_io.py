"""Times the readers of record on the files scripts/bench-io prepared and prints ratios."""
import glob
import json
import os
import sys
import time

import nibabel as nib
import numpy as np
import pydicom
import SimpleITK as sitk


def best(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def print_ratios(rows, ours, repeats, widths=(26, 30)):
    """Times each reference row `(what, reference, key, fn)` and prints it beside MEDAS's best
    time for `key` in the probe's report, with MEDAS's time over the reference's."""
    what_width, reference_width = widths
    print(f"{'case':{what_width}} {'reference':{reference_width}} {'reference s':>12} {'MEDAS s':>9} {'MEDAS / ref':>12}")
    for what, reference, key, fn in rows:
        theirs, mine = best(fn, repeats), ours["tools"][key]["best_s"]
        print(f"{what:{what_width}} {reference:{reference_width}} {theirs:12.4f} {mine:9.4f} {mine / theirs:12.2f}")


def pydicom_stack(folder):
    """What a researcher writes: read every file, sort by position on the normal, stack, rescale."""
    slices = [pydicom.dcmread(f) for f in glob.glob(os.path.join(folder, "*"))]
    iop = np.array(slices[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    slices.sort(key=lambda s: float(np.dot(normal, np.array(s.ImagePositionPatient, dtype=float))))
    volume = np.stack([s.pixel_array for s in slices], axis=-1)
    slope = float(getattr(slices[0], "RescaleSlope", 1))
    intercept = float(getattr(slices[0], "RescaleIntercept", 0))
    return volume * slope + intercept if (slope, intercept) != (1.0, 0.0) else volume


def sitk_series(folder):
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(folder))
    return sitk.GetArrayViewFromImage(reader.Execute())


def main():
    work, repeats = sys.argv[1], int(sys.argv[2])
    nii, dcm = os.path.join(work, "lung1.nii.gz"), os.path.join(work, "lung1_dicom")
    ours = {k: json.load(open(os.path.join(work, f"medas_{k}.json")))["best_s"] for k in ("nifti", "dicom")}
    rows = [
        ("NIfTI.gz", "nibabel", best(lambda: np.asanyarray(nib.load(nii).dataobj), repeats), ours["nifti"]),
        ("NIfTI.gz", "SimpleITK", best(lambda: sitk.GetArrayViewFromImage(sitk.ReadImage(nii)), repeats), ours["nifti"]),
        ("DICOM series", "pydicom+numpy", best(lambda: pydicom_stack(dcm), repeats), ours["dicom"]),
        ("DICOM series", "SimpleITK", best(lambda: sitk_series(dcm), repeats), ours["dicom"]),
    ]
    print(f"lung1 CT 512x512x48 int16, best of {repeats}, {os.cpu_count()} cores")
    print(f"{'input':14} {'reference':15} {'reference s':>12} {'MEDAS s':>9} {'MEDAS speed-up':>15}")
    for what, ref, theirs, mine in rows:
        print(f"{what:14} {ref:15} {theirs:12.3f} {mine:9.3f} {theirs / mine:14.2f}x")


if __name__ == "__main__":
    main()

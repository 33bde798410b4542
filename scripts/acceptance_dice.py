"""Independent check of an acceptance run: reads `medas predict`'s label maps and the dataset's
ground-truth labels with SimpleITK, checks that every label map has its image's grid, and
recomputes the foreground Dice (label > 0 in the truth, class 1 in the prediction).

usage: acceptance_dice.py MANIFEST.json PREDICTION_DIR
"""
import json
import sys

import numpy as np
import SimpleITK as sitk


def same_grid(a, b):
    return (a.GetSize() == b.GetSize()
            and np.allclose(a.GetSpacing(), b.GetSpacing())
            and np.allclose(a.GetOrigin(), b.GetOrigin())
            and np.allclose(a.GetDirection(), b.GetDirection()))


def main(manifest_path, prediction_dir):
    manifest = json.load(open(manifest_path))
    summary = json.load(open(f"{prediction_dir}/summary.json"))
    cases = {c["id"]: c for c in manifest["cases"]}
    ours, theirs = [], []
    for result in summary["cases"]:
        case = cases[result["id"]]
        predicted = sitk.ReadImage(result["labels"])
        image = sitk.ReadImage(case["images"][0]["path"])
        if not same_grid(predicted, image):
            sys.exit(f"{result['id']}: the label map is not on the image's grid")
        truth = sitk.GetArrayFromImage(sitk.ReadImage(case["label"]["path"])) > 0
        labels = sitk.GetArrayFromImage(predicted) == 1
        both = np.logical_and(truth, labels).sum()
        total = truth.sum() + labels.sum()
        theirs.append(1.0 if total == 0 else 2.0 * both / total)
        ours.append(result["mean_dice"])
    print(f"{len(theirs)} validation cases: Dice recomputed by SimpleITK/numpy {np.mean(theirs):.4f} "
          f"(medas predict's summary {np.mean(ours):.4f}); every label map on its image's grid")
    if abs(np.mean(theirs) - np.mean(ours)) > 1e-9:
        sys.exit("the two Dice figures differ")


if __name__ == "__main__":
    main(*sys.argv[1:])

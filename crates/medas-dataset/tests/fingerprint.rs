//! Fingerprint of a dataset built from lung1 and brain1 (plus a case whose label grid does not
//! match and one whose label is empty), against the same figures computed independently with
//! SimpleITK, numpy and scipy.ndimage (face connectivity). Tolerances: sizes, voxel and component
//! counts exact; spacing 1e-9 mm; intensity statistics 1e-9 relative (summation order differs).

mod support;

use medas_dataset::fingerprint::fingerprint;
use medas_dataset::{import, register};
use medas_testkit::{python, scratch_dir};
use support::*;

const REFERENCE: &str = r#"
import sys, json, math
import numpy as np, SimpleITK as sitk
from scipy import ndimage
out = {"cases": {}, "samples": []}
shapes, spacings = [], []
for case, image, label in zip(sys.argv[2::3], sys.argv[3::3], sys.argv[4::3]):
    img, lab = sitk.ReadImage(image), sitk.ReadImage(label)
    shapes.append(list(img.GetSize())); spacings.append(list(img.GetSpacing()))
    if img.GetSize() != lab.GetSize():
        continue
    a, l = sitk.GetArrayFromImage(img).astype(np.float64), sitk.GetArrayFromImage(lab).astype(np.int64)
    labels = {}
    for v in np.unique(l):
        comps = 0 if v == 0 else int(ndimage.label(l == v)[1])
        labels[str(int(v))] = {"voxels": int((l == v).sum()), "components": comps}
    fg = a.ravel()[l.ravel() > 0]
    k = max(1, math.ceil(len(fg) / 10000))
    out["samples"] += fg[::k].tolist()
    out["cases"][case] = labels
s = np.array(out["samples"])
out["stats"] = {"samples": len(s), "mean": s.mean(), "std": s.std(), "min": s.min(), "max": s.max(), "median": np.median(s),
                "p005": np.percentile(s, 0.5), "p995": np.percentile(s, 99.5)} if len(s) else None
out["shape"] = [[float(np.min(c)), float(np.median(c)), float(np.max(c))] for c in np.array(shapes).T]
out["spacing"] = [[float(np.min(c)), float(np.median(c)), float(np.max(c))] for c in np.array(spacings).T]
del out["samples"]
json.dump(out, open(sys.argv[1], "w"))
"#;

fn close(ours: f64, theirs: f64, what: &str) {
    let tolerance = 1e-9 * theirs.abs().max(1.0);
    assert!((ours - theirs).abs() <= tolerance, "{what}: {ours} vs {theirs}");
}

#[test]
fn fingerprint_matches_simpleitk_numpy_and_scipy() {
    let Some(s) = sources("fingerprint") else { return };
    let root = scratch_dir("dataset-fingerprint/generic");
    put(&root, "lung1.nii.gz", &s.lung_image);
    put(&root, "lung1_seg.nii.gz", &s.lung_label);
    put(&root, "brain1.nii.gz", &s.brain_image);
    put(&root, "brain1_seg.nii.gz", &s.brain_label);
    put(&root, "mismatch.nii.gz", &s.lung_image);
    put(&root, "mismatch_seg.nii.gz", &s.brain_label);
    put(&root, "empty.nii.gz", &s.brain_image);
    let label = medas_io::read(&s.brain_label).unwrap();
    let shape = label.voxels().shape().to_vec();
    let zero = label.with_voxels(medas_image::Voxels::from_fortran_vec(&shape, vec![0u8; label.voxels().len()]).unwrap()).unwrap();
    medas_io::write(&zero, root.join("empty_seg.nii.gz")).unwrap();
    let data = scratch_dir("dataset-fingerprint/data");
    let stored = register(&import(&root, None, None).unwrap().dataset, &data, false).unwrap();
    let print = fingerprint(&stored.manifest);

    let reference = root.join("reference.json");
    let mut args = vec![reference.display().to_string()];
    for case in ["brain1", "empty", "lung1", "mismatch"] {
        args.extend([case.to_string(), root.join(format!("{case}.nii.gz")).display().to_string(), root.join(format!("{case}_seg.nii.gz")).display().to_string()]);
    }
    python(REFERENCE, &args);
    let theirs: serde_json::Value = serde_json::from_slice(&std::fs::read(&reference).unwrap()).unwrap();
    eprintln!("fingerprint: {}", serde_json::to_string(&print.foreground_intensity).unwrap());
    eprintln!("reference:   {}", theirs["stats"]);

    for (axis, range) in print.shape.iter().enumerate() {
        assert_eq!([range.min, range.median, range.max], [0, 1, 2].map(|i| theirs["shape"][axis][i].as_f64().unwrap()), "shape axis {axis}");
    }
    for (axis, range) in print.spacing.iter().enumerate() {
        for (ours, i) in [range.min, range.median, range.max].into_iter().zip(0..) {
            close(ours, theirs["spacing"][axis][i].as_f64().unwrap(), "spacing");
        }
    }
    for case in ["brain1", "lung1", "empty"] {
        let ours = &print.cases.iter().find(|c| c.id == case).unwrap().labels;
        let expected = theirs["cases"][case].as_object().unwrap();
        assert_eq!(ours.len(), expected.len(), "{case}: {ours:?}");
        for (value, count) in ours {
            assert_eq!(count.voxels, expected[&value.to_string()]["voxels"].as_u64().unwrap(), "{case} label {value}");
            assert_eq!(count.components, expected[&value.to_string()]["components"].as_u64().unwrap(), "{case} label {value}");
        }
    }
    let stats = print.foreground_intensity.as_ref().unwrap();
    let t = &theirs["stats"];
    assert_eq!(stats.samples as u64, t["samples"].as_u64().unwrap());
    for (ours, key) in [(stats.mean, "mean"), (stats.std, "std"), (stats.min, "min"), (stats.max, "max"), (stats.median, "median"), (stats.percentile_00_5, "p005"), (stats.percentile_99_5, "p995")] {
        close(ours, t[key].as_f64().unwrap(), key);
    }
    let problems: Vec<(String, String)> = print.anomalies.iter().map(|a| (a.case.clone(), a.problem.clone())).collect();
    assert_eq!(
        problems,
        [
            ("empty".to_string(), "label image has no foreground".to_string()),
            ("mismatch".to_string(), "label grid [256, 256, 25] does not match the image grid [512, 512, 48] (size, spacing, origin or direction)".to_string()),
        ]
    );
}

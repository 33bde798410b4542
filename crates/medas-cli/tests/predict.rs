//! End-to-end model store and prediction: `medas train --model` stores the best checkpoint,
//! `medas model list|show|delete|import` manage the store, `medas predict` writes label maps
//! on the input's grid and per-case Dice that an independent recomputation from the written
//! files reproduces; a hand-made thresholding network proves voxel (i, j, k) of the label map
//! is voxel (i, j, k) of a rotated, anisotropic, non-cubic input (also through the catalog tool
//! `network.predict`); and the errors a user meets.

use std::path::Path;

use medas_dataset::split::SplitMix64;
use medas_image::{Geometry, Image, Voxels};
use medas_nn::store::{pytorch, weights};
use medas_nn::{ComputeDevice, NetworkConfig};
use medas_testkit::scratch_dir;
use ndarray::IxDyn;
mod support;

use support::{fails, ok};

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Trains a tiny 2-D U-Net on four generated 64² nuclei tiles and stores it as `nuc`.
fn train_nuclei(root: &Path, data: &Path) {
    let tiles = root.join("nuclei");
    ok(data, &["dataset", "generate", "nuclei", tiles.to_str().unwrap(), "--cases", "4", "--size", "64", "--seed", "3", "--import"]);
    let config = root.join("train.json");
    std::fs::write(
        &config,
        r#"{"network": {"name": "unet", "spatial": "2d", "in_channels": 3, "classes": 2, "depth": 2, "base_channels": 4},
            "sampler": {"patch": [1, 32, 32], "batch_size": 2}, "labels": "foreground",
            "epochs": 1, "iterations_per_epoch": 2, "seed": 4}"#,
    )
    .unwrap();
    let run = root.join("run");
    let train = ["train", "nuclei", "--config", config.to_str().unwrap(), "--out", run.to_str().unwrap(), "--model"];
    let message = fails(data, &[&train[..], &["bad name"]].concat());
    assert!(message.contains("invalid model name \"bad name\""), "refused before training: {message}");
    let summary = json(&ok(data, &[&train[..], &["nuc"]].concat()));
    assert_eq!(summary["model"], "nuc");
    // The same run stored again under a second name, without a dataset.
    ok(data, &["model", "import", "nuc-copy", "--run", run.to_str().unwrap()]);
    let copy = json(&ok(data, &["model", "show", "nuc-copy"]));
    assert!(copy["metadata"]["dataset"].is_null() && copy["metadata"]["training"]["labels"] == "foreground", "{copy}");
    ok(data, &["model", "delete", "nuc-copy"]);
}

/// Dice of foreground (> 0) between two images' voxels, computed here from the files.
fn foreground_dice(predicted: &Image, truth: &Image) -> f64 {
    let (p, t) = (predicted.voxels().cast::<f64>(), truth.voxels().cast::<f64>());
    assert_eq!(p.shape(), t.shape());
    let (mut both, mut ours, mut theirs) = (0usize, 0usize, 0usize);
    for (&a, &b) in p.iter().zip(t.iter()) {
        both += usize::from(a > 0.0 && b > 0.0);
        ours += usize::from(a > 0.0);
        theirs += usize::from(b > 0.0);
    }
    if ours + theirs == 0 { 1.0 } else { 2.0 * both as f64 / (ours + theirs) as f64 }
}

#[test]
fn a_trained_model_is_stored_listed_and_predicts_a_dataset() {
    let root = scratch_dir("cli-predict");
    let data = root.join("data");
    train_nuclei(&root, &data);
    listed_and_shown(&data);
    dataset_prediction_and_dice(&root, &data);
    single_image_with_probabilities(&root, &data);
    errors_a_user_meets(&root, &data);
    ok(&data, &["model", "delete", "nuc"]);
    assert!(!ok(&data, &["model", "list"]).contains("nuc"));
    let message = fails(&data, &["model", "delete", "nuc"]);
    assert!(message.contains("no model \"nuc\""), "{message}");
}

fn listed_and_shown(data: &Path) {
    let listed = ok(data, &["model", "list"]);
    assert!(listed.lines().any(|l| l.starts_with("nuc ") && l.contains("unet")), "{listed}");
    let listed = json(&ok(data, &["model", "list", "--json"]));
    assert_eq!(listed[0]["name"], "nuc");
    assert!(listed[0]["metrics"]["best_validation_dice"].is_number(), "{listed}");
    let shown = json(&ok(data, &["model", "show", "nuc"]));
    assert_eq!(shown["config"]["name"], "unet");
    assert_eq!(shown["metadata"]["dataset"]["name"], "nuclei");
    assert_eq!(shown["metadata"]["training"]["labels"], "foreground");
    assert_eq!(shown["metadata"]["training"]["normalization"]["kind"], "zscore");
}

/// Every case of the dataset: label maps on the input's grid, Dice recomputed from the files;
/// then a saved fold's validation cases.
fn dataset_prediction_and_dice(root: &Path, data: &Path) {
    let out = root.join("predicted");
    let summary = json(&ok(data, &["predict", "nuc", "--dataset", "nuclei", "--out", out.to_str().unwrap()]));
    assert_eq!(json(&std::fs::read_to_string(out.join("summary.json")).unwrap()), summary);
    let manifest = medas_dataset::store::load(data, "nuclei", None).unwrap();
    assert_eq!(summary["cases"].as_array().unwrap().len(), manifest.cases.len());
    let mut dice_sum = 0.0;
    for case in &manifest.cases {
        let reported = summary["cases"].as_array().unwrap().iter().find(|c| c["id"] == case.id.as_str()).unwrap();
        let input = medas_io::read(&case.images[0].path).unwrap();
        let labels = medas_io::read(out.join(format!("{}.nrrd", case.id))).unwrap();
        assert_eq!((labels.size(), labels.components(), labels.scalar_type()), (input.size(), 1, medas_image::ScalarType::U8));
        assert_eq!(labels.geometry(), input.geometry());
        // Independent Dice from the written label map and the dataset's instance mask; the
        // same counts give the same quotient, so the tolerance is 1e-12 (rounding only).
        let dice = foreground_dice(&labels, &medas_io::read(&case.label.as_ref().unwrap().path).unwrap());
        let shown = reported["dice"]["1"].as_f64().unwrap();
        eprintln!("case {}: Dice {shown} reported, {dice} recomputed", case.id);
        assert!((dice - shown).abs() < 1e-12, "case {}: {dice} vs {shown}", case.id);
        assert_eq!(reported["mean_dice"].as_f64().unwrap(), shown);
        dice_sum += dice;
    }
    assert!((summary["mean_dice"].as_f64().unwrap() - dice_sum / manifest.cases.len() as f64).abs() < 1e-12);

    // A fold's validation cases: two of the four in a 2-fold split.
    let made = ok(data, &["dataset", "split", "nuclei", "--kind", "kfold", "--folds", "2", "--seed", "0"]);
    assert!(made.contains("kfold2-seed0"), "{made}");
    let fold = root.join("fold");
    let summary = json(&ok(data, &["predict", "nuc", "--dataset", "nuclei", "--split", "kfold2-seed0", "--fold", "1", "--out", fold.to_str().unwrap()]));
    assert_eq!(summary["cases"].as_array().unwrap().len(), 2, "{summary}");
}

/// One case by file, with probabilities and test-time flips: two components summing to 1.
fn single_image_with_probabilities(root: &Path, data: &Path) {
    let manifest = medas_dataset::store::load(data, "nuclei", None).unwrap();
    let first = &manifest.cases[0];
    let single = root.join("single");
    let summary = json(&ok(data, &["predict", "nuc", "--input", first.images[0].path.to_str().unwrap(), "--out", single.to_str().unwrap(), "--probabilities", "--tta"]));
    assert!(summary["cases"][0].get("dice").is_none(), "{summary}");
    let stem = first.images[0].path.file_stem().unwrap().to_str().unwrap();
    let probabilities = medas_io::read(single.join(format!("{stem}_probabilities.nrrd"))).unwrap();
    assert_eq!((probabilities.components(), probabilities.scalar_type()), (2, medas_image::ScalarType::F32));
    let values = probabilities.voxels().cast::<f32>();
    let labels = medas_io::read(single.join(format!("{stem}.nrrd"))).unwrap().voxels().cast::<u8>();
    for (index, &label) in labels.indexed_iter() {
        let p: Vec<f32> = (0..2).map(|c| values[[index[0], index[1], c]]).collect();
        assert!((p[0] + p[1] - 1.0).abs() < 1e-5, "{p:?} at {index:?}");
        assert!(label == u8::from(p[1] > p[0]) || (p[1] - p[0]).abs() < 1e-6, "label {label}, {p:?}");
    }
}

fn errors_a_user_meets(root: &Path, data: &Path) {
    let single = root.join("single");
    let volume = root.join("gray.nrrd");
    medas_io::write(&Image::from_voxels(Voxels::from_fortran_vec(&[8, 8, 4], vec![1f32; 256]).unwrap()).unwrap(), &volume).unwrap();
    let message = fails(data, &["predict", "nuc", "--input", volume.to_str().unwrap(), "--out", single.to_str().unwrap()]);
    assert!(message.contains("error: case gray: model nuc takes 3 input channel(s), the image has 1"), "{message}");
    let message = fails(data, &["predict", "absent", "--input", volume.to_str().unwrap(), "--out", single.to_str().unwrap()]);
    assert!(message.contains("no model \"absent\""), "{message}");
    let notes = root.join("notes.txt");
    std::fs::write(&notes, "not an image").unwrap();
    let message = fails(data, &["predict", "nuc", "--input", notes.to_str().unwrap(), "--out", single.to_str().unwrap()]);
    assert!(message.contains("notes.txt: cannot tell the file format") && message.matches("notes.txt").count() == 1, "{message}");
    let message = fails(data, &["predict", "nuc", "--dataset", "nuclei", "--cases", "nope", "--out", single.to_str().unwrap()]);
    assert!(message.contains("has no case nope"), "{message}");
}

/// A 3-D U-Net without pooling, 1×1×1 convolutions and one channel, weighted by hand so that
/// class 1 wins exactly where the input exceeds `threshold`: every convolution passes its input
/// on (weights 1, biases 0; LeakyReLU keeps the sign), the head gives class 0 the logit 0 and
/// class 1 the logit `x - threshold`.
fn threshold_network(folder: &Path, threshold: f32, pytorch_names: bool) -> (std::path::PathBuf, std::path::PathBuf) {
    let config_json = r#"{"name": "unet", "spatial": "3d", "in_channels": 1, "classes": 2, "depth": 0, "base_channels": 1,
                          "convs_per_block": 1, "kernel": 1, "norm": "none"}"#;
    let config = NetworkConfig::from_json(config_json).unwrap();
    let names = weights::tensor_names(&config.build(&ComputeDevice::Cpu.inference()).unwrap());
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, shape) in names {
        let count: usize = shape.iter().product();
        let values: Vec<f32> = match (name.contains("head"), name.ends_with("bias")) {
            (true, true) => vec![0.0, -threshold],
            (true, false) => vec![0.0, 1.0],
            (false, true) => vec![0.0; count],
            (false, false) => vec![1.0; count],
        };
        assert_eq!(values.len(), count, "{name} {shape:?}");
        let file_name = if pytorch_names { pytorch::torch_name(&name) } else { name };
        tensors.push((file_name, shape, values.iter().flat_map(|v| v.to_le_bytes()).collect()));
    }
    let views: Vec<(String, safetensors::tensor::TensorView)> =
        tensors.iter().map(|(name, shape, bytes)| (name.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes).unwrap())).collect();
    let weights_path = folder.join(if pytorch_names { "torch.safetensors" } else { "medas.safetensors" });
    std::fs::write(&weights_path, safetensors::serialize(views, None).unwrap()).unwrap();
    let config_path = folder.join("threshold.json");
    std::fs::write(&config_path, config_json).unwrap();
    (config_path, weights_path)
}

const THRESHOLD: f32 = 0.25;

#[test]
fn labels_keep_the_input_geometry_voxel_for_voxel() {
    let root = scratch_dir("cli-predict-geometry");
    let data = root.join("data");
    for (name, torch) in [("threshold", false), ("threshold-torch", true)] {
        let (config, weights) = threshold_network(&root, THRESHOLD, torch);
        let mut args = vec!["model", "import", name, "--config", config.to_str().unwrap(), "--weights", weights.to_str().unwrap()];
        args.extend(["--normalization", r#"{"kind": "none"}"#, "--patch", "4,4,4"]);
        if torch {
            args.push("--pytorch");
        }
        ok(&data, &args);
    }
    let (path, input) = oblique_volume(&root);
    let mut outputs = Vec::new();
    for name in ["threshold", "threshold-torch"] {
        outputs.push(predicted_by_threshold(&root, &data, name, &path, &input));
    }
    assert_eq!(outputs[0], outputs[1], "MEDAS and PyTorch names load the same weights");
    four_d_input(&root, &data, &input, &outputs[0]);
    catalog_tool(&root, &data, &path, &input, &outputs[0]);
}

/// 11 × 7 × 5 voxels of values in [-1, 1), anisotropic, rotated, shifted; written and read back.
fn oblique_volume(root: &Path) -> (std::path::PathBuf, Image) {
    // 11 × 7 × 5 voxels, anisotropic, rotated 30° about z then 20° about x, shifted.
    let (a, b) = (30f64.to_radians(), 20f64.to_radians());
    let rz = [[a.cos(), -a.sin(), 0.0], [a.sin(), a.cos(), 0.0], [0.0, 0.0, 1.0]];
    let rx = [[1.0, 0.0, 0.0], [0.0, b.cos(), -b.sin()], [0.0, b.sin(), b.cos()]];
    let direction: Vec<f64> = (0..9).map(|n| (0..3).map(|m| rz[n / 3][m] * rx[m][n % 3]).sum()).collect();
    let geometry = Geometry::new(vec![0.7, 1.3, 2.1], vec![10.0, -5.0, 3.0], direction).unwrap();
    let mut rng = SplitMix64::new(11);
    let values: Vec<f32> = (0..11 * 7 * 5).map(|_| (rng.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0).collect();
    let input = Image::new(Voxels::from_fortran_vec(&[11, 7, 5], values).unwrap(), geometry).unwrap();
    let path = root.join("oblique.nrrd");
    medas_io::write(&input, &path).unwrap();
    let input = medas_io::read(&path).unwrap();
    (path, input)
}

/// `medas predict` with a thresholding model: the label map of `input` as written, checked
/// voxel by voxel against `input > THRESHOLD`.
fn predicted_by_threshold(root: &Path, data: &Path, name: &str, path: &Path, input: &Image) -> ndarray::ArcArray<u8, IxDyn> {
    let (original, threshold) = (input.voxels().cast::<f32>(), THRESHOLD);
    let out = root.join(name);
    ok(data, &["predict", name, "--input", path.to_str().unwrap(), "--out", out.to_str().unwrap(), "--probabilities", "--tta", "--overlap", "0.25"]);
    let labels = medas_io::read(out.join("oblique.nrrd")).unwrap();
    assert_eq!(labels.geometry(), input.geometry(), "origin, spacing and direction as the input's");
    assert_eq!((labels.size(), labels.scalar_type()), (&[11usize, 7, 5][..], medas_image::ScalarType::U8));
    let classes = labels.voxels().cast::<u8>();
    let above = original.iter().filter(|&&v| v > threshold).count();
    assert!(above > 50 && above < 300, "both classes occur: {above} of 385");
    for i in 0..11 {
        for j in 0..7 {
            for k in 0..5 {
                let x = original[IxDyn(&[i, j, k])];
                assert_eq!(classes[IxDyn(&[i, j, k])], u8::from(x > threshold), "voxel ({i}, {j}, {k}) = {x}");
            }
        }
    }
    // Unnormalised input: p(class 1) = sigmoid(x - threshold) where x > 0 (LeakyReLU
    // passes positives unchanged); 1e-5 covers f32 rounding of the softmax.
    let probabilities = medas_io::read(out.join("oblique_probabilities.nrrd")).unwrap().voxels().cast::<f32>();
    for (index, &x) in original.indexed_iter() {
        if x > 0.0 {
            let expected = 1.0 / (1.0 + (-(x - threshold)).exp());
            let p = probabilities[IxDyn(&[index[0], index[1], index[2], 1])];
            assert!((p - expected).abs() < 1e-5, "{index:?}: {p} vs {expected}");
        }
    }
    classes
}

fn four_d_input(root: &Path, data: &Path, input: &Image, expected: &ndarray::ArcArray<u8, IxDyn>) {
    let original = input.voxels().cast::<f32>();
    // The same volume with its one modality on a 4th axis (MSD's layout): a 3-D label map
    // with the first three axes' geometry, the same labels.
    let mut direction4 = vec![0.0; 16];
    for r in 0..3 {
        for c in 0..3 {
            direction4[r * 4 + c] = input.geometry().direction_at(r, c);
        }
    }
    direction4[15] = 1.0;
    let geometry4 = Geometry::new(vec![0.7, 1.3, 2.1, 1.0], vec![10.0, -5.0, 3.0, 0.0], direction4).unwrap();
    let values4: Vec<f32> = original.t().iter().copied().collect(); // Fortran order
    let four = Image::new(Voxels::from_fortran_vec(&[11, 7, 5, 1], values4).unwrap(), geometry4).unwrap();
    let path4 = root.join("four.nrrd");
    medas_io::write(&four, &path4).unwrap();
    let out4 = root.join("four");
    ok(data, &["predict", "threshold", "--input", path4.to_str().unwrap(), "--out", out4.to_str().unwrap()]);
    let labels = medas_io::read(out4.join("four.nrrd")).unwrap();
    assert_eq!(labels.geometry(), &medas_io::read(&path4).unwrap().geometry().with_dimension(3));
    assert_eq!(&labels.voxels().cast::<u8>(), expected);
}

/// The catalog tool gives the same label map and geometry; it is never served from a cache.
fn catalog_tool(root: &Path, data: &Path, path: &Path, input: &Image, expected: &ndarray::ArcArray<u8, IxDyn>) {
    let spec = json(&ok(data, &["tools", "show", "network.predict", "--json"]));
    assert_eq!((&spec["params_schema"]["required"], &spec["cacheable"]), (&serde_json::json!(["model"]), &serde_json::json!(false)), "{spec}");
    let tool_labels = root.join("tool_labels.nrrd");
    let image = format!("image={}", path.display());
    let labels_out = format!("labels={}", tool_labels.display());
    ok(data, &["tool", "run", "network.predict", "--in", &image, "--set", "model=threshold", "--set", "tta=true", "--out", &labels_out]);
    let labels = medas_io::read(&tool_labels).unwrap();
    assert_eq!(labels.geometry(), input.geometry());
    assert_eq!(&labels.voxels().cast::<u8>(), expected);
    let message = fails(data, &["tool", "run", "network.predict", "--in", &image, "--set", "model=absent", "--out", &labels_out]);
    assert!(message.contains("network.predict: parameter \"model\": no model \"absent\""), "{message}");
}

//! On-the-fly augmentation in the patch sampler: a batch with catalog augmentation steps must
//! equal the catalog tools run by hand on the un-augmented patches with the seeds the sampler
//! derives (image channels and label), labels keep their class set, batches stay a function
//! of (seed, n), and bad steps are refused with the step's index and the reason.

use std::sync::Arc;
use std::time::Instant;

use medas_image::{Geometry, Image, VoxelArray, Voxels};
use medas_tools::{Data, Registry, run_tool};
use medas_train::augment::step_draw;
use medas_train::sampler::{Batch, item_key};
use medas_train::{PatchSampler, SamplerConfig, TrainConfig, Volume};
use serde_json::{Value, json};

/// Two channels (a ramp and its square), a label with classes 0, 1 and 2 (blocks).
fn volume(id: &str, [d, h, w]: [usize; 3]) -> Volume {
    let n = d * h * w;
    let ramp: Vec<f32> = (0..n).map(|i| ((i % w) + 2 * ((i / w) % h) + 3 * (i / (w * h))) as f32 / 10.0).collect();
    let image = ramp.iter().copied().chain(ramp.iter().map(|v| v * v - 1.0)).collect();
    let label = (0..n).map(|i| u8::from((i % w) > w / 3) + u8::from(((i / w) % h) > 2 * h / 3)).collect();
    Volume { id: id.into(), shape: [2, d, h, w], image, label: Some(label), class: None }
}

fn sampler(patch: [usize; 3], size: [usize; 3], steps: Value) -> PatchSampler {
    let config = SamplerConfig { patch, batch_size: 3, foreground_fraction: 0.5, flips: true, rot90: true, augmentations: serde_json::from_value(steps).unwrap() };
    let volumes = Arc::new(vec![volume("a", size), volume("b", size)]);
    PatchSampler::new(volumes, config, 41).unwrap()
}

/// Item `b` of a batch: its channels and its label.
fn item(batch: &Batch, b: usize) -> (Vec<Vec<f32>>, Vec<i64>) {
    let [_, channels, d, h, w] = batch.shape;
    let per = d * h * w;
    let image = (0..channels).map(|c| batch.image[(b * channels + c) * per..][..per].to_vec()).collect();
    (image, batch.label[b * per..][..per].to_vec())
}

/// Values (D, H, W) as an image with axes (W, H[, D]), unit spacing: what the sampler builds.
fn as_image<T: VoxelArray>(values: Vec<T>, [d, h, w]: [usize; 3]) -> Image {
    let shape = if d == 1 { vec![w, h] } else { vec![w, h, d] };
    Image::new(Voxels::from_fortran_vec(&shape, values).unwrap(), Geometry::identity(shape.len())).unwrap()
}

fn fortran<T: VoxelArray>(image: &Image) -> Vec<T> {
    image.voxels().cast::<T>().view().reversed_axes().iter().copied().collect()
}

/// The catalog tool `id` run on one channel (and the label) with `params` and `seed`.
fn by_hand(id: &str, params: &Value, seed: u64, channel: Vec<f32>, label: Option<Vec<i64>>, patch: [usize; 3]) -> (Vec<f32>, Option<Vec<i64>>) {
    let mut given = params.as_object().unwrap().clone();
    given.insert("seed".into(), json!(seed));
    let mut inputs = medas_tools::Inputs::from([("image".to_string(), Data::Image(as_image(channel, patch)))]);
    if let Some(label) = &label {
        inputs.insert("label".into(), Data::Image(as_image(label.iter().map(|&c| c as u8).collect(), patch)));
    }
    let out = run_tool(Registry::global().get(id).unwrap().as_ref(), inputs, &given).unwrap();
    let image = |port: &str| match &out[port] {
        Data::Image(image) => image.clone(),
        _ => unreachable!(),
    };
    (fortran(&image("image")), label.map(|_| fortran(&image("label"))))
}

/// Steps run by hand, in order, on the un-augmented batch `n` (flips and turns included).
fn replayed(plain: &Batch, steps: &Value, n: u64, patch: [usize; 3]) -> Vec<(Vec<Vec<f32>>, Vec<i64>)> {
    (0..plain.shape[0])
        .map(|b| {
            let (mut channels, mut label) = item(plain, b);
            for (s, step) in steps.as_array().unwrap().iter().enumerate() {
                let (uniform, seed) = step_draw(item_key(41, n, b), s);
                if uniform >= step["probability"].as_f64().unwrap_or(1.0) {
                    continue;
                }
                let id = step["tool"].as_str().unwrap();
                let moves_label = Registry::global().get(id).unwrap().spec().inputs.iter().any(|port| port.name == "label");
                for (c, channel) in channels.iter_mut().enumerate() {
                    let (out, moved) = by_hand(id, &step["params"], seed, std::mem::take(channel), (c == 0 && moves_label).then(|| label.clone()), patch);
                    *channel = out;
                    label = moved.unwrap_or(label);
                }
            }
            (channels, label)
        })
        .collect()
}

fn check_against_tools(patch: [usize; 3], size: [usize; 3], steps: Value) {
    let plain = sampler(patch, size, json!([]));
    let augmented = sampler(patch, size, steps.clone());
    for n in [0, 7] {
        let (before, after) = (plain.batch(n).unwrap(), augmented.batch(n).unwrap());
        for (b, (channels, label)) in replayed(&before, &steps, n, patch).into_iter().enumerate() {
            let (got_channels, got_label) = item(&after, b);
            assert_eq!(got_channels, channels, "batch {n} item {b}: image");
            assert_eq!(got_label, label, "batch {n} item {b}: label");
            assert!(label.iter().all(|c| (0..=2).contains(c)), "classes stay 0, 1, 2");
            assert_ne!(channels, item(&before, b).0, "the step changed the patch");
        }
    }
}

#[test]
fn a_2d_batch_with_affine_and_bias_field_is_the_catalog_tools_on_the_patches() {
    let steps = json!([
        {"tool": "augment.affine", "params": {"rotation_max": 40, "scale_min": 0.8, "scale_max": 1.2, "shear_max": 0.1}},
        {"tool": "augment.bias_field", "params": {"order": 2}, "probability": 0.5},
    ]);
    check_against_tools([1, 24, 24], [1, 40, 32], steps);
}

#[test]
fn a_3d_batch_with_elastic_and_rot90_is_the_catalog_tools_on_the_patches() {
    let steps = json!([
        {"tool": "augment.elastic", "params": {"alpha_min": 2, "alpha_max": 6, "sigma_min": 2, "sigma_max": 3}},
        {"tool": "augment.rot90", "params": {"plane": "ij"}, "probability": 0.7},
    ]);
    check_against_tools([6, 12, 12], [10, 20, 16], steps);
}

#[test]
fn value_wise_steps_see_all_channels_as_one_image() {
    // Noise on the two channels at once: one draw for the patch, independent noise per channel.
    let steps = json!([{"tool": "augment.gaussian_noise", "params": {"std_min": 0.5, "std_max": 0.5}}]);
    let (plain, noisy) = (sampler([1, 16, 16], [1, 20, 20], json!([])), sampler([1, 16, 16], [1, 20, 20], steps));
    let (before, after) = (plain.batch(3).unwrap(), noisy.batch(3).unwrap());
    let (channels, _) = item(&before, 0);
    let noise: Vec<Vec<f32>> = item(&after, 0).0.iter().zip(&channels).map(|(a, b)| a.iter().zip(b).map(|(x, y)| x - y).collect()).collect();
    assert_ne!(noise[0], noise[1]);
    let spread = (noise.concat().iter().map(|v| v * v).sum::<f32>() / 512.0).sqrt();
    assert!((spread - 0.5).abs() < 0.08, "noise std {spread}, drawn 0.5");
    assert_eq!(item(&after, 0).1, item(&before, 0).1, "labels untouched");
}

#[test]
fn batches_with_augmentations_depend_only_on_seed_and_number() {
    let steps = json!([
        {"tool": "augment.affine", "params": {"rotation_max": 30}, "probability": 0.5},
        {"tool": "augment.elastic", "params": {"alpha_max": 3, "sigma_min": 2, "sigma_max": 2}, "probability": 0.5},
        {"tool": "augment.gamma"},
    ]);
    let (one, two) = (sampler([1, 16, 16], [1, 24, 24], steps.clone()), sampler([1, 16, 16], [1, 24, 24], steps));
    let later_first = two.batch(5).unwrap();
    assert_eq!(one.batch(4).unwrap(), two.batch(4).unwrap());
    assert_eq!(one.batch(5).unwrap(), later_first);
    assert_ne!(one.batch(4).unwrap(), one.batch(5).unwrap());
}

#[test]
fn bad_augmentation_steps_are_refused_with_the_step_and_reason() {
    let error = |steps: &str| {
        let json = format!(r#"{{"network": {{"name": "unet", "spatial": "2d"}}, "epochs": 1, "iterations_per_epoch": 1, "sampler": {{"patch": [1, 32, 16], "augmentations": {steps}}}}}"#);
        TrainConfig::from_json(&json).unwrap_err().to_string()
    };
    let cases = [
        (r#"[{"tool": "augment.nope"}]"#, "training config: sampler.augmentations[0]: unknown tool \"augment.nope\" (see `medas tools list`)"),
        (r#"[{"tool": "augment.gamma"}, {"tool": "preprocess.window_level"}]"#, "training config: sampler.augmentations[1]: preprocess.window_level is not an augmentation tool (category preprocess)"),
        (
            r#"[{"tool": "augment.random_crop", "params": {"size": 8}}]"#,
            "training config: sampler.augmentations[0]: augment.random_crop would change the patch size; patches are already cut at random places (set sampler.patch)",
        ),
        (r#"[{"tool": "augment.flip", "params": {"seed": 3}}]"#, "training config: sampler.augmentations[0]: augment.flip: leave out \"seed\": every patch draws its own from the run's seed"),
        (r#"[{"tool": "augment.flip", "probability": 1.5}]"#, "training config: sampler.augmentations[0]: probability must be in [0, 1], got 1.5"),
        (
            r#"[{"tool": "augment.affine", "params": {"rotation_max": 200}}]"#,
            "training config: sampler.augmentations[0]: augment.affine: parameter \"rotation_max\" must be between 0 and 180 degrees, got 200",
        ),
        (
            r#"[{"tool": "augment.gamma", "params": {"gamma_min": 2, "gamma_max": 1}}]"#,
            "training config: sampler.augmentations[0]: augment.gamma: parameter \"gamma_min\" must be at most gamma_max (1), got 2",
        ),
        (
            r#"[{"tool": "augment.rot90"}]"#,
            "training config: sampler.augmentations[0]: augment.rot90: the patch's ij plane is 16 × 32 voxels; quarter turns need a square plane (the sampler keeps the patch shape)",
        ),
        (r#"[{"tool": "augment.rot90", "params": {"plane": "jk"}}]"#, "training config: sampler.augmentations[0]: augment.rot90: parameter \"plane\" \"jk\" needs a 3-D image, got a 2-D image"),
    ];
    for (steps, expected) in cases {
        assert_eq!(error(steps), expected, "{steps}");
    }
    assert!(error(r#"[{"tool": "augment.flip", "chance": 1}]"#).contains("unknown field `chance`"));
}

/// Sampler time per batch without and with a typical list (affine, elastic, noise, gamma), at
/// the nuclei acceptance run's batch (8 × 3 × 128 × 128); run with `--ignored --nocapture`.
#[test]
#[ignore = "timing, prints figures"]
fn sampler_time_per_batch() {
    let typical = json!([
        {"tool": "augment.affine", "params": {"rotation_max": 30, "scale_min": 0.85, "scale_max": 1.25}, "probability": 0.3},
        {"tool": "augment.elastic", "params": {"alpha_min": 0, "alpha_max": 30, "sigma_min": 9, "sigma_max": 13}, "probability": 0.2},
        {"tool": "augment.gaussian_noise", "params": {"std_max": 0.1}, "probability": 0.15},
        {"tool": "augment.gamma", "params": {"gamma_min": 0.7, "gamma_max": 1.5}, "probability": 0.3},
    ]);
    let always: Vec<Value> = typical.as_array().unwrap().iter().map(|s| json!({"tool": s["tool"], "params": s["params"]})).collect();
    let mut lists = vec![("none".to_string(), json!([])), ("typical".to_string(), typical.clone()), ("typical, every step always".to_string(), Value::Array(always.clone()))];
    lists.extend(always.iter().map(|step| (format!("{} always", step["tool"]), json!([step]))));
    for (name, steps) in lists {
        let config = SamplerConfig { patch: [1, 128, 128], batch_size: 8, augmentations: serde_json::from_value(steps).unwrap(), ..SamplerConfig::default() };
        let volumes = Arc::new((0..4).map(|i| {
            let mut v = volume(&format!("{i}"), [1, 256, 256]);
            v.shape[0] = 3;
            v.image.extend_from_within(..256 * 256);
            v
        }).collect::<Vec<_>>());
        let sampler = PatchSampler::new(volumes, config, 1).unwrap();
        sampler.batch(0).unwrap();
        let start = Instant::now();
        (1..=20).for_each(|n| drop(sampler.batch(n).unwrap()));
        eprintln!("sampler, augmentations {name}: {:.1} ms per batch of 8 × 3 × 128 × 128 (mean of 20, {} rayon threads)", start.elapsed().as_secs_f64() * 50.0, rayon::current_num_threads());
    }
}

/// Wall time per training step of the nuclei acceptance network (2-D U-Net, depth 4, base 16,
/// batch norm; batches of 8 × 3 × 128 × 128) without and with the typical list: the later
/// epochs' seconds over their iterations, so the sampler's share shows as the difference.
#[test]
#[ignore = "timing, prints figures"]
fn training_step_time_with_and_without_augmentations() {
    let typical = r#"[
        {"tool": "augment.affine", "params": {"rotation_max": 30, "scale_min": 0.85, "scale_max": 1.25}, "probability": 0.3},
        {"tool": "augment.elastic", "params": {"alpha_min": 0, "alpha_max": 30, "sigma_min": 9, "sigma_max": 13}, "probability": 0.2},
        {"tool": "augment.gaussian_noise", "params": {"std_max": 0.1}, "probability": 0.15},
        {"tool": "augment.gamma", "params": {"gamma_min": 0.7, "gamma_max": 1.5}, "probability": 0.3}]"#;
    let volumes: Vec<Volume> = (0..4)
        .map(|i| {
            let mut v = volume(&format!("{i}"), [1, 256, 256]);
            v.shape[0] = 3;
            v.image.extend_from_within(..256 * 256);
            v
        })
        .collect();
    for (name, steps) in [("typical", typical), ("none", "[]"), ("typical", typical), ("none", "[]")] {
        let config = TrainConfig::from_json(&format!(
            r#"{{"network": {{"name": "unet", "spatial": "2d", "in_channels": 3, "classes": 3, "depth": 4, "base_channels": 16, "norm": "batch"}},
                "sampler": {{"patch": [1, 128, 128], "batch_size": 8, "augmentations": {steps}}},
                "epochs": 3, "iterations_per_epoch": 8, "seed": 1}}"#
        ))
        .unwrap();
        let out = tempfile::tempdir().unwrap();
        let report = medas_train::train(&config, volumes.clone(), &[], out.path(), false, &mut |_| true).unwrap();
        let steps = report.metrics[1..].iter().map(|m| format!("{:.0}", m.seconds * 1000.0 / 8.0)).collect::<Vec<_>>().join(", ");
        eprintln!("training step, augmentations {name}: {steps} ms per step (epochs 2 and 3, 8 steps each)");
    }
}

//! Every loss's autodiff gradient against central finite differences, in f64 (Burn's flex
//! backend computes f64 tensors natively). Step 1e-6: truncation error ~1e-12, rounding error
//! ~1e-10, far below the tolerance. The error is the largest component difference relative to
//! the largest gradient component, and must be <= 1e-3 as issue 6 asks (it comes out near 1e-8).

use burn::tensor::{Device, Tensor};

use super::tests::{Numbers, class_tensor, f64_tensor, scalar};
use super::*;
use crate::ComputeDevice;

const STEP: f64 = 1e-6;
const TOLERANCE: f64 = 1e-3;

enum Labels {
    Classes(Vec<i64>),
    Masks(Vec<f64>),
}

/// Checks the loss `config` on logits `shape` (channel count `shape[1]`).
fn check<const D: usize>(config: &str, shape: [usize; D], labels: Labels, seed: u64) {
    let loss = LossConfig::from_json(config)
        .unwrap()
        .build(shape[1])
        .unwrap();
    let logits = Numbers::new(seed).floats(shape.iter().product(), 2.0);
    let target = |device: &Device| -> Target<D> {
        match &labels {
            Labels::Classes(values) => {
                let mut class_shape = shape;
                class_shape[1] = 1;
                Target::Classes(class_tensor(values, class_shape, device))
            }
            Labels::Masks(values) => Target::Masks(f64_tensor(values, shape, device)),
        }
    };
    let training = ComputeDevice::Cpu.training();
    let x: Tensor<D> = f64_tensor(&logits, shape, &training).require_grad();
    let gradients = loss
        .forward(x.clone(), &target(&training))
        .unwrap()
        .backward();
    let analytic: Vec<f64> = x
        .grad(&gradients)
        .unwrap()
        .into_data()
        .try_to_vec()
        .unwrap();

    let inference = ComputeDevice::Cpu.inference();
    let inference_target = target(&inference);
    let value = |values: &[f64]| {
        scalar(
            loss.forward(f64_tensor(values, shape, &inference), &inference_target)
                .unwrap(),
        )
    };
    let mut worst: f64 = 0.0;
    let mut largest: f64 = 0.0;
    for k in 0..logits.len() {
        let (mut plus, mut minus) = (logits.clone(), logits.clone());
        plus[k] += STEP;
        minus[k] -= STEP;
        let numeric = (value(&plus) - value(&minus)) / (2.0 * STEP);
        worst = worst.max((numeric - analytic[k]).abs());
        largest = largest.max(numeric.abs());
    }
    let relative = worst / largest;
    eprintln!(
        "{config} {shape:?}: max |grad - FD| / max |FD| = {relative:.2e} (tolerance {TOLERANCE:e})"
    );
    assert!(
        largest > 1e-6,
        "{config}: gradient vanishes, the check would be empty"
    );
    assert!(
        relative <= TOLERANCE,
        "{config}: relative gradient error {relative}"
    );
}

fn classes(count: usize, num_classes: usize, seed: u64) -> Labels {
    Labels::Classes(Numbers::new(seed).labels(count, num_classes))
}

fn masks(count: usize, seed: u64) -> Labels {
    Labels::Masks(
        Numbers::new(seed)
            .labels(count, 2)
            .iter()
            .map(|m| *m as f64)
            .collect(),
    )
}

fn classes_with_ignored(count: usize, num_classes: usize, seed: u64) -> Labels {
    let mut labels = Numbers::new(seed).labels(count, num_classes);
    labels[1] = 255;
    labels[count - 2] = 255;
    Labels::Classes(labels)
}

#[test]
fn dice_gradients() {
    check(r#"{"name": "dice"}"#, [2, 3, 2, 3], classes(12, 3, 1), 101);
    check(
        r#"{"name": "dice", "include_background": true, "batch_dice": true}"#,
        [2, 3, 2, 2, 2],
        classes(16, 3, 2),
        102,
    );
    check(
        r#"{"name": "dice", "activation": "sigmoid", "ignore_index": 255}"#,
        [2, 1, 3, 3],
        classes_with_ignored(18, 2, 3),
        103,
    );
    check(
        r#"{"name": "dice", "activation": "sigmoid", "smooth": 1.0}"#,
        [2, 2, 5],
        masks(20, 4),
        104,
    );
}

#[test]
fn cross_entropy_and_bce_gradients() {
    let weighted =
        r#"{"name": "cross_entropy", "class_weights": [0.3, 1.0, 2.0], "ignore_index": 255}"#;
    check(weighted, [2, 3, 2, 3], classes_with_ignored(12, 3, 5), 105);
    check(
        r#"{"name": "cross_entropy"}"#,
        [4, 3],
        classes(4, 3, 6),
        106,
    );
    check(
        r#"{"name": "bce", "pos_weight": [2.0, 0.5]}"#,
        [2, 2, 2, 2],
        masks(16, 7),
        107,
    );
    check(
        r#"{"name": "bce", "ignore_index": 255}"#,
        [2, 1, 2, 2, 2],
        classes_with_ignored(16, 2, 8),
        108,
    );
}

#[test]
fn focal_gradients() {
    check(
        r#"{"name": "focal", "gamma": 2.0, "alpha": [0.5, 1.0, 2.0]}"#,
        [2, 3, 2, 3],
        classes(12, 3, 9),
        109,
    );
    check(
        r#"{"name": "focal", "gamma": 0.5, "ignore_index": 255}"#,
        [2, 3, 6],
        classes_with_ignored(12, 3, 10),
        110,
    );
    check(
        r#"{"name": "focal", "activation": "sigmoid", "gamma": 1.5, "alpha": [0.25]}"#,
        [2, 2, 2, 2],
        masks(16, 11),
        111,
    );
}

#[test]
fn lovasz_gradients() {
    check(
        r#"{"name": "lovasz_hinge"}"#,
        [2, 1, 3, 3],
        classes(18, 2, 12),
        112,
    );
    check(
        r#"{"name": "lovasz_hinge", "per_image": false, "ignore_index": 255}"#,
        [2, 1, 2, 2, 2],
        classes_with_ignored(16, 2, 13),
        113,
    );
    check(r#"{"name": "lovasz_hinge"}"#, [2, 2, 6], masks(24, 14), 114);
    check(
        r#"{"name": "lovasz_softmax"}"#,
        [2, 3, 2, 3],
        classes(12, 3, 15),
        115,
    );
    let all_per_image =
        r#"{"name": "lovasz_softmax", "classes": "all", "per_image": true, "ignore_index": 255}"#;
    check(
        all_per_image,
        [2, 3, 2, 2, 2],
        classes_with_ignored(16, 3, 16),
        116,
    );
}

#[test]
fn dice_ce_gradients() {
    let config = r#"{"name": "dice_ce", "dice_weight": 0.5, "dice": {"ignore_index": 255, "batch_dice": true},
                    "cross_entropy": {"ignore_index": 255, "class_weights": [1.0, 2.0, 0.5]}}"#;
    check(config, [2, 3, 2, 3], classes_with_ignored(12, 3, 17), 118);
}

#[test]
fn dice_bce_gradients() {
    let config =
        r#"{"name": "dice_bce", "bce_weight": 0.5, "batch_dice": true, "pos_weight": [3.0]}"#;
    check(config, [2, 2, 2, 3], masks(24, 19), 119);
    let ignoring = r#"{"name": "dice_bce", "ignore_index": 255}"#;
    check(
        ignoring,
        [2, 1, 2, 2, 2],
        classes_with_ignored(16, 2, 20),
        120,
    );
}

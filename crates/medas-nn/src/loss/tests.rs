//! Loss values against independent f64 loops and hand-computed Lovász cases; config errors.
//! Gradients against finite differences are in `gradient_tests.rs`.

use burn::tensor::{DType, Int, Tensor, TensorData};

use super::*;
use crate::ComputeDevice;

/// Values are computed in f64 on both sides; they agree to rounding.
pub(super) const VALUE_TOLERANCE: f64 = 1e-10;

/// Deterministic pseudo-random numbers (SplitMix64) so tests need no RNG crate.
pub(super) struct Numbers(u64);

impl Numbers {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-scale, scale).
    pub fn floats(&mut self, count: usize, scale: f64) -> Vec<f64> {
        (0..count)
            .map(|_| ((self.next() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * scale)
            .collect()
    }

    pub fn labels(&mut self, count: usize, classes: usize) -> Vec<i64> {
        (0..count)
            .map(|_| (self.next() % classes as u64) as i64)
            .collect()
    }
}

pub(super) fn f64_tensor<const D: usize>(
    values: &[f64],
    shape: [usize; D],
    device: &burn::tensor::Device,
) -> Tensor<D> {
    Tensor::from_data(
        TensorData::new(values.to_vec(), shape),
        (device, DType::F64),
    )
}

pub(super) fn class_tensor<const D: usize>(
    labels: &[i64],
    shape: [usize; D],
    device: &burn::tensor::Device,
) -> Tensor<D, Int> {
    Tensor::from_data(TensorData::new(labels.to_vec(), shape), device)
}

pub(super) fn scalar(loss: Tensor<1>) -> f64 {
    loss.into_scalar::<f64>()
}

/// Logits `(N, C, S)` in row-major order, read as `[n][c][s]`.
pub(super) struct Grid {
    pub n: usize,
    pub c: usize,
    pub s: usize,
}

impl Grid {
    pub fn at(&self, n: usize, c: usize, s: usize) -> usize {
        (n * self.c + c) * self.s + s
    }

    pub fn softmax(&self, logits: &[f64]) -> Vec<f64> {
        let mut p = vec![0.0; logits.len()];
        for n in 0..self.n {
            for s in 0..self.s {
                let max = (0..self.c)
                    .map(|c| logits[self.at(n, c, s)])
                    .fold(f64::MIN, f64::max);
                let total: f64 = (0..self.c)
                    .map(|c| (logits[self.at(n, c, s)] - max).exp())
                    .sum();
                for c in 0..self.c {
                    p[self.at(n, c, s)] = (logits[self.at(n, c, s)] - max).exp() / total;
                }
            }
        }
        p
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn assert_close(what: &str, actual: f64, expected: f64) {
    eprintln!("{what}: ours {actual:.12}, reference {expected:.12}, tolerance {VALUE_TOLERANCE:e}");
    assert!(
        (actual - expected).abs() <= VALUE_TOLERANCE * expected.abs().max(1.0),
        "{what}: {actual} vs {expected}"
    );
}

/// Soft Dice by loops: per (image, class) or per class over the batch.
fn reference_dice(
    g: &Grid,
    p: &[f64],
    labels: &[i64],
    first: usize,
    batch: bool,
    smooth: f64,
) -> f64 {
    let mut scores = Vec::new();
    let groups: Vec<Vec<usize>> = if batch {
        vec![(0..g.n).collect()]
    } else {
        (0..g.n).map(|n| vec![n]).collect()
    };
    for images in &groups {
        for c in first..g.c {
            let (mut inter, mut sp, mut sy) = (0.0, 0.0, 0.0);
            for &n in images {
                for s in 0..g.s {
                    let y = f64::from(labels[n * g.s + s] == c as i64);
                    let prob = p[g.at(n, c, s)];
                    inter += prob * y;
                    sp += prob;
                    sy += y;
                }
            }
            scores.push((2.0 * inter + smooth) / (sp + sy + smooth));
        }
    }
    1.0 - scores.iter().sum::<f64>() / scores.len() as f64
}

/// PyTorch's weighted cross-entropy: sum w_y nll / sum w_y over non-ignored voxels.
fn reference_cross_entropy(
    g: &Grid,
    logits: &[f64],
    labels: &[i64],
    weights: &[f64],
    ignore: i64,
) -> f64 {
    let p = g.softmax(logits);
    let (mut num, mut den) = (0.0, 0.0);
    for n in 0..g.n {
        for s in 0..g.s {
            let y = labels[n * g.s + s];
            if y == ignore {
                continue;
            }
            let w = weights[y as usize];
            num += -w * p[g.at(n, y as usize, s)].ln();
            den += w;
        }
    }
    num / den
}

fn spatial_case(seed: u64, c: usize) -> (Grid, Vec<f64>, Vec<i64>) {
    let grid = Grid { n: 2, c, s: 6 };
    let mut numbers = Numbers::new(seed);
    let logits = numbers.floats(grid.n * grid.c * grid.s, 3.0);
    let labels = numbers.labels(grid.n * grid.s, c);
    (grid, logits, labels)
}

fn run(config: &str, c: usize, logits: &[f64], labels: &[i64]) -> f64 {
    let device = ComputeDevice::Cpu.inference();
    let loss = LossConfig::from_json(config).unwrap().build(c).unwrap();
    let x = f64_tensor(logits, [2, c, 2, 3], &device);
    let y = class_tensor(labels, [2, 1, 2, 3], &device);
    scalar(loss.forward(x, &Target::Classes(y)).unwrap())
}

#[test]
fn dice_matches_loops_with_and_without_background_per_image_and_batch() {
    let (g, logits, labels) = spatial_case(1, 3);
    let p = g.softmax(&logits);
    for (background, batch) in [(false, false), (true, false), (false, true), (true, true)] {
        let config = format!(
            r#"{{"name": "dice", "include_background": {background}, "batch_dice": {batch}, "smooth": 0.5}}"#
        );
        let expected = reference_dice(&g, &p, &labels, usize::from(!background), batch, 0.5);
        assert_close(&config, run(&config, 3, &logits, &labels), expected);
    }
}

#[test]
fn sigmoid_dice_on_masks_matches_loops() {
    let device = ComputeDevice::Cpu.inference();
    let mut numbers = Numbers::new(2);
    let (logits, masks) = (numbers.floats(2 * 2 * 5, 2.0), numbers.labels(2 * 2 * 5, 2));
    let masks: Vec<f64> = masks.iter().map(|m| *m as f64).collect();
    let loss = LossConfig::from_json(r#"{"name": "dice", "activation": "sigmoid", "smooth": 1.0}"#)
        .unwrap();
    let value = loss.build(2).unwrap().forward(
        f64_tensor(&logits, [2, 2, 5], &device),
        &Target::Masks(f64_tensor(&masks, [2, 2, 5], &device)),
    );
    let mut scores = Vec::new();
    for nc in 0..4 {
        let range = nc * 5..nc * 5 + 5;
        let (i, sp, sy) = range.fold((0.0, 0.0, 0.0), |(i, sp, sy), k| {
            let p = sigmoid(logits[k]);
            (i + p * masks[k], sp + p, sy + masks[k])
        });
        scores.push((2.0 * i + 1.0) / (sp + sy + 1.0));
    }
    assert_close(
        "sigmoid dice",
        scalar(value.unwrap()),
        1.0 - scores.iter().sum::<f64>() / 4.0,
    );
}

#[test]
fn cross_entropy_is_pytorchs_weighted_mean_and_skips_ignored_voxels() {
    let (g, logits, mut labels) = spatial_case(3, 3);
    labels[4] = 255;
    labels[9] = 255;
    let config =
        r#"{"name": "cross_entropy", "class_weights": [0.2, 1.0, 3.0], "ignore_index": 255}"#;
    let expected = reference_cross_entropy(&g, &logits, &labels, &[0.2, 1.0, 3.0], 255);
    assert_close("weighted CE", run(config, 3, &logits, &labels), expected);
    let plain = reference_cross_entropy(&g, &logits, &labels, &[1.0; 3], 255);
    assert_close(
        "CE",
        run(
            r#"{"name": "cross_entropy", "ignore_index": 255}"#,
            3,
            &logits,
            &labels,
        ),
        plain,
    );
}

#[test]
fn dice_ce_is_the_weighted_sum_of_its_parts() {
    let (g, logits, labels) = spatial_case(4, 3);
    let dice = reference_dice(&g, &g.softmax(&logits), &labels, 1, true, 1e-5);
    let ce = reference_cross_entropy(&g, &logits, &labels, &[1.0; 3], -1);
    let config = r#"{"name": "dice_ce", "dice_weight": 0.7, "ce_weight": 1.5, "dice": {"batch_dice": true}}"#;
    assert_close(
        "dice_ce",
        run(config, 3, &logits, &labels),
        0.7 * dice + 1.5 * ce,
    );
}

#[test]
fn bce_and_sigmoid_focal_match_their_formulas() {
    let device = ComputeDevice::Cpu.inference();
    let mut numbers = Numbers::new(5);
    let logits = numbers.floats(2 * 2 * 4, 4.0);
    let masks: Vec<f64> = numbers
        .labels(2 * 2 * 4, 2)
        .iter()
        .map(|m| *m as f64)
        .collect();
    let forward = |config: &str| {
        let loss = LossConfig::from_json(config).unwrap().build(2).unwrap();
        let target = Target::Masks(f64_tensor(&masks, [2, 2, 2, 2], &device));
        scalar(
            loss.forward(f64_tensor(&logits, [2, 2, 2, 2], &device), &target)
                .unwrap(),
        )
    };
    let count = logits.len() as f64;
    let (mut bce, mut focal) = (0.0, 0.0);
    for (k, (&x, &y)) in logits.iter().zip(&masks).enumerate() {
        let pos_weight = if (k / 4) % 2 == 0 { 2.0 } else { 0.5 }; // channel = (k / S) % C
        bce += -(pos_weight * y * sigmoid(x).ln() + (1.0 - y) * (1.0 - sigmoid(x)).ln());
        let ce = -(y * sigmoid(x).ln() + (1.0 - y) * (1.0 - sigmoid(x)).ln());
        let p_t = sigmoid(x) * y + (1.0 - sigmoid(x)) * (1.0 - y);
        let alpha_t = 0.25 * y + 0.75 * (1.0 - y);
        focal += alpha_t * ce * (1.0 - p_t).powf(1.5);
    }
    assert_close(
        "bce pos_weight",
        forward(r#"{"name": "bce", "pos_weight": [2.0, 0.5]}"#),
        bce / count,
    );
    let sigmoid_focal =
        r#"{"name": "focal", "activation": "sigmoid", "gamma": 1.5, "alpha": [0.25]}"#;
    assert_close("sigmoid focal", forward(sigmoid_focal), focal / count);
}

#[test]
fn softmax_focal_matches_its_formula_and_is_ce_at_gamma_zero() {
    let (g, logits, labels) = spatial_case(6, 3);
    let p = g.softmax(&logits);
    let alpha = [0.5, 1.0, 2.0];
    let mut total = 0.0;
    for n in 0..g.n {
        for s in 0..g.s {
            let y = labels[n * g.s + s] as usize;
            let p_true = p[g.at(n, y, s)];
            total += alpha[y] * (1.0 - p_true).powf(2.0) * -p_true.ln();
        }
    }
    let config = r#"{"name": "focal", "gamma": 2.0, "alpha": [0.5, 1.0, 2.0]}"#;
    assert_close(
        "softmax focal",
        run(config, 3, &logits, &labels),
        total / (g.n * g.s) as f64,
    );
    let ce = reference_cross_entropy(&g, &logits, &labels, &[1.0; 3], -1);
    assert_close(
        "focal gamma 0",
        run(r#"{"name": "focal", "gamma": 0.0}"#, 3, &logits, &labels),
        ce,
    );
}

fn build_error(config: &str, num_classes: usize) -> String {
    LossConfig::from_json(config)
        .and_then(|c| c.build(num_classes))
        .unwrap_err()
        .to_string()
}

#[test]
fn bad_parameters_are_rejected_with_clear_messages() {
    let cases = [
        (
            r#"{"name": "cross_entropy", "class_weights": [1.0, -0.5, 1.0]}"#,
            3,
            "loss cross_entropy: parameter `class_weights` values must be finite and >= 0, got -0.5",
        ),
        (
            r#"{"name": "cross_entropy", "class_weights": [1.0, 1.0]}"#,
            3,
            "loss cross_entropy: parameter `class_weights` needs one value per class (3), got 2",
        ),
        (
            r#"{"name": "focal", "gamma": -1.0}"#,
            3,
            "loss focal: parameter `gamma` must be finite and >= 0, got -1",
        ),
        (
            r#"{"name": "focal", "activation": "sigmoid", "alpha": [1.5]}"#,
            1,
            "loss focal: parameter `alpha` with sigmoid must be one value in [0, 1], got [1.5]",
        ),
        (
            r#"{"name": "bce", "pos_weight": [1.0, 2.0, 3.0]}"#,
            2,
            "loss bce: parameter `pos_weight` needs one value per class (2), got 3",
        ),
        (
            r#"{"name": "dice", "smooth": -1e-5}"#,
            3,
            "loss dice: parameter `smooth` must be finite and >= 0, got -0.00001",
        ),
        (
            r#"{"name": "dice"}"#,
            1,
            "loss dice: parameter `num_classes` must be >= 2 for this loss, got 1",
        ),
        (
            r#"{"name": "lovasz_softmax", "ignore_index": 2}"#,
            3,
            "loss lovasz_softmax: parameter `ignore_index` must lie outside the classes 0..3, got 2",
        ),
        (
            r#"{"name": "dice_ce", "dice_weight": 0, "ce_weight": 0}"#,
            3,
            "loss dice_ce: parameter `dice_weight` and ce_weight must not both be 0",
        ),
        (
            r#"{"name": "dice_ce", "dice": {"ignore_index": 255}}"#,
            3,
            "loss dice_ce: parameter `ignore_index` must be the same for dice (Some(255)) and cross_entropy (None)",
        ),
    ];
    for (config, classes, expected) in cases {
        assert_eq!(build_error(config, classes), expected, "{config}");
    }
    let unknown = build_error(r#"{"name": "dice", "smoth": 1.0}"#, 3);
    assert!(
        unknown.starts_with("loss config: unknown field `smoth`"),
        "{unknown}"
    );
    let unknown = build_error(r#"{"name": "tversky"}"#, 3);
    assert!(
        unknown.starts_with("loss config: unknown variant `tversky`"),
        "{unknown}"
    );
}

#[test]
fn mismatched_inputs_are_errors_not_panics() {
    let device = ComputeDevice::Cpu.inference();
    let loss = LossConfig::from_json(r#"{"name": "cross_entropy", "ignore_index": 255}"#)
        .unwrap()
        .build(3)
        .unwrap();
    let logits = || f64_tensor(&[0.0; 12], [1, 3, 2, 2], &device);
    let labels =
        |values: &[i64], shape: [usize; 4]| Target::Classes(class_tensor(values, shape, &device));
    let error = loss.forward(
        f64_tensor(&[0.0; 8], [1, 2, 2, 2], &device),
        &labels(&[0; 4], [1, 1, 2, 2]),
    );
    assert_eq!(
        error.unwrap_err().to_string(),
        "loss cross_entropy: logits have 2 channels, the loss was built for 3"
    );
    let error = loss.forward(logits(), &labels(&[0; 4], [1, 1, 4, 1]));
    assert_eq!(
        error.unwrap_err().to_string(),
        "loss cross_entropy: class target [1, 1, 4, 1] should be [1, 1, 2, 2] (N, 1, spatial...)"
    );
    let error = loss.forward(logits(), &labels(&[0, 3, 255, 7], [1, 1, 2, 2]));
    assert_eq!(
        error.unwrap_err().to_string(),
        "loss cross_entropy: 2 target voxels have a label outside 0..3 that is not ignore_index 255"
    );
    let error = loss.forward(
        logits(),
        &Target::Masks(f64_tensor(&[0.0; 8], [1, 2, 2, 2], &device)),
    );
    assert_eq!(
        error.unwrap_err().to_string(),
        "loss cross_entropy: mask target [1, 2, 2, 2] differs from logits [1, 3, 2, 2]"
    );
}

#[test]
fn f32_logits_give_the_f64_value() {
    let (_, logits, labels) = spatial_case(20, 3);
    let device = ComputeDevice::Cpu.inference();
    let loss = LossConfig::from_json(r#"{"name": "dice_ce"}"#)
        .unwrap()
        .build(3)
        .unwrap();
    let target = Target::Classes(class_tensor(&labels, [2, 1, 2, 3], &device));
    let single: Vec<f32> = logits.iter().map(|v| *v as f32).collect();
    let x32 = Tensor::<4>::from_data(TensorData::new(single, [2, 3, 2, 3]), &device);
    let value32 = scalar(loss.forward(x32, &target).unwrap());
    let value64 = run(r#"{"name": "dice_ce"}"#, 3, &logits, &labels);
    assert!((value32 - value64).abs() < 1e-5, "{value32} vs {value64}");
}

#[test]
fn labels_without_channel_axis_give_the_same_loss() {
    let (_, logits, labels) = spatial_case(21, 3);
    let device = ComputeDevice::Cpu.inference();
    let loss = LossConfig::from_json(r#"{"name": "focal"}"#)
        .unwrap()
        .build(3)
        .unwrap();
    let x = f64_tensor(&logits, [2, 3, 2, 3], &device);
    let flat_labels = class_tensor(&labels, [2, 2, 3], &device);
    let target = Target::<4>::from_labels(flat_labels.clone()).unwrap();
    let with_channel = Target::Classes(class_tensor(&labels, [2, 1, 2, 3], &device));
    let a = scalar(loss.forward(x.clone(), &target).unwrap());
    let b = scalar(loss.forward(x, &with_channel).unwrap());
    assert_eq!(a, b);
    let error = Target::<5>::from_labels(flat_labels)
        .unwrap_err()
        .to_string();
    assert_eq!(
        error,
        "loss target: labels of rank 3 cannot match logits of rank 5"
    );
}

#[test]
fn dice_bce_is_the_weighted_sum_of_sigmoid_dice_and_bce() {
    let device = ComputeDevice::Cpu.inference();
    let mut numbers = Numbers::new(22);
    let logits = numbers.floats(2 * 2 * 6, 3.0);
    let masks: Vec<f64> = numbers
        .labels(2 * 2 * 6, 2)
        .iter()
        .map(|m| *m as f64)
        .collect();
    let value = |config: &str| {
        let loss = LossConfig::from_json(config).unwrap().build(2).unwrap();
        let target = Target::Masks(f64_tensor(&masks, [2, 2, 6], &device));
        scalar(
            loss.forward(f64_tensor(&logits, [2, 2, 6], &device), &target)
                .unwrap(),
        )
    };
    let dice = value(r#"{"name": "dice", "activation": "sigmoid", "batch_dice": true}"#);
    let bce = value(r#"{"name": "bce", "pos_weight": [2.0]}"#);
    let both = value(
        r#"{"name": "dice_bce", "dice_weight": 2.0, "bce_weight": 0.5, "batch_dice": true, "pos_weight": [2.0]}"#,
    );
    assert_close("dice_bce", both, 2.0 * dice + 0.5 * bce);
    let error = build_error(r#"{"name": "dice_bce", "pos_weight": [-1.0]}"#, 2);
    assert_eq!(
        error,
        "loss dice_bce: parameter `pos_weight` values must be finite and >= 0, got -1"
    );
}

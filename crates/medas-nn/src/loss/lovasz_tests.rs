//! Lovász values on hand-computed cases (Berman et al. 2018: sort errors descending, take the
//! discrete gradient of the Jaccard loss over the sorted ground truth, dot product) and against
//! a loop implementation of the reference on random 3-D volumes.

use super::tests::{Grid, Numbers, class_tensor, f64_tensor, scalar};
use super::*;
use crate::ComputeDevice;

const TOLERANCE: f64 = 1e-12;

fn hinge(per_image: bool, logits: &[f64], labels: &[i64], n: usize) -> f64 {
    let device = ComputeDevice::Cpu.inference();
    let config = LossConfig::LovaszHinge(LovaszHingeConfig {
        per_image,
        ignore_index: None,
    });
    let s = logits.len() / n;
    let x = f64_tensor(logits, [n, 1, s], &device);
    let y = class_tensor(labels, [n, 1, s], &device);
    scalar(
        config
            .build(1)
            .unwrap()
            .forward(x, &Target::Classes(y))
            .unwrap(),
    )
}

#[test]
fn lovasz_hinge_matches_hand_computed_values() {
    // Image A: x = [2, -1, 0.5, -3], y = [1, 1, 0, 0]; signs [1, 1, -1, -1];
    // errors 1 - x*sign = [-1, 2, 1.5, -2]; sorted descending [2, 1.5, -1, -2] with gt [1, 0, 1, 0].
    // G = 2, cumsum(gt) = [1, 1, 2, 2]; intersection G - cumsum = [1, 1, 0, 0];
    // union G + i - cumsum = [2, 3, 3, 4]; J = [1/2, 2/3, 1, 1]; gradient [1/2, 1/6, 1/3, 0];
    // loss = relu([2, 1.5, -1, -2]) . gradient = 1 + 0.25 = 1.25.
    let (a_x, a_y) = ([2.0, -1.0, 0.5, -3.0], [1, 1, 0, 0]);
    assert!((hinge(true, &a_x, &a_y, 1) - 1.25).abs() < TOLERANCE);
    // Image B, all background: x = [3, -2], errors 1 + x = [4, -1], G = 0, J = [1, 1],
    // gradient [1, 0]: loss = 4 (the largest error).
    assert!((hinge(true, &[3.0, -2.0], &[0, 0], 1) - 4.0).abs() < TOLERANCE);
    // Per image (N = 2, each image padded to 4 voxels with a confident background pair x = -9,
    // errors 1 - 9 = -8, which add nothing): mean (1.25 + 4) / 2 = 2.625.
    let both_x = [2.0, -1.0, 0.5, -3.0, 3.0, -2.0, -9.0, -9.0];
    let both_y = [1, 1, 0, 0, 0, 0, 0, 0];
    assert!((hinge(true, &both_x, &both_y, 2) - 2.625).abs() < TOLERANCE);
    // Batch: errors [-1, 2, 1.5, -2, 4, -1, -8, -8] sorted [4, 2, 1.5, -1, -1, -2, -8, -8] with gt
    // [0, 1, 0, (1|0), (0|1), 0, 0, 0]; G = 2: cumsum [0, 1, 1, ...], intersection [2, 1, 1, ..],
    // union [3, 3, 4, ..]; J = [1/3, 2/3, 3/4, ..]; gradient [1/3, 1/3, 1/12, ..] and every later
    // error is hinged to 0: loss = 4/3 + 2/3 + 1.5/12 = 2.125.
    assert!((hinge(false, &both_x, &both_y, 2) - 2.125).abs() < TOLERANCE);
}

#[test]
fn lovasz_softmax_matches_a_hand_computed_case() {
    // Two classes, three pixels; logits (0, ln 3), (ln 3, 0), (0, 0) give class-1 probabilities
    // p1 = [3/4, 1/4, 1/2] (p0 = 1 - p1); labels [1, 1, 0].
    // Class 0: fg [0, 0, 1], errors |fg - p0| = [1/4, 3/4, 1/2] sorted [3/4, 1/2, 1/4] with gt
    // [0, 1, 0]; G = 1: intersection [1, 0, 0], union [2, 2, 3], J = [1/2, 1, 1], gradient
    // [1/2, 1/2, 0]: loss0 = 3/8 + 1/4 = 0.625.
    // Class 1: fg [1, 1, 0], errors |fg - p1| = [1/4, 3/4, 1/2] sorted [3/4, 1/2, 1/4] with gt
    // [1, 0, 1]; G = 2: cumsum [1, 1, 2], intersection [1, 1, 0], union [2, 3, 3],
    // J = [1/2, 2/3, 1], gradient [1/2, 1/6, 1/3]: loss1 = 3/8 + 1/12 + 1/12 = 13/24.
    // Mean: (15/24 + 13/24) / 2 = 7/12.
    let device = ComputeDevice::Cpu.inference();
    let ln3 = 3f64.ln();
    let logits = [0.0, ln3, 0.0, ln3, 0.0, 0.0]; // channel 0 then channel 1, (1, 2, 3)
    let loss = LossConfig::LovaszSoftmax(LovaszSoftmaxConfig::default())
        .build(2)
        .unwrap();
    let target = Target::Classes(class_tensor(&[1, 1, 0], [1, 1, 3], &device));
    let value = scalar(
        loss.forward(f64_tensor(&logits, [1, 2, 3], &device), &target)
            .unwrap(),
    );
    assert!((value - 7.0 / 12.0).abs() < TOLERANCE, "{value}");
}

/// The reference algorithm by loops: for each group of voxels and class, errors sorted
/// descending (stable), Jaccard gradient, dot product; mean over present (or all) classes.
fn reference_lovasz_softmax(
    g: &Grid,
    p: &[f64],
    labels: &[i64],
    per_image: bool,
    all: bool,
) -> f64 {
    let groups: Vec<Vec<usize>> = if per_image {
        (0..g.n).map(|n| vec![n]).collect()
    } else {
        vec![(0..g.n).collect()]
    };
    let mut group_means = Vec::new();
    for images in &groups {
        let mut losses = Vec::new();
        for c in 0..g.c {
            let mut pairs: Vec<(f64, f64)> = Vec::new();
            for &n in images {
                for s in 0..g.s {
                    let fg = f64::from(labels[n * g.s + s] == c as i64);
                    pairs.push(((fg - p[g.at(n, c, s)]).abs(), fg));
                }
            }
            let present: f64 = pairs.iter().map(|pair| pair.1).sum();
            if !all && present == 0.0 {
                continue;
            }
            pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
            let (mut cumulative, mut previous, mut loss) = (0.0, 0.0, 0.0);
            for (i, (error, fg)) in pairs.iter().enumerate() {
                cumulative += fg;
                let jaccard =
                    1.0 - (present - cumulative) / (present + (i + 1) as f64 - cumulative);
                loss += error * (jaccard - previous);
                previous = jaccard;
            }
            losses.push(loss);
        }
        group_means.push(if losses.is_empty() {
            0.0
        } else {
            losses.iter().sum::<f64>() / losses.len() as f64
        });
    }
    group_means.iter().sum::<f64>() / group_means.len() as f64
}

#[test]
fn lovasz_softmax_matches_the_reference_loops_on_volumes() {
    let device = ComputeDevice::Cpu.inference();
    let grid = Grid {
        n: 2,
        c: 4,
        s: 2 * 3 * 2,
    };
    let mut numbers = Numbers::new(11);
    let logits = numbers.floats(grid.n * grid.c * grid.s, 2.0);
    // Class 3 never occurs, so "present" and "all" differ.
    let labels = numbers.labels(grid.n * grid.s, 3);
    let p = grid.softmax(&logits);
    for per_image in [false, true] {
        for (classes, all) in [(LovaszClasses::Present, false), (LovaszClasses::All, true)] {
            let config = LossConfig::LovaszSoftmax(LovaszSoftmaxConfig {
                classes,
                per_image,
                ignore_index: None,
            });
            let x = f64_tensor(&logits, [2, 4, 2, 3, 2], &device);
            let y = Target::Classes(class_tensor(&labels, [2, 1, 2, 3, 2], &device));
            let ours = scalar(config.build(4).unwrap().forward(x, &y).unwrap());
            let expected = reference_lovasz_softmax(&grid, &p, &labels, per_image, all);
            eprintln!(
                "lovasz_softmax per_image {per_image} {classes:?}: {ours:.12} vs {expected:.12}"
            );
            assert!((ours - expected).abs() < TOLERANCE);
        }
    }
}

#[test]
fn ignored_voxels_change_nothing_but_their_own_terms() {
    // Lovász-softmax with some voxels ignored equals the loss on the remaining voxels alone.
    let device = ComputeDevice::Cpu.inference();
    let mut numbers = Numbers::new(12);
    let logits = numbers.floats(3 * 8, 2.0);
    let mut labels = numbers.labels(8, 3);
    labels[2] = 9;
    labels[5] = 9;
    let kept: Vec<usize> = (0..8).filter(|s| labels[*s] != 9).collect();
    let kept_logits: Vec<f64> = (0..3)
        .flat_map(|c| kept.iter().map(move |s| (c, *s)))
        .map(|(c, s)| logits[c * 8 + s])
        .collect();
    let kept_labels: Vec<i64> = kept.iter().map(|s| labels[*s]).collect();
    let forward = |logits: &[f64], labels: &[i64], ignore: Option<i64>| {
        let s = labels.len();
        let config = LossConfig::LovaszSoftmax(LovaszSoftmaxConfig {
            ignore_index: ignore,
            ..Default::default()
        });
        let target = Target::Classes(class_tensor(labels, [1, 1, s], &device));
        scalar(
            config
                .build(3)
                .unwrap()
                .forward(f64_tensor(logits, [1, 3, s], &device), &target)
                .unwrap(),
        )
    };
    let with_ignore = forward(&logits, &labels, Some(9));
    let without = forward(&kept_logits, &kept_labels, None);
    assert!(
        (with_ignore - without).abs() < TOLERANCE,
        "{with_ignore} vs {without}"
    );
}

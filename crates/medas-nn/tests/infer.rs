//! Sliding-window inference: window positions against hand-worked cases of nnU-Net's rule, the
//! Gaussian map against its formula, stitching against whole-volume forwards of models whose
//! answer is known (a 1×1 convolution is translation- and flip-equivariant and local, so every
//! window must reproduce the whole volume's output exactly), Gaussian blending of a
//! position-dependent model against the weighted mean written out here, test-time flips against
//! the average of flipped forwards, padding of small inputs, real networks in 2-D and 3-D, and
//! the errors for configs that cannot work.
//!
//! Tolerances: 1e-5 absolute on probabilities and logits of order 1 (f32 sums of at most a few
//! dozen terms; measured differences are printed).

use burn::tensor::activation::softmax;
use burn::tensor::module::conv3d;
use burn::tensor::ops::{ConvOptions, PadMode};
use burn::tensor::{Device, Distribution, Tensor};
use medas_nn::infer::{self, Blend, Flips, InferError, OutputActivation, SlidingWindowConfig, WindowModel, gaussian_weights, window_grid, window_starts};
use medas_nn::{ComputeDevice, Network, NetworkConfig, NetworkOutput};

const TOLERANCE: f32 = 1e-5;

/// A single 3-D convolution with "same" padding (kernel 1 or 3): a model whose whole-volume
/// answer is known.
struct ConvModel {
    weight: Tensor<5>,
    bias: Tensor<1>,
    multiple: usize,
}

impl ConvModel {
    fn random(channels: [usize; 2], kernel: usize, multiple: usize, device: &Device) -> ConvModel {
        let weight = Tensor::random([channels[1], channels[0], kernel, kernel, kernel], Distribution::Normal(0.0, 1.0), device);
        let bias = Tensor::random([channels[1]], Distribution::Normal(0.0, 1.0), device);
        ConvModel { weight, bias, multiple }
    }

    fn forward(&self, x: Tensor<5>) -> Tensor<5> {
        let pad = self.weight.dims()[2] / 2;
        conv3d(x, self.weight.clone(), Some(self.bias.clone()), ConvOptions::new([1; 3], [pad; 3], [1; 3], 1))
    }
}

impl WindowModel for ConvModel {
    fn size_multiple(&self) -> usize {
        self.multiple
    }

    fn check_window(&self, shape: [usize; 5]) -> Result<(), InferError> {
        assert_eq!(shape[1], self.weight.dims()[1], "the test feeds the right channels");
        Ok(())
    }

    fn logits(&self, windows: Tensor<5>) -> Result<Tensor<5>, InferError> {
        Ok(self.forward(windows))
    }
}

fn values(t: Tensor<5>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

fn max_difference(a: Tensor<5>, b: Tensor<5>) -> f32 {
    assert_eq!(a.dims(), b.dims());
    values(a).iter().zip(values(b)).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn random(shape: [usize; 5], device: &Device) -> Tensor<5> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
}

fn run<M: WindowModel>(model: &M, volume: Tensor<5>, config: &SlidingWindowConfig) -> Tensor<5> {
    infer::predict_with(model, volume, config, |_| true).unwrap_or_else(|e| panic!("{config:?}: {e}"))
}

#[test]
fn window_starts_follow_nnunet_on_hand_worked_cases() {
    // (size, patch, overlap) -> starts; t = patch (1 - overlap), n = ceil((size - patch) / t) + 1,
    // start_i = round_half_even(i (size - patch) / (n - 1)).
    let cases: [(usize, usize, f64, &[usize]); 9] = [
        (10, 4, 0.5, &[0, 2, 4, 6]),     // t = 2, n = 4, step 2
        (11, 4, 0.5, &[0, 2, 4, 5, 7]),  // n = ceil(3.5) + 1 = 5, step 1.75: 1.75, 3.5 -> 4, 5.25
        (7, 4, 0.0, &[0, 3]),            // t = 4, n = 2, step 3
        (9, 4, 0.25, &[0, 2, 5]),        // t = 3, n = 3, step 2.5 -> 2 (half to even)
        (30, 10, 0.3, &[0, 7, 13, 20]),  // t = 7, n = 4, step 6.67
        (200, 128, 0.5, &[0, 36, 72]),   // t = 64, n = 3, step 36
        (64, 64, 0.5, &[0]),             // the patch fills the axis
        (5, 1, 0.5, &[0, 1, 2, 3, 4]),   // step 0.5: repeated starts kept once
        (13, 2, 0.5, &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]),
    ];
    for (size, patch, overlap, expected) in cases {
        assert_eq!(window_starts(size, patch, overlap), expected, "size {size}, patch {patch}, overlap {overlap}");
    }
    let grid = window_grid([1, 10, 7], [1, 4, 4], 0.5);
    assert_eq!(grid.len(), 4 * 3, "H 0, 2, 4, 6; W 0, 2, 3 (step 1.5)");
    assert_eq!(grid[..4], [[0, 0, 0], [0, 0, 2], [0, 0, 3], [0, 2, 0]]);
}

#[test]
fn gaussian_map_is_the_normalised_gaussian_with_sigma_an_eighth_of_the_patch() {
    for patch in [[4, 6, 5], [1, 8, 8], [16, 16, 16]] {
        let map = gaussian_weights(patch);
        let mut worst = 0.0f64;
        let mut i = 0;
        for d in 0..patch[0] {
            for h in 0..patch[1] {
                for w in 0..patch[2] {
                    // One exponential of the summed squared distances (scaled by each sigma),
                    // centred at p / 2 (integer division), as the impulse nnU-Net smooths.
                    let term = |x: usize, p: usize| {
                        let sigma = p as f64 / 8.0;
                        (x as f64 - (p / 2) as f64).powi(2) / (2.0 * sigma * sigma)
                    };
                    let expected = (-(term(d, patch[0]) + term(h, patch[1]) + term(w, patch[2]))).exp();
                    worst = worst.max((map[i] as f64 - expected).abs() / expected);
                    i += 1;
                }
            }
        }
        eprintln!("gaussian {patch:?}: worst relative difference {worst:.2e}");
        assert!(worst < 1e-6, "{patch:?}: {worst}");
        let centre = (patch[0] / 2 * patch[1] + patch[1] / 2) * patch[2] + patch[2] / 2;
        assert_eq!(map[centre], 1.0);
        assert!(map.iter().all(|&w| w > 0.0 && w <= 1.0));
    }
}

#[test]
fn pointwise_model_stitches_to_the_whole_volume_forward_in_2d_and_3d() {
    let device = ComputeDevice::Cpu.inference();
    let model = ConvModel::random([3, 4], 1, 4, &device);
    for (shape, patch) in [([1, 3, 11, 13, 9], [4, 8, 4]), ([1, 3, 1, 21, 17], [1, 8, 8])] {
        let volume = random(shape, &device);
        let expected = softmax(model.forward(volume.clone()), 1);
        for blend in [Blend::Constant, Blend::Gaussian] {
            for (overlap, batch_size) in [(0.5, 3), (0.0, 1), (0.8, 4)] {
                let config = SlidingWindowConfig { overlap, blend, batch_size, ..SlidingWindowConfig::new(patch) };
                let difference = max_difference(run(&model, volume.clone(), &config), expected.clone());
                eprintln!("{shape:?} patch {patch:?} {blend:?} overlap {overlap}: max |sliding - whole| {difference:.2e}");
                assert!(difference < TOLERANCE, "{config:?}: {difference}");
            }
        }
    }
}

/// A model whose output depends on where a voxel lies in its window: input + 10 h + w for the
/// window's (h, w). Blending must give each voxel the Gaussian-weighted mean over its windows.
struct RampModel {
    patch: [usize; 3],
}

impl WindowModel for RampModel {
    fn size_multiple(&self) -> usize {
        1
    }

    fn check_window(&self, _: [usize; 5]) -> Result<(), InferError> {
        Ok(())
    }

    fn logits(&self, windows: Tensor<5>) -> Result<Tensor<5>, InferError> {
        let [_, ph, pw] = self.patch;
        let ramp: Vec<f32> = (0..ph * pw).map(|i| (10 * (i / pw) + i % pw) as f32).collect();
        let ramp = Tensor::<1>::from_floats(ramp.as_slice(), &windows.device()).reshape([1, 1, 1, ph, pw]);
        Ok(windows + ramp)
    }
}

/// The blend of `RampModel` over an H x W plane with patch 4 x 4 and overlap 0.5 (windows at
/// H 0, 2, ... and W 0, 2, ...), each window voxel weighted by `weight(h) * weight(w)`.
fn ramp_blend(input: &[f32], size: [usize; 2], weight: impl Fn(usize) -> f64) -> Vec<f64> {
    let starts = |n: usize| (0..=n - 4).step_by(2).collect::<Vec<_>>();
    let mut out = Vec::new();
    for h in 0..size[0] {
        for w in 0..size[1] {
            let (mut sum, mut total) = (0.0, 0.0);
            for sh in starts(size[0]).into_iter().filter(|&s| s <= h && h < s + 4) {
                for sw in starts(size[1]).into_iter().filter(|&s| s <= w && w < s + 4) {
                    let g = weight(h - sh) * weight(w - sw);
                    sum += g * (input[h * size[1] + w] as f64 + (10 * (h - sh) + (w - sw)) as f64);
                    total += g;
                }
            }
            out.push(sum / total);
        }
    }
    out
}

#[test]
fn blending_gives_the_weighted_mean_of_the_windows() {
    let device = ComputeDevice::Cpu.inference();
    // 6 and 10 are 2 + multiples of 2, so the windows start at 0, 2, 4, ... on both axes.
    let (size, patch) = ([6usize, 10usize], [1, 4, 4]);
    let volume = random([1, 1, 1, size[0], size[1]], &device);
    let input = values(volume.clone());
    // sigma = 4 / 8 = 0.5 around the centre 2: exp(-(x - 2)^2 / (2 * 0.25)).
    let gaussian = |x: usize| (-((x as f64 - 2.0).powi(2)) / 0.5).exp();
    for (blend, expected) in [(Blend::Gaussian, ramp_blend(&input, size, gaussian)), (Blend::Constant, ramp_blend(&input, size, |_| 1.0))] {
        let config = SlidingWindowConfig { activation: OutputActivation::None, blend, ..SlidingWindowConfig::new(patch) };
        let got = values(run(&RampModel { patch }, volume.clone(), &config));
        let worst = got.iter().zip(&expected).map(|(g, e)| (*g as f64 - e).abs()).fold(0.0, f64::max);
        eprintln!("{blend:?} blending of a position-dependent model: max |got - hand-computed| {worst:.2e} (values up to 35)");
        assert!(worst < 1e-4, "{blend:?}: {worst}");
    }
}

/// The mean over every flip set (none, each axis, each pair, all three) of
/// softmax(flip(model(flip(x)))), written out with the tensor operations.
fn mean_of_flipped_forwards(model: &ConvModel, x: Tensor<5>) -> Tensor<5> {
    let run = |x: Tensor<5>, axes: &[usize]| {
        let flip = |t: Tensor<5>| axes.iter().fold(t, |t, &a| t.flip([a]));
        softmax(flip(model.forward(flip(x))), 1)
    };
    let sets: [&[usize]; 8] = [&[], &[2], &[3], &[4], &[2, 3], &[2, 4], &[3, 4], &[2, 3, 4]];
    sets.iter().map(|axes| run(x.clone(), axes)).reduce(|a, b| a + b).unwrap() / 8.0
}

#[test]
fn flips_average_the_flipped_forwards() {
    let device = ComputeDevice::Cpu.inference();
    // A 1x1 convolution is flip-equivariant: the flips change nothing, over many windows.
    let pointwise = ConvModel::random([2, 3], 1, 2, &device);
    let volume = random([1, 2, 10, 12, 14], &device);
    let plain = SlidingWindowConfig { batch_size: 2, ..SlidingWindowConfig::new([4, 6, 8]) };
    let flipped = SlidingWindowConfig { flips: Flips::All, ..plain.clone() };
    let difference = max_difference(run(&pointwise, volume.clone(), &flipped), run(&pointwise, volume.clone(), &plain));
    eprintln!("1x1 convolution: max |flipped - plain| {difference:.2e}");
    assert!(difference < TOLERANCE, "{difference}");

    // A random 3x3x3 convolution is not: one window over the whole volume must give the mean of
    // the eight flipped forwards, which differs from the plain forward.
    let conv = ConvModel::random([2, 3], 3, 2, &device);
    let volume = random([1, 2, 4, 6, 8], &device);
    let whole = SlidingWindowConfig { flips: Flips::All, ..SlidingWindowConfig::new([4, 6, 8]) };
    let got = run(&conv, volume.clone(), &whole);
    let difference = max_difference(got.clone(), mean_of_flipped_forwards(&conv, volume.clone()));
    let from_plain = max_difference(got, softmax(conv.forward(volume), 1));
    eprintln!("3x3x3 convolution: max |flipped - hand-computed mean| {difference:.2e}; differs from the plain forward by {from_plain:.2e}");
    assert!(difference < TOLERANCE, "{difference}");
    assert!(from_plain > 1e-3, "the flips should matter for this model: {from_plain}");
}

#[test]
fn flip_sets_follow_the_axes_asked_for() {
    let all = SlidingWindowConfig { flips: Flips::All, ..SlidingWindowConfig::new([1, 8, 8]) };
    assert_eq!(all.flip_sets(), [vec![], vec![3], vec![4], vec![3, 4]], "2-D: the depth of 1 is not flipped");
    let two = SlidingWindowConfig { flips: Flips::Axes(vec![2, 0]), ..SlidingWindowConfig::new([8, 8, 8]) };
    assert_eq!(two.flip_sets(), [vec![], vec![2], vec![4], vec![2, 4]]);
    assert_eq!(SlidingWindowConfig::new([8, 8, 8]).flip_sets(), [Vec::<usize>::new()]);
}

#[test]
fn inputs_smaller_than_the_patch_are_padded_and_cropped_back() {
    let device = ComputeDevice::Cpu.inference();
    // A 3x3x3 convolution sees the padding, so the result must be that of the volume padded
    // half before (the odd voxel after) with pad_value, cropped back.
    let conv = ConvModel::random([1, 2], 3, 4, &device);
    let volume = random([1, 1, 3, 5, 8], &device);
    let config = SlidingWindowConfig { pad_value: 2.5, ..SlidingWindowConfig::new([4, 8, 8]) };
    let got = run(&conv, volume.clone(), &config);
    assert_eq!(got.dims(), [1, 2, 3, 5, 8]);
    let padded = volume.pad([(0, 0), (0, 0), (0, 1), (1, 2), (0, 0)], PadMode::Constant(2.5));
    let expected = softmax(conv.forward(padded), 1).slice([0..1, 0..2, 0..3, 1..6, 0..8]);
    let difference = max_difference(got, expected);
    eprintln!("padded input: max |got - padded forward, cropped| {difference:.2e}");
    assert!(difference < TOLERANCE, "{difference}");
}

fn network(json: &str, device: &Device) -> Network {
    NetworkConfig::from_json(json).unwrap().build_seeded(device, 7).unwrap()
}

fn forward_probabilities(net: &Network, x: Tensor<5>) -> Tensor<5> {
    match net.forward(x).unwrap() {
        NetworkOutput::Segmentation(s) => softmax(s.logits, 1),
        NetworkOutput::Classes(_) => panic!("not a segmentation network"),
    }
}

#[test]
fn unets_in_2d_and_3d_give_probabilities_on_the_input_grid() {
    let device = ComputeDevice::Cpu.inference();
    let cases = [
        (r#"{"name": "unet", "spatial": "2d", "depth": 2, "base_channels": 4, "classes": 3}"#, [1, 1, 1, 20, 28], [1, 8, 16]),
        (r#"{"name": "unet", "spatial": "3d", "depth": 2, "base_channels": 2, "classes": 3}"#, [1, 1, 10, 12, 9], [8, 8, 8]),
    ];
    for (json, shape, patch) in cases {
        let net = network(json, &device);
        let volume = random(shape, &device);
        let config = SlidingWindowConfig { batch_size: 2, flips: Flips::All, ..SlidingWindowConfig::new(patch) };
        let probabilities = infer::predict(&net, volume.clone(), &config, |_| true).unwrap();
        assert_eq!(probabilities.dims(), [1, 3, shape[2], shape[3], shape[4]], "{json}");
        let sums = probabilities.clone().sum_dim(1);
        let off = max_difference(sums.clone(), sums.ones_like());
        assert!(off < TOLERANCE, "{json}: class probabilities sum to 1 within {off}");
        let labels = infer::argmax_labels(probabilities);
        assert_eq!(labels.dims(), [1, 1, shape[2], shape[3], shape[4]]);

        // One window covering a patch-sized volume is the network's own forward.
        let volume = volume.slice([0..1, 0..1, 0..patch[0], 0..patch[1], 0..patch[2]]);
        let one = SlidingWindowConfig::new(patch);
        let difference = max_difference(infer::predict(&net, volume.clone(), &one, |_| true).unwrap(), forward_probabilities(&net, volume));
        eprintln!("{json}: one window vs forward {difference:.2e}");
        assert!(difference < TOLERANCE, "{json}: {difference}");
    }
}

#[test]
fn a_network_on_the_training_device_runs_without_a_gradient_tape() {
    let device = ComputeDevice::Cpu.training();
    let net = network(r#"{"name": "unet", "spatial": "2d", "depth": 1, "base_channels": 2, "dropout": 0.5}"#, &device);
    let volume = random([1, 1, 1, 6, 6], &device);
    let config = SlidingWindowConfig::new([1, 4, 4]);
    let first = infer::predict(&net, volume.clone(), &config, |_| true).unwrap();
    assert!(!first.is_autodiff());
    // No dropout at inference: the same answer twice.
    let second = infer::predict(&net, volume, &config, |_| true).unwrap();
    assert_eq!(values(first), values(second));
}

#[test]
fn progress_counts_forward_passes_and_can_cancel() {
    let device = ComputeDevice::Cpu.inference();
    let model = ConvModel::random([1, 2], 1, 1, &device);
    let volume = random([1, 1, 1, 10, 10], &device);
    // 4 x 4 windows in batches of 3 (6 batches), 4 flip sets in 2-D: 24 passes.
    let config = SlidingWindowConfig { batch_size: 3, flips: Flips::All, ..SlidingWindowConfig::new([1, 4, 4]) };
    let mut seen = Vec::new();
    infer::predict_with(&model, volume.clone(), &config, |done| {
        seen.push(done);
        true
    })
    .unwrap();
    assert_eq!(seen.len(), 24);
    assert!(seen.windows(2).all(|w| w[0] < w[1]) && seen[23] == 1.0, "{seen:?}");
    let mut calls = 0;
    let error = infer::predict_with(&model, volume, &config, |_| {
        calls += 1;
        calls < 6
    })
    .unwrap_err();
    assert_eq!(error, InferError::Cancelled { done: 0.25 });
    assert_eq!(error.to_string(), "inference cancelled at 25% done");
}

#[test]
fn configs_that_cannot_work_are_refused_with_clear_errors() {
    let device = ComputeDevice::Cpu.inference();
    let net = network(r#"{"name": "unet", "spatial": "3d", "depth": 2, "base_channels": 2}"#, &device);
    let volume = random([1, 1, 8, 8, 8], &device);
    let error = |config: SlidingWindowConfig, volume: Tensor<5>| infer::predict(&net, volume, &config, |_| true).unwrap_err().to_string();
    let base = SlidingWindowConfig::new([8, 8, 8]);
    assert_eq!(
        error(SlidingWindowConfig::new([8, 6, 8]), volume.clone()),
        "sliding window: patch_size [8, 6, 8]: H = 6 is not a multiple of 4, the network's size multiple (D may also be 1)"
    );
    assert_eq!(error(SlidingWindowConfig { overlap: 1.0, ..base.clone() }, volume.clone()), "sliding window: overlap must be in [0, 1), got 1");
    assert_eq!(error(SlidingWindowConfig::new([0, 8, 8]), volume.clone()), "sliding window: patch_size must be at least 1 on every axis, got [0, 8, 8]");
    assert_eq!(error(SlidingWindowConfig { batch_size: 0, ..base.clone() }, volume.clone()), "sliding window: batch_size must be at least 1, got 0");
    assert_eq!(error(SlidingWindowConfig { flips: Flips::Axes(vec![1, 3]), ..base.clone() }, volume.clone()), "sliding window: flip axes are 0 (D), 1 (H) and 2 (W), got 3");
    assert_eq!(
        error(base.clone(), random([2, 1, 8, 8, 8], &device)),
        "sliding window input: expected one volume (1, C, D, H, W) with C, D, H, W at least 1, got [2, 1, 8, 8, 8]"
    );
    assert_eq!(
        error(SlidingWindowConfig::new([1, 8, 8]), volume.clone()),
        "unet expects input (N, 1, D, H, W) with D, H and W multiples of 4; got [1, 1, 1, 8, 8]"
    );
    assert_eq!(error(base.clone(), random([1, 2, 8, 8, 8], &device)), "unet expects input (N, 1, D, H, W) with D, H and W multiples of 4; got [1, 2, 8, 8, 8]");
    let classifier = network(r#"{"name": "classifier", "spatial": "3d", "depth": 2, "base_channels": 2}"#, &device);
    assert_eq!(
        infer::predict(&classifier, volume, &base, |_| true).unwrap_err().to_string(),
        "sliding window input: classifier gives one label per image; sliding windows need a segmentation network"
    );
    let json = SlidingWindowConfig::from_json(r#"{"patch_size": [8, 8, 8], "overlap": 0.25, "flips": {"axes": [0, 2]}, "blend": "constant"}"#).unwrap();
    assert_eq!(json, SlidingWindowConfig { overlap: 0.25, flips: Flips::Axes(vec![0, 2]), blend: Blend::Constant, ..base });
    assert!(SlidingWindowConfig::from_json(r#"{"patch_size": [8, 8, 8], "overlap_fraction": 0.5}"#).unwrap_err().to_string().contains("unknown field `overlap_fraction`"));
}

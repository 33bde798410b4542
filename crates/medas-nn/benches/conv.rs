//! Speed of the fast convolution against Burn's own, forward and forward+backward, on the Flex
//! CPU backend. Usage: `cargo bench -p medas-nn --bench conv [-- REPEATS [CASE [ours]]]`
//! (`ours` skips Burn's convolution, for profiling).
//!
//! Forward runs on `Device::flex()`; forward+backward on `Device::flex().autodiff()` with input,
//! weight and bias all requiring gradients and `loss = Σ y`. Each figure is the median of
//! REPEATS runs (default 10; 3 for the large layer) after two warm-up runs. One `RESULT` line per case is printed for
//! scripts/bench-conv, which puts PyTorch beside it.

use std::time::Instant;

use burn::tensor::{Device, Distribution, Tensor, module, ops::ConvOptions};
use medas_nn::conv::{conv2d, conv3d};

struct Case {
    name: &'static str,
    /// At most this many timed runs (Burn's backward of the large layer takes seconds).
    max_repeats: usize,
    /// `[batch, in, (D,) H, W]`, 4 or 5 values.
    input: &'static [usize],
    out_channels: usize,
    kernel: usize,
}

const CASES: [Case; 4] = [
    Case {
        name: "conv2d_4x16x128x128_16_k3",
        max_repeats: 100,
        input: &[4, 16, 128, 128],
        out_channels: 16,
        kernel: 3,
    },
    Case {
        name: "conv2d_8x32x256x256_32_k3",
        max_repeats: 3,
        input: &[8, 32, 256, 256],
        out_channels: 32,
        kernel: 3,
    },
    Case {
        name: "conv3d_2x8x32x32x32_8_k3",
        max_repeats: 100,
        input: &[2, 8, 32, 32, 32],
        out_channels: 8,
        kernel: 3,
    },
    // A deep U-Net level at batch 1: one tile, so the GEMMs themselves are split across threads.
    Case {
        name: "conv3d_1x32x8x8x8_64_k3",
        max_repeats: 100,
        input: &[1, 32, 8, 8, 8],
        out_channels: 64,
        kernel: 3,
    },
];

/// Median seconds of `repeats` runs after two warm-ups.
fn median_seconds(repeats: usize, mut run: impl FnMut()) -> f64 {
    run();
    run();
    let mut times: Vec<f64> = (0..repeats)
        .map(|_| {
            let start = Instant::now();
            run();
            start.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// One convolution (ours or Burn's) on tensors of rank 4 or 5 with "same" padding.
fn convolve(case: &Case, ours: bool, x: Tensor<5>, w: Tensor<5>, b: Tensor<1>) -> Tensor<5> {
    let pad = case.kernel / 2;
    if case.input.len() == 5 {
        let options = ConvOptions::new([1; 3], [pad; 3], [1; 3], 1);
        return if ours {
            conv3d(x, w, Some(b), &options).unwrap()
        } else {
            module::conv3d(x, w, Some(b), options)
        };
    }
    // 2-D cases travel as [n, c, 1, h, w] to keep one code path here.
    let squeeze = |t: Tensor<5>| -> Tensor<4> { t.squeeze_dim(2) };
    let options = ConvOptions::new([1; 2], [pad; 2], [1; 2], 1);
    let y = if ours {
        conv2d(squeeze(x), squeeze(w), Some(b), &options).unwrap()
    } else {
        module::conv2d(squeeze(x), squeeze(w), Some(b), options)
    };
    y.unsqueeze_dim(2)
}

fn shapes(case: &Case) -> ([usize; 5], [usize; 5]) {
    let k = case.kernel;
    match *case.input {
        [n, c, h, w] => ([n, c, 1, h, w], [case.out_channels, c, 1, k, k]),
        [n, c, d, h, w] => ([n, c, d, h, w], [case.out_channels, c, k, k, k]),
        _ => unreachable!("cases are 2-D or 3-D"),
    }
}

/// Forward and forward+backward median seconds.
fn time_case(case: &Case, ours: bool, repeats: usize) -> (f64, f64) {
    let (x_shape, w_shape) = shapes(case);
    let make = |device: &Device| {
        let dist = Distribution::Uniform(-1.0, 1.0);
        (
            Tensor::<5>::random(x_shape, dist, device),
            Tensor::<5>::random(w_shape, dist, device).div_scalar(10.0),
            Tensor::<1>::random([case.out_channels], dist, device),
        )
    };
    let (x, w, b) = make(&Device::flex());
    let forward = median_seconds(repeats, || {
        drop(convolve(case, ours, x.clone(), w.clone(), b.clone()));
    });
    let (x, w, b) = make(&Device::flex().autodiff());
    let (x, w, b) = (x.require_grad(), w.require_grad(), b.require_grad());
    let both = median_seconds(repeats, || {
        let y = convolve(case, ours, x.clone(), w.clone(), b.clone());
        let grads = y.sum().backward();
        drop(grads);
    });
    (forward, both)
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let repeats = args.first().and_then(|a| a.parse().ok()).unwrap_or(10);
    let only = args.get(1).cloned().unwrap_or_default();
    let ours_only = args.get(2).is_some_and(|a| a == "ours");
    println!(
        "{:<28} {:>10} {:>10} {:>7} {:>12} {:>12} {:>7}",
        "case", "burn fwd", "ours fwd", "ratio", "burn f+b", "ours f+b", "ratio"
    );
    for case in CASES.iter().filter(|c| c.name.contains(&only)) {
        let repeats = repeats.min(case.max_repeats);
        let (burn_fwd, burn_both) = if ours_only {
            (f64::NAN, f64::NAN)
        } else {
            time_case(case, false, repeats)
        };
        let (ours_fwd, ours_both) = time_case(case, true, repeats);
        let ms = |s: f64| format!("{:.1} ms", s * 1e3);
        println!(
            "{:<28} {:>10} {:>10} {:>7.2} {:>12} {:>12} {:>7.2}",
            case.name,
            ms(burn_fwd),
            ms(ours_fwd),
            ours_fwd / burn_fwd,
            ms(burn_both),
            ms(ours_both),
            ours_both / burn_both
        );
        println!(
            "RESULT {} ours_fwd_ms={:.2} ours_fwdbwd_ms={:.2} burn_fwd_ms={:.2} burn_fwdbwd_ms={:.2}",
            case.name,
            ours_fwd * 1e3,
            ours_both * 1e3,
            burn_fwd * 1e3,
            burn_both * 1e3
        );
    }
}

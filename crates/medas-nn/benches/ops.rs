//! Forward + backward timings of the 3-D operators: the direct Flex path against the generic
//! composed path (and, for block max pooling, the reshape-to-8-D + `max_dim` workaround the
//! research measured). Run: `cargo bench -p medas-nn --bench ops`.

use std::time::{Duration, Instant};

use burn::tensor::{Device, Distribution, Tensor};
use medas_nn::ops::{
    self, AvgPool3dConfig, Interpolate3dConfig, Interpolate3dMode, MaxPool3dConfig, composed,
};

type Op = fn(Tensor<5>) -> Tensor<5>;
/// (name, input shape, runs, fast op, composed op, the 8-D reshape workaround where it applies).
type Case = (&'static str, [usize; 5], usize, Op, Op, Option<Op>);

fn fast_max(x: Tensor<5>) -> Tensor<5> {
    ops::max_pool3d(x, &MaxPool3dConfig::new([2, 2, 2])).expect("valid options")
}
fn composed_max(x: Tensor<5>) -> Tensor<5> {
    composed::max_pool3d(x, &MaxPool3dConfig::new([2, 2, 2])).expect("valid options")
}
/// Block max pooling as `[N, C, D/2, 2, H/2, 2, W/2, 2]` reduced over the three size-2 axes.
fn reshape_max(x: Tensor<5>) -> Tensor<5> {
    let [n, c, d, h, w] = x.dims();
    let blocks: Tensor<8> = x.reshape([n, c, d / 2, 2, h / 2, 2, w / 2, 2]);
    blocks
        .max_dim(7)
        .max_dim(5)
        .max_dim(3)
        .reshape([n, c, d / 2, h / 2, w / 2])
}
fn fast_avg(x: Tensor<5>) -> Tensor<5> {
    ops::avg_pool3d(x, &AvgPool3dConfig::new([2, 2, 2])).expect("valid options")
}
fn composed_avg(x: Tensor<5>) -> Tensor<5> {
    composed::avg_pool3d(x, &AvgPool3dConfig::new([2, 2, 2])).expect("valid options")
}
fn upsample() -> Interpolate3dConfig {
    Interpolate3dConfig::scale([2.0; 3], Interpolate3dMode::Trilinear, false)
}
fn fast_trilinear(x: Tensor<5>) -> Tensor<5> {
    ops::interpolate3d(x, &upsample()).expect("valid options")
}
fn composed_trilinear(x: Tensor<5>) -> Tensor<5> {
    composed::interpolate3d(x, &upsample()).expect("valid options")
}

/// Median and minimum wall time of forward + backward (of the output's sum) over `runs` runs after
/// one warm-up. The minimum is the better estimate on a machine shared with other builds.
fn time(op: Op, shape: [usize; 5], runs: usize) -> Timing {
    let device = Device::flex().autodiff();
    let x = Tensor::<5>::random(shape, Distribution::Default, &device).require_grad();
    let mut times: Vec<Duration> = (0..=runs)
        .map(|_| {
            let start = Instant::now();
            let grads = op(x.clone()).sum().backward();
            let gradient = x.grad(&grads).expect("x is tracked");
            std::hint::black_box(gradient.into_data());
            start.elapsed()
        })
        .skip(1)
        .collect();
    times.sort();
    Timing {
        median: times[times.len() / 2],
        min: times[0],
    }
}

#[derive(Clone, Copy)]
struct Timing {
    median: Duration,
    min: Duration,
}

impl Timing {
    fn ms(self) -> (f64, f64) {
        (
            self.median.as_secs_f64() * 1e3,
            self.min.as_secs_f64() * 1e3,
        )
    }
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() {
    println!("load average (1, 5, 15 min) at start: {}", load());
    let small = [2, 8, 32, 32, 32];
    let large = [2, 32, 64, 64, 64];
    let cases: [Case; 6] = [
        (
            "max_pool3d k2",
            small,
            15,
            fast_max,
            composed_max,
            Some(reshape_max),
        ),
        (
            "max_pool3d k2",
            large,
            3,
            fast_max,
            composed_max,
            Some(reshape_max),
        ),
        ("avg_pool3d k2", small, 15, fast_avg, composed_avg, None),
        ("avg_pool3d k2", large, 3, fast_avg, composed_avg, None),
        (
            "trilinear x2",
            small,
            7,
            fast_trilinear,
            composed_trilinear,
            None,
        ),
        (
            "trilinear x2",
            [2, 8, 64, 64, 64],
            3,
            fast_trilinear,
            composed_trilinear,
            None,
        ),
    ];
    println!(
        "| operation (forward + backward) | input | fast ms, median (min) | composed ms | composed / fast (min) | 8-D reshape ms |"
    );
    println!("|---|---|---|---|---|---|");
    let cell = |(median, min): (f64, f64)| format!("{median:.1} ({min:.1})");
    for (name, shape, runs, fast, reference, workaround) in cases {
        let fast = time(fast, shape, runs).ms();
        let composed = time(reference, shape, runs).ms();
        let workaround =
            workaround.map_or_else(|| "-".into(), |op| cell(time(op, shape, runs).ms()));
        let ratio = composed.1 / fast.1;
        println!(
            "| {name} | {shape:?} | {} | {} | {ratio:.1} | {workaround} |",
            cell(fast),
            cell(composed)
        );
    }
    println!("load average (1, 5, 15 min) at end: {}", load());
}

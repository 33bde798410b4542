//! Training step time (forward + Dice/CE loss + backward + Adam) of the U-Nets of issue 6's
//! benchmark, on the CPU (`ComputeDevice::Cpu.training()`, Flex + autodiff, rayon threads).
//!
//! `cargo bench -p medas-nn --bench train_step [-- CASE [STEPS [WARMUP]]]`; CASE is `unet2d`
//! (batch 8, 256²) or `unet3d` (batch 2, 96³); without one, each case runs in a process of its
//! own (this binary again) so each peak-memory figure is that case's alone. Prints the
//! network's parameter count, every timed step, the median, and the process's peak resident
//! memory (VmHWM from /proc/self/status) as one `RESULT` line for scripts/bench-train-step,
//! which runs the same networks in PyTorch (scripts/bench_train_step.py).
//!
//! Both networks: `unet` with depth 4 (four poolings: five resolution levels, four down and four
//! up), base 32 channels doubling up to 320, two 3×3(×3) convolutions per block without bias,
//! instance norm (affine, eps 1e-5), leaky ReLU 0.01, max pooling 2, transposed convolutions
//! (kernel = stride = 2, bias) up, skips concatenated, a 1×1 head; 1 input channel, 3 classes.
//! Loss `dice_ce` (soft Dice without background per image + cross-entropy, weights 1 and 1),
//! Adam (lr 1e-3, PyTorch's betas and eps), random inputs in [-1, 1) and random labels.

use std::time::Instant;

use burn::module::Module;
use burn::tensor::{Distribution, Int, Tensor};
use medas_nn::optim::GradientsParams;
use medas_nn::{ComputeDevice, LossConfig, NetworkConfig, NetworkOutput, OptimizerConfig, Target};

struct Case {
    name: &'static str,
    network: &'static str,
    /// `[batch, channels, D, H, W]` (D = 1 in 2-D).
    input: [usize; 5],
    steps: usize,
    warmup: usize,
}

const CLASSES: usize = 3;

const CASES: [Case; 2] = [
    Case {
        name: "unet2d",
        network: r#"{"name": "unet", "spatial": "2d", "depth": 4, "base_channels": 32, "max_channels": 320,
                     "in_channels": 1, "classes": 3, "norm": "instance", "activation": "leaky_relu"}"#,
        input: [8, 1, 1, 256, 256],
        steps: 5,
        warmup: 1,
    },
    Case {
        name: "unet3d",
        network: r#"{"name": "unet", "spatial": "3d", "depth": 4, "base_channels": 32, "max_channels": 320,
                     "in_channels": 1, "classes": 3, "norm": "instance", "activation": "leaky_relu"}"#,
        input: [2, 1, 96, 96, 96],
        steps: 3,
        warmup: 1,
    },
];

/// A field of /proc/self/status in MiB (kB there); NaN where it cannot be read (not Linux).
fn status_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.trim_start_matches(':').trim().strip_suffix("kB")?.trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// CPU seconds (user + system, all threads) this process has used so far, from
/// /proc/self/stat (clock ticks of 1/100 s, Linux's USER_HZ); NaN where it cannot be read.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name in parentheses: state is field 3, utime 14, stime 15.
    let fields: Vec<&str> = stat.rsplit_once(')').map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let tick = |i: usize| fields.get(i - 3).and_then(|f| f.parse::<f64>().ok());
    tick(14).zip(tick(15)).map_or(f64::NAN, |(user, system)| (user + system) / 100.0)
}

/// Runs `warmup + steps` training steps; returns the timed steps' wall and CPU seconds.
fn run_case(case: &Case, steps: usize, warmup: usize) -> (usize, Vec<(f64, f64)>) {
    let device = ComputeDevice::Cpu.training();
    let config = NetworkConfig::from_json(case.network).expect("a valid network config");
    let mut network = config.build_seeded(&device, 1).expect("the network builds");
    let params = network.num_params();
    let loss = LossConfig::from_json(r#"{"name": "dice_ce"}"#).unwrap().build(CLASSES).unwrap();
    let mut optimizer = OptimizerConfig::from_json(r#"{"name": "adam"}"#).unwrap().init().unwrap();
    device.seed(7);
    let x = Tensor::<5>::random(case.input, Distribution::Uniform(-1.0, 1.0), &device);
    let [b, _, d, h, w] = case.input;
    let y = Tensor::<5, Int>::random([b, 1, d, h, w], Distribution::Uniform(0.0, CLASSES as f64), &device);
    let target = Target::Classes(y);
    let mut times = Vec::with_capacity(steps);
    for step in 0..warmup + steps {
        let (start, cpu_start) = (Instant::now(), cpu_seconds());
        let NetworkOutput::Segmentation(out) = network.forward(x.clone()).expect("input fits") else {
            unreachable!("a U-Net segments")
        };
        let value = loss.forward(out.logits, &target).expect("shapes match");
        let scalar = value.clone().into_scalar::<f64>();
        let grads = GradientsParams::from_grads(value.backward(), &network);
        network = optimizer.step(1e-3, network, grads);
        let (seconds, cpu) = (start.elapsed().as_secs_f64(), cpu_seconds() - cpu_start);
        println!("{} step {step}: {seconds:.3} s (CPU {cpu:.2} s), loss {scalar:.4}{}", case.name, if step < warmup { " (warm-up)" } else { "" });
        if step >= warmup {
            times.push((seconds, cpu));
        }
    }
    (params, times)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn bench(case: &Case, steps: usize, warmup: usize) {
    let start_mib = status_mib("VmRSS");
    let (params, times) = run_case(case, steps, warmup);
    let peak_mib = status_mib("VmHWM");
    let threads = rayon::current_num_threads();
    let list = |values: Vec<f64>| values.iter().map(|t| format!("{t:.3}")).collect::<Vec<_>>().join(",");
    let (wall, cpu): (Vec<f64>, Vec<f64>) = times.into_iter().unzip();
    println!(
        "RESULT {} params={params} median_s={:.3} steps={} cpu={} warmup={warmup} peak_mib={peak_mib:.0} start_mib={start_mib:.0} threads={threads}",
        case.name,
        median(wall.clone()),
        list(wall),
        list(cpu)
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let only = args.first().cloned().unwrap_or_default();
    let steps = args.get(1).and_then(|a| a.parse().ok());
    let warmup = args.get(2).and_then(|a| a.parse().ok());
    if let Some(case) = CASES.iter().find(|c| c.name == only) {
        let steps = steps.unwrap_or(case.steps).max(1);
        bench(case, steps, warmup.unwrap_or(case.warmup));
        return;
    }
    if !only.is_empty() {
        eprintln!("unknown case {only:?}; cases: unet2d, unet3d");
        std::process::exit(2);
    }
    // One process per case: VmHWM is a process's peak, so cases must not share one.
    let me = std::env::current_exe().expect("the bench binary's path");
    for case in &CASES {
        let status = std::process::Command::new(&me).arg(case.name).status().expect("the bench binary runs");
        assert!(status.success(), "{} failed: {status}", case.name);
    }
}

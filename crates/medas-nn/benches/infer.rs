//! Sliding-window inference of a 3-D U-Net (base 16 channels, depth 3) over a 128³ volume in
//! 64³ windows (overlap 0.5: 27 windows), against the network's plain forward on one window, so
//! the stitching's own cost (window copies, activation, blending, accumulation) shows as the
//! difference; and the stitching alone, with a 1x1 convolution in place of the network. Run: `cargo bench -p medas-nn --bench infer --profile dev`.

use std::time::{Duration, Instant};

use burn::tensor::{Distribution, Tensor};
use burn::tensor::module::conv3d;
use burn::tensor::ops::ConvOptions;
use medas_nn::infer::{self, Blend, Flips, InferError, SlidingWindowConfig, WindowModel};
use medas_nn::{ComputeDevice, Network, NetworkConfig};

const NETWORK: &str = r#"{"name": "unet", "spatial": "3d", "depth": 3, "base_channels": 16, "classes": 2}"#;

fn median_and_min(mut times: Vec<Duration>) -> (f64, f64) {
    times.sort();
    (times[times.len() / 2].as_secs_f64(), times[0].as_secs_f64())
}

fn time_runs(runs: usize, mut run: impl FnMut()) -> (f64, f64) {
    run(); // warm-up
    median_and_min(
        (0..runs)
            .map(|_| {
                let start = Instant::now();
                run();
                start.elapsed()
            })
            .collect(),
    )
}

fn predict(net: &Network, volume: &Tensor<5>, config: &SlidingWindowConfig) {
    let probabilities = infer::predict(net, volume.clone(), config, |_| true).expect("valid config");
    std::hint::black_box(probabilities.into_data());
}

fn main() {
    let device = ComputeDevice::Cpu.inference();
    let net = NetworkConfig::from_json(NETWORK).unwrap().build_seeded(&device, 1).unwrap();
    let volume = Tensor::<5>::random([1, 1, 128, 128, 128], Distribution::Normal(0.0, 1.0), &device);
    let window = volume.clone().slice([0..1, 0..1, 0..64, 0..64, 0..64]);
    println!("network: {NETWORK}; volume 1x1x128³, windows 64³, overlap 0.5 (27 windows)");

    let (median, min) = time_runs(3, || {
        let out = match net.forward(window.clone()).unwrap() {
            medas_nn::NetworkOutput::Segmentation(s) => s.logits,
            medas_nn::NetworkOutput::Classes(_) => unreachable!("a U-Net"),
        };
        std::hint::black_box(out.into_data());
    });
    println!("| one 64³ forward | - | {:.2} ({:.2}) | 27 x = {:.1} ({:.1}) |", median, min, 27.0 * median, 27.0 * min);

    let config = SlidingWindowConfig::new([64; 3]);
    let start = Instant::now();
    predict(&net, &volume, &config);
    println!("| U-Net, sliding window, gaussian, batch 1 (one run) | 27 | {:.2} | - |", start.elapsed().as_secs_f64());

    // The stitching alone: the same windows through a 1x1 convolution (almost free).
    let pointwise = Pointwise {
        weight: Tensor::random([2, 1, 1, 1, 1], Distribution::Normal(0.0, 1.0), &device),
    };
    let cases = [
        ("gaussian, batch 1", config.clone()),
        ("gaussian, batch 3", SlidingWindowConfig { batch_size: 3, ..config.clone() }),
        ("constant, batch 1", SlidingWindowConfig { blend: Blend::Constant, ..config.clone() }),
        ("gaussian, 8 flips", SlidingWindowConfig { flips: Flips::All, ..config.clone() }),
    ];
    for (name, config) in cases {
        let (median, min) = time_runs(3, || {
            let out = infer::predict_with(&pointwise, volume.clone(), &config, |_| true).expect("valid config");
            std::hint::black_box(out.into_data());
        });
        println!("| 1x1 convolution (stitching cost), {name} | 27 | {median:.2} ({min:.2}) | - |");
    }
}

/// A 1x1x1 convolution to 2 classes: a model whose forward costs next to nothing.
struct Pointwise {
    weight: Tensor<5>,
}

impl WindowModel for Pointwise {
    fn size_multiple(&self) -> usize {
        1
    }

    fn check_window(&self, _: [usize; 5]) -> Result<(), InferError> {
        Ok(())
    }

    fn logits(&self, windows: Tensor<5>) -> Result<Tensor<5>, InferError> {
        Ok(conv3d(windows, self.weight.clone(), None, ConvOptions::new([1; 3], [0; 3], [1; 3], 1)))
    }
}

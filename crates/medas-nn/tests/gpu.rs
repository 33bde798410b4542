//! The GPU device (feature `gpu`) against the CPU device: our operators (convolution, 3-D
//! pooling, trilinear interpolation) forward and backward, and U-Net training steps.
//!
//! Each test opens the wgpu adapter and skips, printing why, when there is none (no Vulkan
//! driver). `MEDAS_REQUIRE_GPU=1` (set by scripts/test-gpu) turns a missing adapter into a
//! failure. Run with `scripts/test-gpu`; on a machine without a GPU it uses Mesa's lavapipe.
//!
//! Tolerances: both devices compute in f32 but sum in different orders (GPU reductions are
//! tiled), so results are compared by the largest absolute difference relative to the largest
//! magnitude of the CPU result: 1e-4 for single operators, 1e-3 for losses after training steps
//! (differences compound through Adam's normalised updates).
#![cfg(feature = "gpu")]

use burn::module::Module;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Int, Tensor, TensorData};
use medas_nn::ops::{AvgPool3dConfig, Interpolate3dConfig, Interpolate3dMode, MaxPool3dConfig};
use medas_nn::optim::GradientsParams;
use medas_nn::{ComputeDevice, LossConfig, NetworkConfig, NetworkOutput, OptimizerConfig, Target};

const OP_TOLERANCE: f32 = 1e-4;
const STEP_TOLERANCE: f32 = 1e-3;

/// The GPU training device, or `None` (after saying why) when this machine has no adapter.
fn gpu_training() -> Option<Device> {
    match ComputeDevice::Gpu(None).open_training() {
        Ok(device) => Some(device),
        Err(error) if std::env::var_os("MEDAS_REQUIRE_GPU").is_some() => {
            panic!("MEDAS_REQUIRE_GPU is set but {error}")
        }
        Err(error) => {
            eprintln!("skipped: {error}");
            None
        }
    }
}

/// Deterministic values in [-1, 1) (a linear congruential generator), the same on every run.
fn values(seed: u64, n: usize) -> Vec<f32> {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn tensor<const D: usize>(seed: u64, shape: [usize; D], device: &Device) -> Tensor<D> {
    let n = shape.iter().product();
    Tensor::from_data(TensorData::new(values(seed, n), shape), device)
}

fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec().unwrap()
}

/// Asserts `gpu` matches `cpu` within `tolerance` times the largest CPU magnitude.
fn assert_close(what: &str, cpu: &[f32], gpu: &[f32], tolerance: f32) {
    assert_eq!(cpu.len(), gpu.len(), "{what}: lengths");
    let scale = cpu.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    let worst = cpu.iter().zip(gpu).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    eprintln!("{what}: max |gpu - cpu| = {worst:.3e} (scale {scale:.3e}, tolerance {tolerance:.0e} x scale)");
    assert!(worst <= tolerance * scale, "{what}: max difference {worst} > {tolerance} x {scale}");
}

/// `op` on both devices, with the input (and any extra parameters) requiring gradients; compares
/// the outputs and the gradients of `sum(output * r)` for a fixed random `r`.
fn compare_op<const D: usize, const E: usize>(
    what: &str,
    gpu: &Device,
    x_shape: [usize; D],
    extra_shapes: &[[usize; E]],
    op: impl Fn(Tensor<D>, Vec<Tensor<E>>) -> Tensor<D>,
) {
    let run = |device: &Device| {
        let x = tensor(1, x_shape, device).require_grad();
        let extra: Vec<Tensor<E>> =
            extra_shapes.iter().enumerate().map(|(i, s)| tensor(10 + i as u64, *s, device).require_grad()).collect();
        let y = op(x.clone(), extra.clone());
        let r = tensor(99, y.dims(), device);
        let grads = (y.clone() * r).sum().backward();
        let mut out = vec![to_vec(y), to_vec(x.grad(&grads).expect("input gradient"))];
        out.extend(extra.iter().map(|p| to_vec(p.grad(&grads).expect("parameter gradient"))));
        out
    };
    let (cpu, on_gpu) = (run(&ComputeDevice::Cpu.training()), run(gpu));
    for (i, (a, b)) in cpu.iter().zip(&on_gpu).enumerate() {
        let part = match i {
            0 => "output".to_string(),
            1 => "d/dx".to_string(),
            n => format!("d/dparam{}", n - 2),
        };
        assert_close(&format!("{what} {part}"), a, b, OP_TOLERANCE);
    }
}

#[test]
fn convolutions_match_the_cpu_forward_and_backward() {
    let Some(gpu) = gpu_training() else { return };
    compare_op("conv3d k3 pad 1", &gpu, [2, 3, 6, 7, 5], &[[4, 3, 3, 3, 3]], |x, p| {
        let options = ConvOptions::new([1, 1, 1], [1, 1, 1], [1, 1, 1], 1);
        medas_nn::conv::conv3d(x, p[0].clone(), None, &options).unwrap()
    });
    compare_op("conv3d k2 stride 2 dilation 1", &gpu, [1, 2, 8, 6, 4], &[[3, 2, 2, 2, 2]], |x, p| {
        let options = ConvOptions::new([2, 2, 2], [0, 0, 0], [1, 1, 1], 1);
        medas_nn::conv::conv3d(x, p[0].clone(), None, &options).unwrap()
    });
    compare_op("conv2d k3 pad 1 dilation 2", &gpu, [2, 3, 9, 11], &[[5, 3, 3, 3]], |x, p| {
        let options = ConvOptions::new([1, 1], [2, 2], [2, 2], 1);
        medas_nn::conv::conv2d(x, p[0].clone(), None, &options).unwrap()
    });
    // Bias: its gradient is compared through a 1-D parameter of its own.
    let run_biased = |device: &Device| {
        let x = tensor(1, [1, 2, 5, 5, 5], device);
        let w = tensor(2, [3, 2, 3, 3, 3], device);
        let b = tensor(3, [3], device).require_grad();
        let options = ConvOptions::new([1, 1, 1], [1, 1, 1], [1, 1, 1], 1);
        let y = medas_nn::conv::conv3d(x, w, Some(b.clone()), &options).unwrap();
        let grads = (y.clone() * tensor(99, y.dims(), device)).sum().backward();
        (to_vec(y), to_vec(b.grad(&grads).unwrap()))
    };
    let (cpu, on_gpu) = (run_biased(&ComputeDevice::Cpu.training()), run_biased(&gpu));
    assert_close("conv3d with bias output", &cpu.0, &on_gpu.0, OP_TOLERANCE);
    assert_close("conv3d d/dbias", &cpu.1, &on_gpu.1, OP_TOLERANCE);
}

#[test]
fn pooling_and_interpolation_match_the_cpu_forward_and_backward() {
    let Some(gpu) = gpu_training() else { return };
    let none: &[[usize; 5]] = &[];
    let max = MaxPool3dConfig::new([3, 3, 2]).with_stride([2, 2, 2]).with_padding([1, 1, 0]);
    compare_op("max_pool3d", &gpu, [2, 3, 7, 8, 6], none, |x, _| medas_nn::ops::max_pool3d(x, &max).unwrap());
    for include in [true, false] {
        let avg = AvgPool3dConfig::new([2, 3, 3]).with_padding([1, 1, 1]).with_count_include_pad(include);
        compare_op(&format!("avg_pool3d include_pad={include}"), &gpu, [1, 2, 6, 7, 5], none, |x, _| {
            medas_nn::ops::avg_pool3d(x, &avg).unwrap()
        });
    }
    for (mode, align) in [(Interpolate3dMode::Trilinear, false), (Interpolate3dMode::Trilinear, true), (Interpolate3dMode::Nearest, false)] {
        let resize = Interpolate3dConfig::size([9, 4, 10], mode, align);
        compare_op(&format!("interpolate3d {mode:?} align_corners={align}"), &gpu, [1, 2, 5, 6, 4], none, |x, _| {
            medas_nn::ops::interpolate3d(x, &resize).unwrap()
        });
    }
}

/// Losses of `steps` Adam steps of `json` (Dice + CE) from the same initial weights on `device`.
fn training_losses(json: &str, device: &Device, steps: usize) -> Vec<f32> {
    // Weights are drawn on the CPU and moved, so both devices start from the same network.
    let cpu = ComputeDevice::Cpu.training();
    let mut net = NetworkConfig::from_json(json).unwrap().build_seeded(&cpu, 5).unwrap().to_device(device);
    let [n, size] = [2, 16];
    let image = tensor(7, [n, 1, 1, size, size], device);
    let labels: Vec<i64> = values(8, n * size * size).iter().map(|v| (*v > 0.0) as i64).collect();
    let label = Tensor::<5, Int>::from_data(TensorData::new(labels, [n, 1, 1, size, size]), device);
    let loss = LossConfig::from_json(r#"{"name": "dice_ce"}"#).unwrap().build(2).unwrap();
    let mut optim = OptimizerConfig::from_json(r#"{"name": "adam"}"#).unwrap().init().unwrap();
    let target = Target::Classes(label);
    let mut losses = Vec::new();
    for _ in 0..steps {
        let NetworkOutput::Segmentation(out) = net.forward(image.clone()).unwrap() else { panic!("not segmentation") };
        let value = loss.forward(out.logits, &target).unwrap();
        losses.push(value.clone().into_scalar::<f32>());
        let grads = GradientsParams::from_grads(value.backward(), &net);
        net = optim.step(1e-2, net, grads);
    }
    losses
}

#[test]
fn unet_training_steps_match_the_cpu() {
    let Some(gpu) = gpu_training() else { return };
    for json in [
        r#"{"name": "unet", "spatial": "2d", "depth": 2, "base_channels": 4}"#,
        r#"{"name": "vnet", "spatial": "2d", "depth": 2, "base_channels": 4, "kernel": 3}"#,
    ] {
        let cpu = training_losses(json, &ComputeDevice::Cpu.training(), 3);
        let on_gpu = training_losses(json, &gpu, 3);
        eprintln!("{json}: cpu losses {cpu:?}, gpu losses {on_gpu:?}");
        assert!(cpu[2] < cpu[0], "{json}: the CPU run learns");
        assert_close(&format!("{json} losses"), &cpu, &on_gpu, STEP_TOLERANCE);
    }
}

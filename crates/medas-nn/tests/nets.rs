//! Networks by name: shapes in 2-D and 3-D, parameter counts against the layer arithmetic
//! written out here (PyTorch's counting: weights, biases, normalisation scale and shift), clear
//! errors for bad configs and inputs, and small training runs that must learn a toy task.

use burn::module::Module;
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use medas_nn::optim::GradientsParams;
use medas_nn::{ComputeDevice, LossConfig, Network, NetworkConfig, NetworkOutput, OptimizerConfig, Target};

fn build(json: &str, device: &Device) -> Network {
    NetworkConfig::from_json(json).unwrap_or_else(|e| panic!("{json}: {e}")).build(device).unwrap_or_else(|e| panic!("{json}: {e}"))
}

fn segmentation(output: NetworkOutput) -> medas_nn::SegmentationOutput {
    match output {
        NetworkOutput::Segmentation(s) => s,
        NetworkOutput::Classes(_) => panic!("a segmentation network gave class logits"),
    }
}

fn random(shape: [usize; 5], device: &Device) -> Tensor<5> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
}

#[test]
fn every_segmentation_network_keeps_the_input_size_in_2d_and_3d() {
    let device = ComputeDevice::Cpu.inference();
    for name in ["unet", "res_unet", "dense_unet", "dp_unet", "vnet", "fcn"] {
        let kernel = if name == "vnet" { r#", "kernel": 3"# } else { "" };
        for (spatial, shape) in [("2d", [2, 3, 1, 16, 24]), ("3d", [1, 3, 8, 16, 8])] {
            let json = format!(r#"{{"name": "{name}", "spatial": "{spatial}", "in_channels": 3, "classes": 4, "depth": 2, "base_channels": 4{kernel}}}"#);
            let net = build(&json, &device);
            assert_eq!(net.size_multiple(), 4, "{json}");
            let out = segmentation(net.forward(random(shape, &device)).unwrap());
            assert_eq!(out.logits.dims(), [shape[0], 4, shape[2], shape[3], shape[4]], "{json}");
        }
    }
}

#[test]
fn deep_supervision_gives_the_coarser_levels_finest_first() {
    let device = ComputeDevice::Cpu.inference();
    let net = build(r#"{"name": "unet", "spatial": "3d", "depth": 3, "base_channels": 2, "deep_supervision": true}"#, &device);
    let out = segmentation(net.forward(random([1, 1, 16, 16, 16], &device)).unwrap());
    assert_eq!(out.logits.dims(), [1, 2, 16, 16, 16]);
    let deep: Vec<[usize; 5]> = out.deep.iter().map(|t| t.dims()).collect();
    assert_eq!(deep, [[1, 2, 8, 8, 8], [1, 2, 4, 4, 4]]);
}

#[test]
fn classifiers_give_one_logit_per_class() {
    let device = ComputeDevice::Cpu.inference();
    for json in [
        r#"{"name": "classifier", "spatial": "3d", "classes": 3, "depth": 2, "base_channels": 4, "dropout": 0.2}"#,
        r#"{"name": "dpn", "spatial": "3d", "classes": 3, "depth": 2, "base_channels": 4}"#,
        r#"{"name": "classifier", "spatial": "2d", "classes": 3, "depth": 3, "base_channels": 4}"#,
    ] {
        let net = build(json, &device);
        let depth = if json.contains("2d") { 1 } else { 8 };
        let NetworkOutput::Classes(logits) = net.forward(random([5, 1, depth, 16, 16], &device)).unwrap() else { panic!("{json}: not a classifier") };
        assert_eq!(logits.dims(), [5, 3], "{json}");
    }
}

/// A 2-D U-Net's parameters, layer by layer (kernel k, channels c_l = base * 2^l, instance
/// normalisation with scale and shift, no bias before a normalisation).
fn unet_parameters(in_channels: usize, classes: usize, depth: usize, base: usize, k: usize) -> usize {
    let conv = |i: usize, o: usize| i * o * k * k;
    let norm = |c: usize| 2 * c;
    let block = |i: usize, o: usize| conv(i, o) + norm(o) + conv(o, o) + norm(o);
    let c = |l: usize| base << l;
    let encoder: usize = (0..=depth).map(|l| block(if l == 0 { in_channels } else { c(l - 1) }, c(l))).sum();
    let decoder: usize = (0..depth).map(|l| (c(l + 1) * c(l) * 4 + c(l)) + block(2 * c(l), c(l))).sum();
    encoder + decoder + c(0) * classes + classes
}

#[test]
fn unet_parameter_count_follows_the_layer_arithmetic() {
    let device = ComputeDevice::Cpu.inference();
    // The last is the issue's benchmark network (4 poolings, 32 base channels, 512 at the bottom).
    for (depth, base) in [(1, 4), (3, 8), (4, 32)] {
        let json = format!(r#"{{"name": "unet", "spatial": "2d", "classes": 2, "depth": {depth}, "base_channels": {base}, "max_channels": 512}}"#);
        let expected = unet_parameters(1, 2, depth, base, 3);
        assert_eq!(build(&json, &device).num_params(), expected, "{json}");
    }
    // nnU-Net's cap: with the default max_channels 320 the bottom level has 320 channels, not 512.
    let capped = build(r#"{"name": "unet", "spatial": "2d", "depth": 4, "base_channels": 32}"#, &device).num_params();
    let bottom_512 = 512 * 256 * 9 + 2 * 512 + 512 * 512 * 9 + 2 * 512 + 512 * 256 * 4 + 256;
    let bottom_320 = 320 * 256 * 9 + 2 * 320 + 320 * 320 * 9 + 2 * 320 + 320 * 256 * 4 + 256;
    assert_eq!(capped, unet_parameters(1, 2, 4, 32, 3) - bottom_512 + bottom_320);
}

#[test]
fn bad_configs_and_inputs_are_refused_with_the_reason() {
    let device = ComputeDevice::Cpu.inference();
    let error = |json: &str| match NetworkConfig::from_json(json) {
        Ok(config) => config.build(&device).map(|_| ()).unwrap_err().to_string(),
        Err(e) => e.to_string(),
    };
    assert!(error(r#"{"name": "transformer"}"#).starts_with("network config: unknown variant `transformer`"), "{}", error(r#"{"name": "transformer"}"#));
    assert!(error(r#"{"name": "unet", "base": 4}"#).starts_with("network config: unknown field `base`"), "{}", error(r#"{"name": "unet", "base": 4}"#));
    assert_eq!(error(r#"{"name": "unet", "classes": 0}"#), "unet: classes must be at least 1, got 0");
    assert_eq!(error(r#"{"name": "res_unet", "kernel": 4}"#), "res_unet: kernel must be odd (same-size convolutions), got 4");
    assert_eq!(error(r#"{"name": "unet", "dropout": 1.0}"#), "unet: dropout must be in [0, 1), got 1");
    assert_eq!(
        error(r#"{"name": "unet", "norm": "group", "norm_groups": 3, "base_channels": 8}"#),
        "group normalisation: 8 channels do not split into 3 groups"
    );
    let net = build(r#"{"name": "unet", "spatial": "2d", "depth": 2, "base_channels": 2}"#, &device);
    let refused = net.forward(random([1, 1, 1, 18, 16], &device)).unwrap_err().to_string();
    assert_eq!(refused, "unet expects input (N, 1, 1, H, W) with H and W multiples of 4; got [1, 1, 1, 18, 16]");
    let refused = net.forward(random([1, 2, 1, 16, 16], &device)).unwrap_err().to_string();
    assert!(refused.contains("got [1, 2, 1, 16, 16]"), "{refused}");
}

/// Eight 32×32 images of bright discs in noise and their masks.
fn discs(device: &Device) -> (Tensor<5>, Tensor<5, Int>) {
    let (n, size) = (8usize, 32usize);
    let mut image = vec![0f32; n * size * size];
    let mut label = vec![0i64; n * size * size];
    for b in 0..n {
        let (cx, cy, r) = (8.0 + 2.0 * b as f32, 20.0 - b as f32, 5.0 + (b % 3) as f32);
        for y in 0..size {
            for x in 0..size {
                let inside = (x as f32 - cx).powi(2) + (y as f32 - cy).powi(2) <= r * r;
                let at = (b * size + y) * size + x;
                let noise = ((at * 7919) % 101) as f32 / 101.0 - 0.5;
                image[at] = if inside { 1.0 } else { 0.0 } + 0.3 * noise;
                label[at] = inside as i64;
            }
        }
    }
    let image = Tensor::from_data(TensorData::new(image, [n, 1, 1, size, size]), device);
    let label = Tensor::from_data(TensorData::new(label, [n, 1, 1, size, size]), device);
    (image, label)
}

/// Trains `json` on the discs with Dice + CE and Adam; the losses of every step.
fn train_on_discs(json: &str, steps: usize, seed: u64) -> (Vec<f64>, f64) {
    let device = ComputeDevice::Cpu.training();
    let mut net = NetworkConfig::from_json(json).unwrap().build_seeded(&device, seed).unwrap();
    let (image, label) = discs(&device);
    let loss = LossConfig::from_json(r#"{"name": "dice_ce"}"#).unwrap().build(2).unwrap();
    let mut optim = OptimizerConfig::from_json(r#"{"name": "adam"}"#).unwrap().init().unwrap();
    let target = Target::Classes(label.clone());
    let mut losses = Vec::new();
    for _ in 0..steps {
        let logits = segmentation(net.forward(image.clone()).unwrap()).logits;
        let value = loss.forward(logits, &target).unwrap();
        losses.push(value.clone().into_scalar::<f64>());
        let grads = GradientsParams::from_grads(value.backward(), &net);
        net = optim.step(1e-2, net, grads);
    }
    // Dice of the arg-max prediction with the masks.
    let logits = segmentation(net.forward(image).unwrap()).logits;
    let predicted = logits.argmax(1).equal_elem(1).int();
    let truth = label.equal_elem(1).int();
    let overlap: i64 = (predicted.clone() * truth.clone()).sum().into_scalar();
    let total: i64 = predicted.sum().into_scalar::<i64>() + truth.sum().into_scalar::<i64>();
    (losses, 2.0 * overlap as f64 / total as f64)
}

#[test]
fn a_2d_unet_learns_to_segment_discs_and_the_same_seed_gives_the_same_curve() {
    let json = r#"{"name": "unet", "spatial": "2d", "depth": 2, "base_channels": 8}"#;
    let (losses, dice) = train_on_discs(json, 40, 7);
    eprintln!("unet on discs: loss {:.3} -> {:.3}, Dice {dice:.3}", losses[0], losses[losses.len() - 1]);
    assert!(dice >= 0.9, "Dice {dice} after 40 steps");
    let (again, _) = train_on_discs(json, 5, 7);
    assert_eq!(again, losses[..5], "same seed, same losses");
    let (other, _) = train_on_discs(json, 1, 8);
    assert_ne!(other[0], losses[0], "another seed, other weights");
}

#[test]
fn a_3d_network_trains_through_pooling_and_transposed_convolutions() {
    // Gradients reach the first convolution through max pooling (ours) and up-sampling.
    let device = ComputeDevice::Cpu.training();
    device.seed(3);
    let net = build(r#"{"name": "unet", "spatial": "3d", "depth": 1, "base_channels": 2, "convs_per_block": 1}"#, &device);
    let x = random([1, 1, 4, 4, 4], &device);
    let logits = segmentation(net.forward(x).unwrap()).logits;
    let grads = logits.powi_scalar(2).sum().backward();
    let mut first = FirstGradient { grads: &grads, magnitude: None };
    net.visit(&mut first);
    let magnitude = first.magnitude.expect("the first convolution weight has a gradient");
    assert!(magnitude > 0.0, "gradient magnitude {magnitude}");
}

/// The summed |gradient| of the first 5-D (convolution) weight visited.
struct FirstGradient<'a> {
    grads: &'a burn::tensor::Gradients,
    magnitude: Option<f64>,
}

impl burn::module::ModuleVisitor for FirstGradient<'_> {
    fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
        if D == 5 && self.magnitude.is_none() {
            self.magnitude = param.val().grad(self.grads).map(|g| g.abs().sum().into_scalar::<f64>());
        }
    }
}

/// Every float parameter's shape and values, in visiting order.
struct Values(Vec<(Vec<usize>, Vec<f32>)>);

impl burn::module::ModuleVisitor for Values {
    fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
        let value = param.val();
        self.0.push((value.dims().to_vec(), value.into_data().convert::<f32>().try_into_vec::<f32>().unwrap()));
    }
}

fn values(net: &Network) -> Vec<(Vec<usize>, Vec<f32>)> {
    let mut collected = Values(Vec::new());
    net.visit(&mut collected);
    collected.0
}

#[test]
fn seeded_weights_depend_on_the_seed_alone_and_follow_the_default_distribution() {
    let device = ComputeDevice::Cpu.inference();
    let config = NetworkConfig::from_json(r#"{"name": "unet", "spatial": "3d", "depth": 2, "base_channels": 16}"#).unwrap();
    let first = values(&config.build_seeded(&device, 11).unwrap());
    // Random draws in between must not matter.
    let _ = Tensor::<1>::random([1000], Distribution::Default, &device);
    assert_eq!(values(&config.build_seeded(&device, 11).unwrap()), first);
    assert_ne!(values(&config.build_seeded(&device, 12).unwrap()), first);
    let mut checked = 0;
    for (shape, v) in &first {
        if shape.len() == 5 && shape[1] == 32 && shape[2] == 3 {
            checked += 1;
            // Conv 32 -> 32, 3x3x3: fan_in 864, uniform(-b, b) with b = 1/sqrt(864): std b/sqrt(3).
            let bound = 1.0 / 864f64.sqrt();
            assert!(v.iter().all(|x| (x.abs() as f64) <= bound), "{shape:?} outside ±{bound}");
            let std = (v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
            assert!((std / (bound / 3f64.sqrt()) - 1.0).abs() < 0.02, "{shape:?}: std {std} (tolerance 2%)");
        }
    }
    assert!(checked >= 2, "{checked} layers of fan-in 864");
    let norm_scales = first.iter().filter(|(s, v)| s.len() == 1 && v.iter().all(|x| *x == 1.0)).count();
    assert!(norm_scales >= 10, "instance-norm scales keep their constant 1 ({norm_scales})");
}

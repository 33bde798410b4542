//! Schedules against their closed forms; configs from JSON and their errors; every optimizer
//! config trains a small model.

use burn::module::Initializer;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::{Int, Tensor, TensorData};

use super::*;
use crate::ComputeDevice;
use crate::loss::{LossConfig, Target};

/// The schedule's arithmetic follows the formulas term by term; only rounding differs.
const LR_TOLERANCE: f64 = 1e-15;

fn schedule(json: &str) -> ScheduleConfig {
    ScheduleConfig::from_json(json).unwrap()
}

fn assert_lr(config: &ScheduleConfig, iteration: usize, expected: f64) {
    let actual = config.lr_at(iteration);
    assert!(
        (actual - expected).abs() <= LR_TOLERANCE,
        "iteration {iteration}: {actual} vs {expected}"
    );
}

#[test]
fn cosine_is_max_at_start_midpoint_halfway_and_min_at_the_end() {
    let cosine = schedule(
        r#"{"learning_rate": 0.1, "total_iterations": 100, "decay": {"name": "cosine", "min_lr": 0.02}}"#,
    );
    assert_lr(&cosine, 0, 0.1);
    assert_lr(&cosine, 50, (0.1 + 0.02) / 2.0);
    assert_lr(&cosine, 25, 0.02 + 0.08 * (1.0 + (PI / 4.0).cos()) / 2.0);
    assert_lr(&cosine, 100, 0.02);
    assert_lr(&cosine, 150, 0.02);
}

#[test]
fn poly_follows_nnunet() {
    // nnU-Net's PolyLRScheduler: initial_lr * (1 - step / max_steps) ** 0.9.
    let poly =
        schedule(r#"{"learning_rate": 0.01, "total_iterations": 1000, "decay": {"name": "poly"}}"#);
    for step in [0, 1, 250, 500, 999, 1000] {
        assert_lr(&poly, step, 0.01 * (1.0 - step as f64 / 1000.0).powf(0.9));
    }
    assert_lr(&poly, 500, 0.01 * 0.5f64.powf(0.9));
}

#[test]
fn step_decay_and_linear_warmup() {
    let step = schedule(
        r#"{"learning_rate": 1.0, "total_iterations": 100, "decay": {"name": "step", "step_size": 30, "gamma": 0.1}}"#,
    );
    for (iteration, expected) in [
        (0, 1.0),
        (29, 1.0),
        (30, 0.1),
        (59, 0.1),
        (60, 0.01),
        (95, 0.001),
    ] {
        assert_lr(&step, iteration, expected);
    }
    let warm = schedule(
        r#"{"learning_rate": 0.4, "total_iterations": 110, "warmup_iterations": 10, "warmup_start_lr": 0.0,
            "decay": {"name": "cosine"}}"#,
    );
    assert_lr(&warm, 0, 0.0);
    assert_lr(&warm, 5, 0.2);
    assert_lr(&warm, 9, 0.36);
    // The decay starts after the warm-up, over the remaining 100 iterations.
    assert_lr(&warm, 10, 0.4);
    assert_lr(&warm, 60, 0.2);
    assert_lr(&warm, 110, 0.0);
    let constant = schedule(
        r#"{"learning_rate": 3e-4, "total_iterations": 5, "warmup_iterations": 2, "warmup_start_lr": 1e-4, "decay": {"name": "constant"}}"#,
    );
    assert_lr(&constant, 1, 2e-4);
    assert_lr(&constant, 4, 3e-4);
}

#[test]
fn bad_configs_are_rejected_with_clear_messages() {
    let schedule_error = |json: &str| ScheduleConfig::from_json(json).unwrap_err().to_string();
    assert_eq!(
        schedule_error(
            r#"{"learning_rate": 0.1, "total_iterations": 10, "warmup_iterations": 10, "decay": {"name": "constant"}}"#
        ),
        "schedule: parameter `warmup_iterations` must be below total_iterations (10), got 10"
    );
    assert_eq!(
        schedule_error(
            r#"{"learning_rate": 0.1, "total_iterations": 10, "decay": {"name": "cosine", "min_lr": 0.5}}"#
        ),
        "schedule: parameter `min_lr` must lie in [0, 0.1], got 0.5"
    );
    assert_eq!(
        schedule_error(
            r#"{"learning_rate": -1, "total_iterations": 10, "decay": {"name": "poly"}}"#
        ),
        "schedule: parameter `learning_rate` must be finite and > 0, got -1"
    );
    let optimizer_error = |json: &str| {
        OptimizerConfig::from_json(json)
            .and_then(|c| c.init().map(|_| ()))
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        optimizer_error(r#"{"name": "sgd", "momentum": 1.2}"#),
        "sgd: parameter `momentum` must lie in [0, 1), got 1.2"
    );
    assert_eq!(
        optimizer_error(r#"{"name": "sgd", "nesterov": true}"#),
        "sgd: parameter `nesterov` needs momentum > 0 and dampening 0, got momentum 0 and dampening 0"
    );
    assert_eq!(
        optimizer_error(r#"{"name": "adam", "weight_decay": -0.1}"#),
        "adam: parameter `weight_decay` must be finite and >= 0, got -0.1"
    );
    assert_eq!(
        optimizer_error(r#"{"name": "adamw", "gradient_clipping": {"norm": 0.0}}"#),
        "adamw: parameter `gradient_clipping` limit must be finite and > 0, got 0"
    );
    let unknown = optimizer_error(r#"{"name": "adam", "lr": 0.1}"#);
    assert!(
        unknown.starts_with("optimizer config: unknown field `lr`"),
        "{unknown}"
    );
}

#[test]
fn adamw_json_defaults_follow_pytorch() {
    let OptimizerConfig::AdamW(params) =
        OptimizerConfig::from_json(r#"{"name": "adamw"}"#).unwrap()
    else {
        panic!("not adamw");
    };
    assert_eq!(
        (params.weight_decay, params.epsilon, params.beta_2),
        (0.01, 1e-8, 0.999)
    );
    let OptimizerConfig::Adam(params) = OptimizerConfig::from_json(r#"{"name": "adam"}"#).unwrap()
    else {
        panic!("not adam");
    };
    assert_eq!(params.weight_decay, 0.0);
}

/// A 3-class linear classifier on 12 separable points, trained with cross-entropy from zero
/// weights (deterministic; the first loss is ln 3).
fn train(optimizer: &str, schedule_json: &str, steps: usize) -> (f64, f64) {
    let device = ComputeDevice::Cpu.training();
    let model: Linear = LinearConfig::new(2, 3)
        .with_initializer(Initializer::Zeros)
        .init(&device);
    let points: Vec<f32> = (0..12)
        .flat_map(|i| {
            let angle = i as f32 / 12.0 * std::f32::consts::TAU;
            [angle.cos() * 2.0, angle.sin() * 2.0]
        })
        .collect();
    let labels: Vec<i64> = (0..12).map(|i| i / 4).collect();
    let x = Tensor::<2>::from_data(TensorData::new(points, [12, 2]), &device);
    let target = Target::Classes(Tensor::<2, Int>::from_data(
        TensorData::new(labels, [12, 1]),
        &device,
    ));
    let forward = |model: &Linear| model.forward(x.clone());
    let setup = (r#"{"name": "cross_entropy"}"#, optimizer, schedule_json);
    fit(model, forward, &target, setup, steps)
}

/// Trains `model` for `steps` iterations; the loss before the first and after the last step.
fn fit<M: burn::module::Module, const D: usize>(
    mut model: M,
    forward: impl Fn(&M) -> Tensor<D>,
    target: &Target<D>,
    (loss, optimizer, schedule_json): (&str, &str, &str),
    steps: usize,
) -> (f64, f64) {
    let classes = match target {
        Target::Classes(_) => forward(&model).dims()[1],
        Target::Masks(masks) => masks.dims()[1],
    };
    let loss = LossConfig::from_json(loss).unwrap().build(classes).unwrap();
    let mut optim = OptimizerConfig::from_json(optimizer)
        .unwrap()
        .init()
        .unwrap();
    let schedule = schedule(schedule_json);
    let mut first = None;
    for iteration in 0..steps {
        let value = loss.forward(forward(&model), target).unwrap();
        first.get_or_insert(value.clone().into_scalar::<f64>());
        let grads = GradientsParams::from_grads(value.backward(), &model);
        model = optim.step(schedule.lr_at(iteration), model, grads);
    }
    let last = loss
        .forward(forward(&model), target)
        .unwrap()
        .into_scalar::<f64>();
    (first.unwrap_or(last), last)
}

#[test]
fn every_optimizer_config_reduces_the_loss() {
    let poly = r#"{"learning_rate": 0.1, "total_iterations": 40, "warmup_iterations": 5, "decay": {"name": "poly"}}"#;
    let cosine = r#"{"learning_rate": 0.05, "total_iterations": 40, "decay": {"name": "cosine"}}"#;
    let cases = [
        (r#"{"name": "sgd"}"#, poly),
        (
            r#"{"name": "sgd", "momentum": 0.9, "nesterov": true, "weight_decay": 3e-5, "gradient_clipping": {"norm": 12.0}}"#,
            poly,
        ),
        (
            r#"{"name": "adam", "weight_decay": 1e-4, "gradient_clipping": {"value": 1.0}}"#,
            cosine,
        ),
        (r#"{"name": "adamw", "amsgrad": true}"#, cosine),
    ];
    for (optimizer, schedule) in cases {
        let (first, last) = train(optimizer, schedule, 40);
        eprintln!("{optimizer}: loss {first:.4} -> {last:.4}");
        assert!(last < 0.5 * first, "{optimizer}: loss {first} -> {last}");
    }
}

#[test]
fn a_conv_segmenter_learns_a_square_with_dice_ce() {
    // 1 -> 2 channel 3x3 convolution segmenting a bright 4x4 square in an 8x8 image.
    let device = ComputeDevice::Cpu.training();
    let model: Conv2d = Conv2dConfig::new([1, 2], [3, 3])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .with_initializer(Initializer::Zeros)
        .init(&device);
    let inside = |i: usize| (2..6).contains(&(i / 8)) && (2..6).contains(&(i % 8));
    let image: Vec<f32> = (0..64).map(|i| if inside(i) { 1.0 } else { 0.0 }).collect();
    let labels: Vec<i64> = (0..64).map(|i| i64::from(inside(i))).collect();
    let x = Tensor::<4>::from_data(TensorData::new(image, [1, 1, 8, 8]), &device);
    let target = Target::Classes(Tensor::<4, Int>::from_data(
        TensorData::new(labels, [1, 1, 8, 8]),
        &device,
    ));
    let cosine = r#"{"learning_rate": 0.1, "total_iterations": 30, "decay": {"name": "cosine"}}"#;
    let forward = |model: &Conv2d| model.forward(x.clone());
    let (first, last) = fit(
        model,
        forward,
        &target,
        (r#"{"name": "dice_ce"}"#, r#"{"name": "adam"}"#, cosine),
        30,
    );
    eprintln!("conv dice_ce: loss {first:.4} -> {last:.4}");
    assert!(last < 0.25 * first, "loss {first} -> {last}");
}

//! Optimizer and learning-rate schedule configs (serde) over Burn's optimizers.
//!
//! ```text
//! {"name": "sgd", "momentum": 0.99, "nesterov": true, "weight_decay": 3e-5,
//!  "gradient_clipping": {"norm": 12.0}}                        -> OptimizerConfig
//! {"learning_rate": 0.01, "total_iterations": 250000,
//!  "decay": {"name": "poly", "power": 0.9}}                    -> ScheduleConfig
//! ```
//! A training loop then runs `model = optimizer.step(schedule.lr_at(i), model, grads)` with
//! `optimizer = config.init()?` and `grads = GradientsParams::from_grads(loss.backward(), &model)`.

use std::f64::consts::PI;

use burn_optim::decay::WeightDecayConfig;
use burn_optim::grad_clipping::GradientClippingConfig;
use burn_optim::momentum::MomentumConfig;
use burn_optim::{AdamConfig, AdamWConfig, SgdConfig};
use serde::{Deserialize, Serialize};

pub use burn_optim::{GradientsParams, ModuleOptimizer};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TrainingConfigError {
    #[error("{what}: parameter `{param}` {message}")]
    BadParam {
        what: &'static str,
        param: &'static str,
        message: String,
    },
    #[error("{what} config: {message}")]
    Json { what: &'static str, message: String },
}

fn bad(what: &'static str, param: &'static str, message: String) -> TrainingConfigError {
    TrainingConfigError::BadParam {
        what,
        param,
        message,
    }
}

/// `lower <= value < upper` (or `<= upper` with `upper_inclusive`), finite.
fn in_range(
    what: &'static str,
    param: &'static str,
    value: f64,
    (lower, upper, upper_inclusive): (f64, f64, bool),
) -> Result<(), TrainingConfigError> {
    let below_upper = if upper_inclusive {
        value <= upper
    } else {
        value < upper
    };
    if value.is_finite() && value >= lower && below_upper {
        return Ok(());
    }
    let close = if upper_inclusive { ']' } else { ')' };
    Err(bad(
        what,
        param,
        format!("must lie in [{lower}, {upper}{close}, got {value}"),
    ))
}

fn non_negative(
    what: &'static str,
    param: &'static str,
    value: f64,
) -> Result<(), TrainingConfigError> {
    if value.is_finite() && value >= 0.0 {
        return Ok(());
    }
    Err(bad(
        what,
        param,
        format!("must be finite and >= 0, got {value}"),
    ))
}

/// Gradient clipping as Burn applies it: per parameter tensor (not PyTorch's global norm).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum GradientClip {
    /// Rescale a parameter's gradient whose L2 norm exceeds this value.
    Norm(f32),
    /// Clamp every gradient component to [-value, value].
    Value(f32),
}

impl GradientClip {
    fn checked(
        clip: Option<Self>,
        what: &'static str,
    ) -> Result<Option<GradientClippingConfig>, TrainingConfigError> {
        let Some(clip) = clip else { return Ok(None) };
        let (limit, config) = match clip {
            GradientClip::Norm(limit) => (limit, GradientClippingConfig::Norm(limit)),
            GradientClip::Value(limit) => (limit, GradientClippingConfig::Value(limit)),
        };
        if !(limit.is_finite() && limit > 0.0) {
            return Err(bad(
                what,
                "gradient_clipping",
                format!("limit must be finite and > 0, got {limit}"),
            ));
        }
        Ok(Some(config))
    }
}

/// SGD as PyTorch defines it (`dampening` 0 by default, unlike Burn's 0.1); weight decay is L2
/// added to the gradient. nnU-Net: momentum 0.99, Nesterov, weight decay 3e-5.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct SgdParams {
    pub momentum: f64,
    pub dampening: f64,
    pub nesterov: bool,
    pub weight_decay: f64,
    pub gradient_clipping: Option<GradientClip>,
}

/// Adam (weight decay as L2 on the gradient) or AdamW (decoupled weight decay).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdamParams {
    pub beta_1: f64,
    pub beta_2: f64,
    /// PyTorch's default 1e-8 (Burn's is 1e-5).
    pub epsilon: f64,
    pub weight_decay: f64,
    pub amsgrad: bool,
    pub gradient_clipping: Option<GradientClip>,
}

impl AdamParams {
    /// PyTorch's defaults; AdamW's weight decay default is 0.01 as in PyTorch.
    fn with_weight_decay(weight_decay: f64) -> Self {
        Self {
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-8,
            weight_decay,
            amsgrad: false,
            gradient_clipping: None,
        }
    }
}

impl Default for AdamParams {
    fn default() -> Self {
        Self::with_weight_decay(0.0)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum OptimizerConfig {
    Sgd(SgdParams),
    Adam(AdamParams),
    #[serde(rename = "adamw", deserialize_with = "adamw_defaults")]
    AdamW(AdamParams),
}

/// AdamW's own weight-decay default (0.01) when the JSON leaves it out.
fn adamw_defaults<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<AdamParams, D::Error> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Partial {
        beta_1: Option<f64>,
        beta_2: Option<f64>,
        epsilon: Option<f64>,
        weight_decay: Option<f64>,
        amsgrad: Option<bool>,
        gradient_clipping: Option<GradientClip>,
    }
    let partial = Partial::deserialize(deserializer)?;
    let defaults = AdamParams::with_weight_decay(0.01);
    Ok(AdamParams {
        beta_1: partial.beta_1.unwrap_or(defaults.beta_1),
        beta_2: partial.beta_2.unwrap_or(defaults.beta_2),
        epsilon: partial.epsilon.unwrap_or(defaults.epsilon),
        weight_decay: partial.weight_decay.unwrap_or(defaults.weight_decay),
        amsgrad: partial.amsgrad.unwrap_or(defaults.amsgrad),
        gradient_clipping: partial.gradient_clipping,
    })
}

impl OptimizerConfig {
    pub fn from_json(text: &str) -> Result<Self, TrainingConfigError> {
        serde_json::from_str(text).map_err(|error| TrainingConfigError::Json {
            what: "optimizer",
            message: error.to_string(),
        })
    }

    /// Validates the parameters and builds Burn's optimizer for any module.
    pub fn init(&self) -> Result<ModuleOptimizer, TrainingConfigError> {
        match self {
            OptimizerConfig::Sgd(params) => sgd(params),
            OptimizerConfig::Adam(params) => {
                let clipping = adam_checks("adam", params)?;
                let decay = (params.weight_decay > 0.0)
                    .then(|| WeightDecayConfig::new(params.weight_decay as f32));
                Ok(AdamConfig::new()
                    .with_beta_1(params.beta_1 as f32)
                    .with_beta_2(params.beta_2 as f32)
                    .with_epsilon(params.epsilon as f32)
                    .with_amsgrad(params.amsgrad)
                    .with_weight_decay(decay)
                    .with_grad_clipping(clipping)
                    .init())
            }
            OptimizerConfig::AdamW(params) => {
                let clipping = adam_checks("adamw", params)?;
                Ok(AdamWConfig::new()
                    .with_beta_1(params.beta_1 as f32)
                    .with_beta_2(params.beta_2 as f32)
                    .with_epsilon(params.epsilon as f32)
                    .with_amsgrad(params.amsgrad)
                    .with_weight_decay(params.weight_decay as f32)
                    .with_grad_clipping(clipping)
                    .init())
            }
        }
    }
}

fn sgd(params: &SgdParams) -> Result<ModuleOptimizer, TrainingConfigError> {
    const WHAT: &str = "sgd";
    in_range(WHAT, "momentum", params.momentum, (0.0, 1.0, false))?;
    in_range(WHAT, "dampening", params.dampening, (0.0, 1.0, true))?;
    non_negative(WHAT, "weight_decay", params.weight_decay)?;
    if params.nesterov && (params.momentum == 0.0 || params.dampening != 0.0) {
        return Err(bad(
            WHAT,
            "nesterov",
            format!(
                "needs momentum > 0 and dampening 0, got momentum {} and dampening {}",
                params.momentum, params.dampening
            ),
        ));
    }
    let momentum = (params.momentum > 0.0).then(|| {
        MomentumConfig::new()
            .with_momentum(params.momentum)
            .with_dampening(params.dampening)
            .with_nesterov(params.nesterov)
    });
    let decay =
        (params.weight_decay > 0.0).then(|| WeightDecayConfig::new(params.weight_decay as f32));
    Ok(SgdConfig::new()
        .with_momentum(momentum)
        .with_weight_decay(decay)
        .with_gradient_clipping(GradientClip::checked(params.gradient_clipping, WHAT)?)
        .init())
}

fn adam_checks(
    what: &'static str,
    params: &AdamParams,
) -> Result<Option<GradientClippingConfig>, TrainingConfigError> {
    in_range(what, "beta_1", params.beta_1, (0.0, 1.0, false))?;
    in_range(what, "beta_2", params.beta_2, (0.0, 1.0, false))?;
    non_negative(what, "weight_decay", params.weight_decay)?;
    if !(params.epsilon.is_finite() && params.epsilon > 0.0) {
        return Err(bad(
            what,
            "epsilon",
            format!("must be finite and > 0, got {}", params.epsilon),
        ));
    }
    GradientClip::checked(params.gradient_clipping, what)
}

/// How the learning rate falls after the warm-up, over `t` in `0..=T` iterations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case", deny_unknown_fields)]
pub enum Decay {
    /// `lr` throughout.
    Constant,
    /// `lr * gamma^floor(t / step_size)`.
    Step { step_size: usize, gamma: f64 },
    /// `min_lr + (lr - min_lr) (1 + cos(pi t / T)) / 2`.
    Cosine {
        #[serde(default)]
        min_lr: f64,
    },
    /// `lr (1 - t / T)^power`; nnU-Net uses power 0.9 over epochs.
    Poly {
        #[serde(default = "default_poly_power")]
        power: f64,
    },
}

fn default_poly_power() -> f64 {
    0.9
}

/// Learning rate by iteration: an optional linear warm-up from `warmup_start_lr` to
/// `learning_rate` over `warmup_iterations`, then `decay` over the remaining iterations up to
/// `total_iterations` (after which the rate stays at its final value).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    pub learning_rate: f64,
    pub total_iterations: usize,
    #[serde(default)]
    pub warmup_iterations: usize,
    #[serde(default)]
    pub warmup_start_lr: f64,
    pub decay: Decay,
}

impl ScheduleConfig {
    pub fn from_json(text: &str) -> Result<Self, TrainingConfigError> {
        let config: Self =
            serde_json::from_str(text).map_err(|error| TrainingConfigError::Json {
                what: "schedule",
                message: error.to_string(),
            })?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), TrainingConfigError> {
        const WHAT: &str = "schedule";
        let lr = self.learning_rate;
        if !(lr.is_finite() && lr > 0.0) {
            return Err(bad(
                WHAT,
                "learning_rate",
                format!("must be finite and > 0, got {lr}"),
            ));
        }
        if self.warmup_iterations >= self.total_iterations {
            return Err(bad(
                WHAT,
                "warmup_iterations",
                format!(
                    "must be below total_iterations ({}), got {}",
                    self.total_iterations, self.warmup_iterations
                ),
            ));
        }
        in_range(
            WHAT,
            "warmup_start_lr",
            self.warmup_start_lr,
            (0.0, lr, true),
        )?;
        match self.decay {
            Decay::Constant => Ok(()),
            Decay::Step { step_size, gamma } => {
                if step_size == 0 {
                    return Err(bad(WHAT, "step_size", "must be >= 1, got 0".to_string()));
                }
                in_range(WHAT, "gamma", gamma, (f64::MIN_POSITIVE, 1.0, true))
            }
            Decay::Cosine { min_lr } => in_range(WHAT, "min_lr", min_lr, (0.0, lr, true)),
            Decay::Poly { power } if !(power.is_finite() && power > 0.0) => Err(bad(
                WHAT,
                "power",
                format!("must be finite and > 0, got {power}"),
            )),
            Decay::Poly { .. } => Ok(()),
        }
    }

    /// The learning rate for 0-based `iteration`.
    pub fn lr_at(&self, iteration: usize) -> f64 {
        let (lr, warmup) = (self.learning_rate, self.warmup_iterations);
        if iteration < warmup {
            let fraction = iteration as f64 / warmup as f64;
            return self.warmup_start_lr + (lr - self.warmup_start_lr) * fraction;
        }
        let span = self.total_iterations.saturating_sub(warmup).max(1);
        let t = (iteration - warmup).min(span);
        let progress = t as f64 / span as f64;
        match self.decay {
            Decay::Constant => lr,
            Decay::Step { step_size, gamma } => lr * gamma.powi((t / step_size.max(1)) as i32),
            Decay::Cosine { min_lr } => {
                min_lr + (lr - min_lr) * (1.0 + (PI * progress).cos()) / 2.0
            }
            Decay::Poly { power } => lr * (1.0 - progress).powf(power),
        }
    }
}

#[cfg(test)]
#[path = "optim_tests.rs"]
mod tests;

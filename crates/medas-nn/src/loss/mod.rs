//! Segmentation losses on logits of any spatial rank, and the one config that builds them.
//!
//! Every loss takes raw network outputs (logits) shaped `(N, C, spatial...)` — `Tensor<4>` for 2-D
//! images, `Tensor<5>` for volumes, `Tensor<2>` for plain classification — and a [`Target`] of the
//! same rank. Internally both are flattened to `(N, C, S)` with `S` the number of voxels, so one
//! implementation serves every rank. Losses return a `Tensor<1>` with one element, averaged as
//! stated on each loss, and work on f32 and f64 tensors alike (the dtype of the logits).
//!
//! Training code builds a loss from JSON:
//! `LossConfig::from_json(r#"{"name": "dice_ce", "dice": {"batch_dice": true}}"#)?.build(3)?`.

mod dice;
mod entropy;
mod lovasz;

use burn::tensor::{DType, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

pub use dice::{DiceBceConfig, DiceCeConfig, DiceConfig};
pub use entropy::{BceConfig, CrossEntropyConfig, FocalConfig};
pub use lovasz::{LovaszClasses, LovaszHingeConfig, LovaszSoftmaxConfig};

/// What a loss compares the logits with.
#[derive(Debug, Clone)]
pub enum Target<const D: usize> {
    /// One class index per voxel, shaped `(N, 1, spatial...)` as in nnU-Net. Values in
    /// `0..C`, or the loss's `ignore_index`. Sigmoid losses read label `c` as channel `c`
    /// (one-hot), except with one channel, where every label above 0 is foreground.
    Classes(Tensor<D, Int>),
    /// One-hot, binary or soft masks shaped like the logits `(N, C, spatial...)`, values in
    /// [0, 1]. Every voxel counts (`ignore_index` applies to class targets only).
    Masks(Tensor<D>),
}

impl<const D: usize> Target<D> {
    /// Class targets from labels without the channel axis, `(N, spatial...)` of rank `D - 1`.
    pub fn from_labels<const E: usize>(labels: Tensor<E, Int>) -> Result<Self, LossError> {
        if E + 1 != D {
            return Err(LossError::BadInput {
                loss: "target",
                message: format!("labels of rank {E} cannot match logits of rank {D}"),
            });
        }
        Ok(Target::Classes(labels.unsqueeze_dim::<D>(1)))
    }
}

/// How logits become probabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// Mutually exclusive classes: softmax over the channel axis.
    #[default]
    Softmax,
    /// Independent (binary or multi-label) channels: a sigmoid per channel.
    Sigmoid,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LossError {
    #[error("loss {loss}: parameter `{param}` {message}")]
    BadParam {
        loss: &'static str,
        param: &'static str,
        message: String,
    },
    #[error("loss {loss}: {message}")]
    BadInput { loss: &'static str, message: String },
    #[error("loss config: {0}")]
    Json(String),
}

impl LossError {
    /// The same error told of `loss` (for combined losses whose parts check their own fields).
    pub(crate) fn of(self, name: &'static str) -> Self {
        match self {
            LossError::BadParam { param, message, .. } => LossError::BadParam {
                loss: name,
                param,
                message,
            },
            LossError::BadInput { message, .. } => LossError::BadInput {
                loss: name,
                message,
            },
            other => other,
        }
    }
}

/// Every loss, tagged by `"name"` in JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum LossConfig {
    Dice(DiceConfig),
    Bce(BceConfig),
    CrossEntropy(CrossEntropyConfig),
    Focal(FocalConfig),
    LovaszHinge(LovaszHingeConfig),
    LovaszSoftmax(LovaszSoftmaxConfig),
    DiceCe(DiceCeConfig),
    DiceBce(DiceBceConfig),
}

impl LossConfig {
    /// Reads a config such as `{"name": "focal", "gamma": 2.0}`; unknown fields are errors.
    pub fn from_json(text: &str) -> Result<Self, LossError> {
        serde_json::from_str(text).map_err(|error| LossError::Json(error.to_string()))
    }

    /// Checks every parameter against `num_classes` (the logits' channel count) and builds the loss.
    pub fn build(&self, num_classes: usize) -> Result<Loss, LossError> {
        let rule = match self {
            LossConfig::Dice(config) => config.validate(num_classes)?,
            LossConfig::Bce(config) => config.validate(num_classes)?,
            LossConfig::CrossEntropy(config) => config.validate(num_classes)?,
            LossConfig::Focal(config) => config.validate(num_classes)?,
            LossConfig::LovaszHinge(config) => config.validate(num_classes)?,
            LossConfig::LovaszSoftmax(config) => config.validate(num_classes)?,
            LossConfig::DiceCe(config) => config.validate(num_classes)?,
            LossConfig::DiceBce(config) => config.validate(num_classes)?,
        };
        Ok(Loss {
            config: self.clone(),
            rule,
        })
    }
}

/// A validated loss, ready for [`Loss::forward`].
#[derive(Debug, Clone)]
pub struct Loss {
    config: LossConfig,
    rule: TargetRule,
}

impl Loss {
    /// The loss of `logits` `(N, C, spatial...)` against `target`; errors on mismatched shapes
    /// or labels outside the classes.
    pub fn forward<const D: usize>(
        &self,
        logits: Tensor<D>,
        target: &Target<D>,
    ) -> Result<Tensor<1>, LossError> {
        let flat = flatten(logits, target, self.rule)?;
        Ok(match &self.config {
            LossConfig::Dice(config) => config.forward_flat(flat),
            LossConfig::Bce(config) => config.forward_flat(flat),
            LossConfig::CrossEntropy(config) => config.forward_flat(flat),
            LossConfig::Focal(config) => config.forward_flat(flat),
            LossConfig::LovaszHinge(config) => config.forward_flat(flat),
            LossConfig::LovaszSoftmax(config) => config.forward_flat(flat),
            LossConfig::DiceCe(config) => config.forward_flat(flat),
            LossConfig::DiceBce(config) => config.forward_flat(flat),
        })
    }

    pub fn config(&self) -> &LossConfig {
        &self.config
    }
}

/// Logits and target flattened to `(N, C, S)`; `valid` `(N, 1, S)` is 0 on ignored voxels and
/// `masks` (one-hot for class targets) is already 0 there.
#[derive(Clone)]
pub(crate) struct Flat {
    pub logits: Tensor<3>,
    pub masks: Tensor<3>,
    pub valid: Tensor<3>,
}

impl Flat {
    pub fn dims(&self) -> [usize; 3] {
        self.logits.dims()
    }

    /// Number of voxels that count, as a float tensor `[1]`, never below 1 (so means of nothing are 0).
    pub fn valid_count(&self) -> Tensor<1> {
        self.valid.clone().sum().clamp_min(1.0)
    }
}

/// How a loss reads class targets.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TargetRule {
    pub loss: &'static str,
    pub num_classes: usize,
    pub ignore_index: Option<i64>,
    /// Sigmoid losses with one channel read "label > 0" as foreground instead of one-hot.
    pub binary: bool,
}

impl TargetRule {
    pub fn new(
        loss: &'static str,
        num_classes: usize,
        ignore_index: Option<i64>,
        binary: bool,
    ) -> Self {
        Self {
            loss,
            num_classes,
            ignore_index,
            binary,
        }
    }
}

/// Flattens logits and target to `(N, C, S)` after checking their shapes against each other and
/// the loss's class count.
pub(crate) fn flatten<const D: usize>(
    logits: Tensor<D>,
    target: &Target<D>,
    rule: TargetRule,
) -> Result<Flat, LossError> {
    let bad = |message: String| LossError::BadInput {
        loss: rule.loss,
        message,
    };
    let dims = logits.dims();
    if D < 2 {
        return Err(bad(format!(
            "logits need shape (N, C, spatial...), got rank {D}"
        )));
    }
    let (n, c) = (dims[0], dims[1]);
    let s: usize = dims[2..].iter().product();
    if c != rule.num_classes {
        return Err(bad(format!(
            "logits have {c} channels, the loss was built for {}",
            rule.num_classes
        )));
    }
    if n == 0 || s == 0 {
        return Err(bad(format!("logits {dims:?} are empty")));
    }
    let dtype = logits.dtype();
    let logits = logits.reshape([n, c, s]);
    let (masks, valid) = match target {
        Target::Masks(masks) => {
            if masks.dims() != dims {
                return Err(bad(format!(
                    "mask target {:?} differs from logits {dims:?}",
                    masks.dims()
                )));
            }
            let masks = masks.clone().cast(dtype).reshape([n, c, s]);
            let valid = Tensor::<3>::ones([n, 1, s], (&logits.device(), dtype));
            (masks, valid)
        }
        Target::Classes(classes) => {
            let mut expected = dims;
            expected[1] = 1;
            if classes.dims() != expected {
                return Err(bad(format!(
                    "class target {:?} should be {expected:?} (N, 1, spatial...)",
                    classes.dims()
                )));
            }
            classes_to_masks(classes.clone().reshape([n, 1, s]), c, dtype, rule)?
        }
    };
    Ok(Flat {
        logits,
        masks,
        valid,
    })
}

/// One-hot (or foreground) masks and the valid-voxel mask from class indices `(N, 1, S)`.
fn classes_to_masks(
    classes: Tensor<3, Int>,
    c: usize,
    dtype: DType,
    rule: TargetRule,
) -> Result<(Tensor<3>, Tensor<3>), LossError> {
    let [n, _, s] = classes.dims();
    let valid = match rule.ignore_index {
        Some(ignore) => classes.clone().not_equal_elem(ignore).float().cast(dtype),
        None => Tensor::<3>::ones([n, 1, s], (&classes.device(), dtype)),
    };
    let masks = if rule.binary && c == 1 {
        classes.clone().greater_elem(0).float().cast(dtype) * valid.clone()
    } else {
        let ids = Tensor::<1, Int>::arange(0..c as i64, &classes.device()).reshape([1, c, 1]);
        classes
            .clone()
            .expand([n, c, s])
            .equal(ids.expand([n, c, s]))
            .float()
            .cast(dtype)
    };
    // Every counted voxel must fall in exactly one class (binary: any label is fine).
    if !(rule.binary && c == 1) {
        let covered = masks.clone().sum_dim(1);
        let stray = (valid.clone() - covered).abs().sum().into_scalar::<f64>();
        if stray > 0.0 {
            return Err(LossError::BadInput {
                loss: rule.loss,
                message: format!(
                    "{stray} target voxels have a label outside 0..{c}{}",
                    rule.ignore_index
                        .map(|i| format!(" that is not ignore_index {i}"))
                        .unwrap_or_default()
                ),
            });
        }
    }
    Ok((masks, valid))
}

/// A per-class constant `(1, C, 1)` in the logits' dtype and device.
pub(crate) fn per_class(values: &[f64], like: &Tensor<3>) -> Tensor<3> {
    let c = values.len();
    Tensor::<3>::from_data(
        TensorData::new(values.to_vec(), [1, c, 1]),
        (&like.device(), like.dtype()),
    )
}

/// Shared parameter checks, with messages that name the rule and the value given.
pub(crate) struct Check {
    pub loss: &'static str,
}

impl Check {
    pub fn fail(&self, param: &'static str, message: String) -> LossError {
        LossError::BadParam {
            loss: self.loss,
            param,
            message,
        }
    }

    pub fn non_negative(&self, param: &'static str, value: f64) -> Result<(), LossError> {
        if value.is_finite() && value >= 0.0 {
            Ok(())
        } else {
            Err(self.fail(param, format!("must be finite and >= 0, got {value}")))
        }
    }

    /// Per-class weights: `num_classes` finite values >= 0, not all 0.
    pub fn class_weights(
        &self,
        param: &'static str,
        weights: &[f64],
        num_classes: usize,
    ) -> Result<(), LossError> {
        if weights.len() != num_classes {
            return Err(self.fail(
                param,
                format!(
                    "needs one value per class ({num_classes}), got {}",
                    weights.len()
                ),
            ));
        }
        if let Some(bad) = weights.iter().find(|w| !(w.is_finite() && **w >= 0.0)) {
            return Err(self.fail(param, format!("values must be finite and >= 0, got {bad}")));
        }
        if weights.iter().all(|w| *w == 0.0) {
            return Err(self.fail(param, "must not be all 0".to_string()));
        }
        Ok(())
    }

    pub fn classes(&self, num_classes: usize, minimum: usize) -> Result<(), LossError> {
        if num_classes < minimum {
            return Err(self.fail(
                "num_classes",
                format!("must be >= {minimum} for this loss, got {num_classes}"),
            ));
        }
        Ok(())
    }

    /// An ignore label must not collide with a real class.
    pub fn ignore_index(
        &self,
        ignore_index: Option<i64>,
        num_classes: usize,
    ) -> Result<(), LossError> {
        match ignore_index {
            Some(i) if (0..num_classes as i64).contains(&i) => Err(self.fail(
                "ignore_index",
                format!("must lie outside the classes 0..{num_classes}, got {i}"),
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod gradient_tests;
#[cfg(test)]
mod lovasz_tests;
#[cfg(test)]
mod tests;

//! Cross-entropy, binary cross-entropy with logits, and focal loss (Lin et al. 2017).

use burn::tensor::Tensor;
use burn::tensor::activation::{log_sigmoid, log_softmax, sigmoid};
use serde::{Deserialize, Serialize};

use super::{Activation, Check, Flat, LossError, TargetRule, per_class};

/// Softmax cross-entropy. With class weights `w` it is PyTorch's weighted mean
/// `sum_v w_{y_v} nll_v / sum_v w_{y_v}`; without, the mean over counted voxels. For mask
/// targets the voxel weight is `sum_c w_c y_c` and the voxel loss `-sum_c y_c log p_c`
/// (identical to the class-index form for one-hot masks).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct CrossEntropyConfig {
    /// One weight >= 0 per class.
    pub class_weights: Option<Vec<f64>>,
    /// Class label of voxels to leave out; must not be a class (nnU-Net and PyTorch use e.g. 255 or -100).
    pub ignore_index: Option<i64>,
}

impl CrossEntropyConfig {
    pub(crate) fn validate(&self, num_classes: usize) -> Result<TargetRule, LossError> {
        let check = Check {
            loss: "cross_entropy",
        };
        check.classes(num_classes, 2)?;
        if let Some(weights) = &self.class_weights {
            check.class_weights("class_weights", weights, num_classes)?;
        }
        check.ignore_index(self.ignore_index, num_classes)?;
        Ok(TargetRule::new(
            "cross_entropy",
            num_classes,
            self.ignore_index,
            false,
        ))
    }
}

impl CrossEntropyConfig {
    pub(crate) fn forward_flat(&self, flat: Flat) -> Tensor<1> {
        self.cross_entropy_of(log_softmax(flat.logits, 1), &flat.masks)
    }

    /// The loss from log-probabilities `(N, C, S)`.
    pub(crate) fn cross_entropy_of(&self, log_p: Tensor<3>, masks: &Tensor<3>) -> Tensor<1> {
        let nll = (log_p * masks.clone()).sum_dim(1).neg();
        let voxel_weight = match &self.class_weights {
            Some(weights) => (masks.clone() * per_class(weights, masks)).sum_dim(1),
            None => masks.clone().sum_dim(1),
        };
        (nll * voxel_weight.clone()).sum() / voxel_weight.sum().clamp_min(1e-30)
    }
}

/// Binary cross-entropy on logits, `-(p y log s(x) + (1 - y) log(1 - s(x)))` averaged over every
/// counted element (as PyTorch's `BCEWithLogitsLoss`), computed through log-sigmoid for stability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct BceConfig {
    /// Weight `p` of positive targets: one value for all channels or one per channel.
    pub pos_weight: Option<Vec<f64>>,
    /// With class targets: label of voxels to leave out.
    pub ignore_index: Option<i64>,
}

impl BceConfig {
    pub(crate) fn validate(&self, num_classes: usize) -> Result<TargetRule, LossError> {
        let check = Check { loss: "bce" };
        check.classes(num_classes, 1)?;
        if let Some(weights) = &self.pos_weight {
            let expected = if weights.len() == 1 { 1 } else { num_classes };
            check.class_weights("pos_weight", weights, expected)?;
        }
        check.ignore_index(self.ignore_index, num_classes.max(2))?;
        Ok(TargetRule::new("bce", num_classes, self.ignore_index, true))
    }
}

impl BceConfig {
    pub(crate) fn forward_flat(&self, flat: Flat) -> Tensor<1> {
        let elements = binary_cross_entropy(&flat, self.pos_weight.as_deref());
        mean_over_valid_elements(elements, &flat)
    }
}

/// Element-wise BCE `(N, C, S)`, 0 on ignored voxels.
fn binary_cross_entropy(flat: &Flat, pos_weight: Option<&[f64]>) -> Tensor<3> {
    let positive = flat.masks.clone() * log_sigmoid(flat.logits.clone());
    let positive = match pos_weight {
        Some(weights) if weights.len() == 1 => positive.mul_scalar(weights[0]),
        Some(weights) => positive * per_class(weights, &flat.logits),
        None => positive,
    };
    let negative =
        flat.masks.clone().neg().add_scalar(1.0) * log_sigmoid(flat.logits.clone().neg());
    (positive + negative).neg() * flat.valid.clone()
}

fn mean_over_valid_elements(elements: Tensor<3>, flat: &Flat) -> Tensor<1> {
    let channels = flat.dims()[1] as f64;
    elements.sum() / flat.valid_count().mul_scalar(channels)
}

/// Focal loss `-a_t (1 - p_t)^gamma log p_t`, averaged over counted voxels (softmax) or elements
/// (sigmoid, as torchvision's `sigmoid_focal_loss`). `gamma = 0` without `alpha` is plain
/// cross-entropy / BCE.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FocalConfig {
    pub activation: Activation,
    /// Focusing exponent >= 0; 2 in the paper.
    pub gamma: f64,
    /// Softmax: one weight per class (`a_t` = weight of the true class). Sigmoid: one value `a`
    /// in [0, 1], the weight of positives (negatives get `1 - a`; 0.25 in the paper).
    pub alpha: Option<Vec<f64>>,
    pub ignore_index: Option<i64>,
}

impl Default for FocalConfig {
    fn default() -> Self {
        Self {
            activation: Activation::Softmax,
            gamma: 2.0,
            alpha: None,
            ignore_index: None,
        }
    }
}

impl FocalConfig {
    pub(crate) fn validate(&self, num_classes: usize) -> Result<TargetRule, LossError> {
        let check = Check { loss: "focal" };
        check.non_negative("gamma", self.gamma)?;
        match (self.activation, &self.alpha) {
            (Activation::Softmax, alpha) => {
                check.classes(num_classes, 2)?;
                if let Some(alpha) = alpha {
                    check.class_weights("alpha", alpha, num_classes)?;
                }
            }
            (Activation::Sigmoid, Some(alpha))
                if alpha.len() != 1 || !(0.0..=1.0).contains(&alpha[0]) =>
            {
                return Err(check.fail(
                    "alpha",
                    format!("with sigmoid must be one value in [0, 1], got {alpha:?}"),
                ));
            }
            (Activation::Sigmoid, _) => check.classes(num_classes, 1)?,
        }
        check.ignore_index(self.ignore_index, num_classes.max(2))?;
        Ok(TargetRule::new(
            "focal",
            num_classes,
            self.ignore_index,
            self.activation == Activation::Sigmoid,
        ))
    }
}

impl FocalConfig {
    pub(crate) fn forward_flat(&self, flat: Flat) -> Tensor<1> {
        match self.activation {
            Activation::Softmax => self.softmax_focal(flat),
            Activation::Sigmoid => self.sigmoid_focal(flat),
        }
    }
}

impl FocalConfig {
    fn softmax_focal(&self, flat: Flat) -> Tensor<1> {
        let log_p = log_softmax(flat.logits.clone(), 1);
        let log_p_true = (log_p * flat.masks.clone()).sum_dim(1);
        let p_true = log_p_true.clone().exp();
        let mut voxel = modulation(p_true.neg().add_scalar(1.0), self.gamma) * log_p_true.neg();
        if let Some(alpha) = &self.alpha {
            voxel = voxel * (flat.masks.clone() * per_class(alpha, &flat.masks)).sum_dim(1);
        }
        voxel.sum() / flat.valid_count()
    }

    fn sigmoid_focal(&self, flat: Flat) -> Tensor<1> {
        let cross_entropy = binary_cross_entropy(&flat, None);
        let p = sigmoid(flat.logits.clone());
        let y = flat.masks.clone();
        let one_minus_y = y.clone().neg().add_scalar(1.0);
        let p_t = p.clone() * y.clone() + p.neg().add_scalar(1.0) * one_minus_y.clone();
        let mut elements = cross_entropy * modulation(p_t.neg().add_scalar(1.0), self.gamma);
        if let Some(alpha) = &self.alpha {
            let a = alpha[0];
            elements = elements * (y.mul_scalar(a) + one_minus_y.mul_scalar(1.0 - a));
        }
        mean_over_valid_elements(elements, &flat)
    }
}

/// `(1 - p_t)^gamma`, floored at 1e-12 before the power so its gradient stays finite where
/// `p_t = 1` (ignored voxels) and `gamma < 1`.
fn modulation(one_minus_p_true: Tensor<3>, gamma: f64) -> Tensor<3> {
    if gamma == 0.0 {
        one_minus_p_true.ones_like()
    } else {
        one_minus_p_true.clamp_min(1e-12).powf_scalar(gamma)
    }
}

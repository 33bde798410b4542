//! Soft Dice (Milletari et al. 2016, as nnU-Net computes it), Dice + cross-entropy and
//! Dice + binary cross-entropy.

use burn::tensor::Tensor;
use burn::tensor::activation::{log_softmax, sigmoid, softmax};
use serde::{Deserialize, Serialize};

use super::entropy::{BceConfig, CrossEntropyConfig};
use super::{Activation, Check, Flat, LossError, TargetRule};

/// Soft Dice loss `1 - mean_k (2 I_k + smooth) / (P_k + G_k + smooth)` with `I` the sum of
/// probability x target, `P` the sum of probabilities and `G` of targets, per (image, class) —
/// or per class over the whole batch with `batch_dice` (nnU-Net's default for 3-D full
/// resolution). The mean runs over classes (and images); ignored voxels count nowhere.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiceConfig {
    pub activation: Activation,
    /// Softmax only: whether channel 0 (background) enters the mean. Sigmoid channels always do.
    pub include_background: bool,
    /// Added to numerator and denominator; nnU-Net uses 1e-5.
    pub smooth: f64,
    /// Sum over the batch before dividing (one Dice per class) instead of one per image.
    pub batch_dice: bool,
    /// Class label of voxels to leave out (class targets only); must not be a class.
    pub ignore_index: Option<i64>,
}

impl Default for DiceConfig {
    fn default() -> Self {
        Self {
            activation: Activation::Softmax,
            include_background: false,
            smooth: 1e-5,
            batch_dice: false,
            ignore_index: None,
        }
    }
}

impl DiceConfig {
    pub(crate) fn validate(&self, num_classes: usize) -> Result<TargetRule, LossError> {
        let check = Check { loss: "dice" };
        let minimum = match (self.activation, self.include_background) {
            (Activation::Softmax, false) => 2,
            _ => 1,
        };
        check.classes(num_classes, minimum)?;
        check.non_negative("smooth", self.smooth)?;
        check.ignore_index(self.ignore_index, num_classes)?;
        Ok(TargetRule::new(
            "dice",
            num_classes,
            self.ignore_index,
            self.activation == Activation::Sigmoid,
        ))
    }
}

impl DiceConfig {
    pub(crate) fn forward_flat(&self, flat: Flat) -> Tensor<1> {
        let probabilities = match self.activation {
            Activation::Softmax => softmax(flat.logits.clone(), 1),
            Activation::Sigmoid => sigmoid(flat.logits.clone()),
        };
        self.dice_of(probabilities, flat)
    }

    /// The loss from probabilities already computed from `flat.logits`.
    fn dice_of(&self, probabilities: Tensor<3>, flat: Flat) -> Tensor<1> {
        let [n, c, s] = flat.dims();
        let probabilities = probabilities * flat.valid;
        let skip_background = self.activation == Activation::Softmax && !self.include_background;
        let first = usize::from(skip_background);
        let probabilities = probabilities.slice([0..n, first..c, 0..s]);
        let masks = flat.masks.slice([0..n, first..c, 0..s]);
        let sum = |t: Tensor<3>| {
            if self.batch_dice {
                t.sum_dims(&[0, 2])
            } else {
                t.sum_dim(2)
            }
        };
        let intersection = sum(probabilities.clone() * masks.clone());
        let denominator = sum(probabilities) + sum(masks);
        let smooth = self.smooth;
        let dice = (intersection.mul_scalar(2.0).add_scalar(smooth))
            / denominator.add_scalar(smooth).clamp_min(1e-8);
        dice.mean().neg().add_scalar(1.0)
    }
}

/// `dice_weight * Dice + ce_weight * cross-entropy`, both on softmax (nnU-Net's DC_and_CE_loss
/// with weights 1 and 1). The two parts must agree on `ignore_index`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiceCeConfig {
    pub dice_weight: f64,
    pub ce_weight: f64,
    pub dice: DiceConfig,
    pub cross_entropy: CrossEntropyConfig,
}

impl Default for DiceCeConfig {
    fn default() -> Self {
        Self {
            dice_weight: 1.0,
            ce_weight: 1.0,
            dice: DiceConfig::default(),
            cross_entropy: CrossEntropyConfig::default(),
        }
    }
}

impl DiceCeConfig {
    pub(crate) fn validate(&self, num_classes: usize) -> Result<TargetRule, LossError> {
        let check = Check { loss: "dice_ce" };
        check.non_negative("dice_weight", self.dice_weight)?;
        check.non_negative("ce_weight", self.ce_weight)?;
        if self.dice_weight == 0.0 && self.ce_weight == 0.0 {
            return Err(check.fail(
                "dice_weight",
                "and ce_weight must not both be 0".to_string(),
            ));
        }
        if self.dice.activation != Activation::Softmax {
            return Err(check.fail(
                "dice.activation",
                "must be softmax to pair with cross-entropy".to_string(),
            ));
        }
        if self.dice.ignore_index != self.cross_entropy.ignore_index {
            return Err(check.fail(
                "ignore_index",
                format!(
                    "must be the same for dice ({:?}) and cross_entropy ({:?})",
                    self.dice.ignore_index, self.cross_entropy.ignore_index
                ),
            ));
        }
        self.dice.validate(num_classes)?;
        self.cross_entropy.validate(num_classes)?;
        Ok(TargetRule::new(
            "dice_ce",
            num_classes,
            self.dice.ignore_index,
            false,
        ))
    }

    pub(crate) fn forward_flat(&self, flat: Flat) -> Tensor<1> {
        // One log-softmax serves both parts.
        let log_p = log_softmax(flat.logits.clone(), 1);
        let ce = self
            .cross_entropy
            .cross_entropy_of(log_p.clone(), &flat.masks);
        let dice = self.dice.dice_of(log_p.exp(), flat);
        dice.mul_scalar(self.dice_weight) + ce.mul_scalar(self.ce_weight)
    }
}

/// `dice_weight * Dice + bce_weight * BCE`, both on sigmoid channels (nnU-Net's DC_and_BCE_loss
/// for region-based training, and the usual binary-segmentation loss). Every channel enters the
/// Dice mean.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiceBceConfig {
    pub dice_weight: f64,
    pub bce_weight: f64,
    /// Dice smoothing term (nnU-Net: 1e-5).
    pub smooth: f64,
    pub batch_dice: bool,
    /// BCE weight of positives: one value or one per channel.
    pub pos_weight: Option<Vec<f64>>,
    pub ignore_index: Option<i64>,
}

impl Default for DiceBceConfig {
    fn default() -> Self {
        Self {
            dice_weight: 1.0,
            bce_weight: 1.0,
            smooth: 1e-5,
            batch_dice: false,
            pos_weight: None,
            ignore_index: None,
        }
    }
}

impl DiceBceConfig {
    fn dice(&self) -> DiceConfig {
        DiceConfig {
            activation: Activation::Sigmoid,
            include_background: true,
            smooth: self.smooth,
            batch_dice: self.batch_dice,
            ignore_index: self.ignore_index,
        }
    }

    fn bce(&self) -> BceConfig {
        BceConfig {
            pos_weight: self.pos_weight.clone(),
            ignore_index: self.ignore_index,
        }
    }

    pub(crate) fn validate(&self, num_classes: usize) -> Result<TargetRule, LossError> {
        let check = Check { loss: "dice_bce" };
        check.non_negative("dice_weight", self.dice_weight)?;
        check.non_negative("bce_weight", self.bce_weight)?;
        if self.dice_weight == 0.0 && self.bce_weight == 0.0 {
            return Err(check.fail(
                "dice_weight",
                "and bce_weight must not both be 0".to_string(),
            ));
        }
        self.dice()
            .validate(num_classes)
            .map_err(|e| e.of("dice_bce"))?;
        self.bce()
            .validate(num_classes)
            .map_err(|e| e.of("dice_bce"))?;
        Ok(TargetRule::new(
            "dice_bce",
            num_classes,
            self.ignore_index,
            true,
        ))
    }

    pub(crate) fn forward_flat(&self, flat: Flat) -> Tensor<1> {
        let dice = self
            .dice()
            .forward_flat(flat.clone())
            .mul_scalar(self.dice_weight);
        dice + self.bce().forward_flat(flat).mul_scalar(self.bce_weight)
    }
}

//! Lovász hinge and Lovász-softmax (Berman, Rannen Triki & Blaschko, CVPR 2018): the Lovász
//! extension of the Jaccard loss, evaluated on a vector of errors `e` as
//! `sum_i e_(i) g_i` with `e_(1) >= e_(2) >= ...` the errors sorted descending and `g` the
//! discrete gradient of `J_i = 1 - |gt ∩ first i| / |gt ∪ first i|` over that order.

use burn::tensor::activation::{relu, softmax};
use burn::tensor::{Int, Tensor};
use serde::{Deserialize, Serialize};

use super::{Check, Flat, LossError, TargetRule};

/// Binary Lovász hinge on logits: errors `1 - x (2y - 1)`, hinged at 0. Each channel is its own
/// binary problem; the loss is the mean over images x channels (`per_image`) or over channels with
/// the whole batch as one set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LovaszHingeConfig {
    pub per_image: bool,
    pub ignore_index: Option<i64>,
}

impl Default for LovaszHingeConfig {
    fn default() -> Self {
        Self {
            per_image: true,
            ignore_index: None,
        }
    }
}

impl LovaszHingeConfig {
    pub(crate) fn validate(&self, num_classes: usize) -> Result<TargetRule, LossError> {
        let check = Check {
            loss: "lovasz_hinge",
        };
        check.classes(num_classes, 1)?;
        check.ignore_index(self.ignore_index, num_classes.max(2))?;
        Ok(TargetRule::new(
            "lovasz_hinge",
            num_classes,
            self.ignore_index,
            true,
        ))
    }
}

impl LovaszHingeConfig {
    pub(crate) fn forward_flat(&self, flat: Flat) -> Tensor<1> {
        let Flat {
            logits,
            masks,
            valid,
        } = flat;
        let signs = masks.clone().mul_scalar(2.0).sub_scalar(1.0);
        // Ignored voxels get error 0: they sort behind every positive error and add nothing.
        let errors = (logits * signs).neg().add_scalar(1.0) * valid;
        let per_image = self.per_image;
        let losses = lovasz_rows(rows(errors, per_image), rows(masks, per_image), true);
        losses.mean()
    }
}

/// Which classes Lovász-softmax averages over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LovaszClasses {
    /// Only classes present in the target (of the image, or of the batch).
    #[default]
    Present,
    All,
}

/// Lovász-softmax: errors `|y_c - p_c|` per class, the Lovász extension per class, averaged over
/// the chosen classes, per image then over images (`per_image`) or over the whole batch at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct LovaszSoftmaxConfig {
    pub classes: LovaszClasses,
    pub per_image: bool,
    pub ignore_index: Option<i64>,
}

impl LovaszSoftmaxConfig {
    pub(crate) fn validate(&self, num_classes: usize) -> Result<TargetRule, LossError> {
        let check = Check {
            loss: "lovasz_softmax",
        };
        check.classes(num_classes, 2)?;
        check.ignore_index(self.ignore_index, num_classes)?;
        Ok(TargetRule::new(
            "lovasz_softmax",
            num_classes,
            self.ignore_index,
            false,
        ))
    }
}

impl LovaszSoftmaxConfig {
    pub(crate) fn forward_flat(&self, flat: Flat) -> Tensor<1> {
        let Flat {
            logits,
            masks,
            valid,
        } = flat;
        let [n, c, _] = logits.dims();
        let errors = (masks.clone() - softmax(logits, 1)).abs() * valid;
        let per_image = self.per_image;
        let gt = rows(masks, per_image);
        let groups = if per_image { n } else { 1 };
        let chosen = match self.classes {
            LovaszClasses::Present => gt
                .clone()
                .sum_dim(1)
                .greater_elem(0.0)
                .float()
                .cast(gt.dtype()),
            LovaszClasses::All => gt.clone().sum_dim(1).ones_like(),
        }
        .reshape([groups, c]);
        let losses = lovasz_rows(rows(errors, per_image), gt, false).reshape([groups, c]);
        // Mean over the chosen classes of each group; a group with none counts 0 (as the reference).
        let per_group = (losses * chosen.clone()).sum_dim(1) / chosen.sum_dim(1).clamp_min(1.0);
        per_group.mean()
    }
}

/// `(N, C, S)` to one row per (image, channel), or per channel over the batch.
fn rows(t: Tensor<3>, per_image: bool) -> Tensor<2> {
    let [n, c, s] = t.dims();
    if per_image {
        t.reshape([n * c, s])
    } else {
        t.swap_dims(0, 1).reshape([c, n * s])
    }
}

/// The Lovász extension of each row of `errors` `(R, L)` given binary ground truth `(R, L)`;
/// `(R, 1)`. Gradients flow through the sorted errors only, as in the reference.
fn lovasz_rows(errors: Tensor<2>, ground_truth: Tensor<2>, hinge: bool) -> Tensor<2> {
    let (_, order): (_, Tensor<2, Int>) = errors.clone().detach().sort_descending_with_indices(1);
    let sorted = errors.gather(1, order.clone());
    let sorted = if hinge { relu(sorted) } else { sorted };
    let gradient = lovasz_gradient(ground_truth.detach().gather(1, order));
    (sorted * gradient).sum_dim(1)
}

/// Discrete gradient of the Jaccard loss along each row of sorted ground truth `(R, L)`:
/// `J_i = 1 - (G - cumsum(gt)_i) / (G + i - cumsum(gt)_i)` (1-based i, G the row's foreground
/// count), then `g_1 = J_1`, `g_i = J_i - J_{i-1}`.
pub(crate) fn lovasz_gradient(sorted_truth: Tensor<2>) -> Tensor<2> {
    let [r, l] = sorted_truth.dims();
    let (device, dtype) = (sorted_truth.device(), sorted_truth.dtype());
    let total = sorted_truth.clone().sum_dim(1);
    let cumulative = sorted_truth.cumsum(1);
    let position = Tensor::<1, Int>::arange(1..l as i64 + 1, &device)
        .float()
        .cast(dtype)
        .reshape([1, l]);
    let intersection = total.clone() - cumulative.clone();
    let union = total + position - cumulative;
    let jaccard = (intersection / union).neg().add_scalar(1.0);
    if l == 1 {
        return jaccard;
    }
    let previous = Tensor::cat(
        vec![
            Tensor::<2>::zeros([r, 1], (&device, dtype)),
            jaccard.clone().slice([0..r, 0..l - 1]),
        ],
        1,
    );
    jaccard - previous
}

//! What a sliding-window prediction is asked to do, and the checks that refuse a config that
//! cannot work before any window runs.

use serde::{Deserialize, Serialize};

use super::InferError;

/// How the overlapping windows' outputs are weighted where they meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Blend {
    /// nnU-Net's importance map: a Gaussian centred on the window, sigma = patch / 8 per axis,
    /// scaled to 1 at the centre, zeros raised to the smallest positive weight. Voxels near a
    /// window's border (where padding spoils the network's view) count less.
    #[default]
    Gaussian,
    /// Every voxel of every window counts the same (a plain average of the windows).
    Constant,
}

/// Test-time augmentation by mirroring, as nnU-Net's `use_mirroring`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Flips {
    /// One forward pass per window.
    #[default]
    None,
    /// Every non-empty combination of the spatial axes longer than one voxel in the patch
    /// (7 flips in 3-D, 3 in 2-D), plus the unflipped pass.
    All,
    /// Every non-empty combination of these spatial axes (0 = D, 1 = H, 2 = W), plus the
    /// unflipped pass; nnU-Net's `allowed_mirroring_axes`.
    Axes(Vec<usize>),
}

/// What the windows' logits become before they are blended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OutputActivation {
    /// Softmax over the classes: each voxel's probabilities sum to 1.
    #[default]
    Softmax,
    /// Each class on its own (multi-label), in (0, 1).
    Sigmoid,
    /// The raw logits, blended as they are (nnU-Net v2 blends logits and applies the softmax
    /// afterwards; apply it to the result to get that).
    None,
}

/// Settings of [`predict`](super::predict). Only `patch_size` has no default.
///
/// ```json
/// {"patch_size": [64, 64, 64], "overlap": 0.5, "blend": "gaussian", "batch_size": 2,
///  "flips": "all", "pad_value": 0.0, "activation": "softmax"}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlidingWindowConfig {
    /// Window size (D, H, W) in voxels; D = 1 for a 2-D network. Each axis must be a multiple
    /// of the network's size multiple (D may be 1).
    pub patch_size: [usize; 3],
    /// Fraction of a window shared with its neighbour, in [0, 1): the target step between
    /// windows is `patch * (1 - overlap)` (nnU-Net's `tile_step_size` is `1 - overlap`).
    #[serde(default = "default_overlap")]
    pub overlap: f64,
    #[serde(default)]
    pub blend: Blend,
    /// Windows per forward pass.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    #[serde(default)]
    pub flips: Flips,
    /// The value an input smaller than the patch is padded with (the padding is cropped off
    /// the result).
    #[serde(default)]
    pub pad_value: f32,
    #[serde(default)]
    pub activation: OutputActivation,
}

fn default_overlap() -> f64 {
    0.5
}

fn default_batch_size() -> usize {
    1
}

impl SlidingWindowConfig {
    /// A config with every default (overlap 0.5, Gaussian blending, batches of 1, no flips,
    /// padding with 0, softmax).
    pub fn new(patch_size: [usize; 3]) -> SlidingWindowConfig {
        SlidingWindowConfig {
            patch_size,
            overlap: default_overlap(),
            blend: Blend::default(),
            batch_size: default_batch_size(),
            flips: Flips::default(),
            pad_value: 0.0,
            activation: OutputActivation::default(),
        }
    }

    pub fn from_json(text: &str) -> Result<SlidingWindowConfig, InferError> {
        serde_json::from_str(text).map_err(|e| InferError::Json(e.to_string()))
    }

    /// Refuses settings that cannot work, whatever the network and input.
    pub fn validate(&self) -> Result<(), InferError> {
        let bad = |message: String| Err(InferError::Config(message));
        if self.patch_size.contains(&0) {
            return bad(format!("patch_size must be at least 1 on every axis, got {:?}", self.patch_size));
        }
        if !(0.0..1.0).contains(&self.overlap) {
            return bad(format!("overlap must be in [0, 1), got {}", self.overlap));
        }
        if self.batch_size == 0 {
            return bad("batch_size must be at least 1, got 0".to_string());
        }
        if !self.pad_value.is_finite() {
            return bad(format!("pad_value must be finite, got {}", self.pad_value));
        }
        if let Flips::Axes(axes) = &self.flips {
            if let Some(axis) = axes.iter().find(|&&a| a > 2) {
                return bad(format!("flip axes are 0 (D), 1 (H) and 2 (W), got {axis}"));
            }
            if (1..axes.len()).any(|i| axes[..i].contains(&axes[i])) {
                return bad(format!("flip axes must not repeat, got {axes:?}"));
            }
        }
        Ok(())
    }

    /// The tensor axes (2 = D, 3 = H, 4 = W) of every flip to run, the unflipped pass (empty)
    /// first, in nnU-Net's order: single axes, then pairs, then all three.
    pub fn flip_sets(&self) -> Vec<Vec<usize>> {
        let axes: Vec<usize> = match &self.flips {
            Flips::None => Vec::new(),
            Flips::All => (0..3).filter(|&a| self.patch_size[a] > 1).collect(),
            Flips::Axes(axes) => {
                let mut axes = axes.clone();
                axes.sort_unstable();
                axes
            }
        };
        let mut sets = vec![Vec::new()];
        for count in 1..=axes.len() {
            for mask in 0u32..(1 << axes.len()) {
                if mask.count_ones() as usize == count {
                    sets.push((0..axes.len()).filter(|&i| mask & (1 << i) != 0).map(|i| axes[i] + 2).collect());
                }
            }
        }
        sets
    }
}

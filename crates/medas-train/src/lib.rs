//! Training networks on MEDAS datasets.
//!
//! ```text
//! dataset version + fold ──data::load──► Volume (C, D, H, W) f32 + label (D, H, W)
//!   ──sampler (seeded patches, foreground over-sampling, flips/rot90, catalog augmentation
//!     tools; worker thread)──► batches
//!   ──train::run (loss, optimizer, schedule; validation Dice; early stopping)──► checkpoints,
//!     metrics.jsonl, events
//! run folder ──export::export_run──► store model (config + safetensors + metadata with the
//!   training config: normalization, labels, patch)
//! store model + images ──predict (same tensors and normalisation, sliding window)──► label map
//!   and probabilities on the input's grid, Dice against a label
//! ```
//!
//! Classifiers (`classifier`, `dpn`) take one class per case instead of a label map: the
//! dataset's class labels become indices ([`classes`]), whole cases fitted to the input size
//! make the batches and validation gives accuracy and AUC ([`classify`]).
//!
//! Axes: an image's index axes i, j, k become the tensor's W, H, D (the order SimpleITK's
//! arrays use); a 2-D image has D = 1; channels are the case's images and their components.

pub mod augment;
pub mod classes;
pub mod classify;
pub mod data;
pub mod export;
pub mod predict;
pub mod sampler;
pub mod tool;
pub mod train;

pub use data::{DataError, LabelMode, Normalization, Volume};
pub use augment::AugmentationStep;
pub use sampler::{PatchSampler, SamplerConfig};
pub use train::{Checkpoint, EpochMetrics, TrainConfig, TrainError, TrainEvent, TrainReport, train};

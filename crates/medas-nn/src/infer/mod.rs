//! Sliding-window inference at the tensor level (nnU-Net's `predict_sliding_window`): a volume
//! of any size is cut into overlapping patch-sized windows, the network runs on batches of
//! windows (optionally also on their mirror images), each window's output goes through the
//! output activation and is added, weighted by a blend map (Gaussian or constant), into sums
//! of the volume's size, and the weighted mean is the probability map on the input's grid.
//!
//! - Window placement: [`window_starts`] (nnU-Net's `compute_steps_for_sliding_window`).
//! - Blending: [`gaussian_weights`] (nnU-Net's `compute_gaussian`) or constant.
//! - Test-time flips: for each flip set, the window is flipped, run, flipped back and
//!   activated; the activated outputs are averaged (nnU-Net v1 averages softmax outputs; with
//!   [`OutputActivation::None`] the logits are averaged and blended, as nnU-Net v2 does).
//! - An input smaller than the patch along an axis is padded (half before, half after, the
//!   extra voxel after, as nnU-Net's `pad_nd_image`) with `pad_value` and the result cropped.
//!
//! Memory: besides the network's own, one sum per class and voxel and one weight per voxel
//! (of the padded input), and one batch of windows at a time. The network runs on the volume's
//! device; [`predict`] runs a [`Network`] in validation mode (no gradient tape, no dropout).
//! Reading images and mapping the result back to an image's geometry is the caller's.

mod config;
mod stitch;
mod windows;

use burn::module::Module;
use burn::tensor::ops::PadMode;
use burn::tensor::{Int, Tensor, TensorData};

pub use config::{Blend, Flips, OutputActivation, SlidingWindowConfig};
pub use windows::{gaussian_weights, window_grid, window_starts};

use crate::nets::{Network, NetworkError, NetworkOutput};
use stitch::Accumulator;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InferError {
    #[error("sliding window: {0}")]
    Config(String),
    #[error("sliding window config: {0}")]
    Json(String),
    #[error("sliding window input: {0}")]
    Input(String),
    #[error(transparent)]
    Network(#[from] NetworkError),
    #[error("inference cancelled at {:.0}% done", 100.0 * done)]
    Cancelled { done: f64 },
}

/// What sliding-window inference needs of a network: the factor window sizes must divide by, a
/// check of a window's shape, and logits for a batch of windows at the windows' size.
/// [`Network`] implements it; so can any other model (a test's single convolution).
pub trait WindowModel {
    /// Every spatial window size must be a multiple of this (a depth of 1 is also allowed).
    fn size_multiple(&self) -> usize;

    /// Refuses a window shape (N, C, D, H, W) the model cannot take.
    fn check_window(&self, shape: [usize; 5]) -> Result<(), InferError>;

    /// Logits (N, classes, D, H, W) for windows (N, C, D, H, W).
    fn logits(&self, windows: Tensor<5>) -> Result<Tensor<5>, InferError>;
}

impl WindowModel for Network {
    fn size_multiple(&self) -> usize {
        Network::size_multiple(self)
    }

    fn check_window(&self, shape: [usize; 5]) -> Result<(), InferError> {
        if matches!(self.name(), "classifier" | "dpn") {
            return Err(InferError::Input(format!("{} gives one label per image; sliding windows need a segmentation network", self.name())));
        }
        Ok(self.check_input(shape)?)
    }

    fn logits(&self, windows: Tensor<5>) -> Result<Tensor<5>, InferError> {
        match self.forward(windows)? {
            NetworkOutput::Segmentation(output) => Ok(output.logits),
            NetworkOutput::Classes(_) => Err(InferError::Input(format!("{} gives class logits, not a segmentation", self.name()))),
        }
    }
}

/// Probabilities (1, classes, D, H, W) on the grid of `volume` (1, C, D, H, W) from `network`
/// run window by window (see the module docs). `progress` is called after every forward pass
/// with the fraction done; returning `false` stops with [`InferError::Cancelled`].
pub fn predict(network: &Network, volume: Tensor<5>, config: &SlidingWindowConfig, progress: impl FnMut(f64) -> bool) -> Result<Tensor<5>, InferError> {
    predict_with(&network.valid(), volume.without_autodiff(), config, progress)
}

/// [`predict`] for any [`WindowModel`]. The model is run as it is: put it in inference mode
/// (e.g. `Module::valid`) and `volume` on its device first.
pub fn predict_with<M: WindowModel + ?Sized>(model: &M, volume: Tensor<5>, config: &SlidingWindowConfig, mut progress: impl FnMut(f64) -> bool) -> Result<Tensor<5>, InferError> {
    let shape = volume.dims();
    check_shapes(model, shape, config)?;
    let patch = config.patch_size;
    let size = [shape[2], shape[3], shape[4]];
    let (padded, offset) = pad_to_patch(volume, patch, config.pad_value);
    let [_, _, gd, gh, gw] = padded.dims();
    let starts = window_grid([gd, gh, gw], patch, config.overlap);
    let flips = config.flip_sets();
    let blend = windows::blend_weights(config.blend, patch);
    let total = starts.len().div_ceil(config.batch_size) * flips.len();
    let mut passes = 0;
    let mut accumulator: Option<Accumulator> = None;
    for batch in starts.chunks(config.batch_size) {
        let windows = Tensor::cat(batch.iter().map(|&start| padded.clone().slice(window_ranges(shape[1], start, patch))).collect(), 0);
        let mut sum: Option<Tensor<5>> = None;
        for flip in &flips {
            let output = activate(flip_axes(model.logits(flip_axes(windows.clone(), flip))?, flip), config.activation);
            check_output(output.dims(), batch.len(), patch)?;
            sum = Some(match sum {
                Some(sum) => sum + output,
                None => output,
            });
            passes += 1;
            if !progress(passes as f64 / total as f64) {
                return Err(InferError::Cancelled { done: passes as f64 / total as f64 });
            }
        }
        let mean = sum.expect("at least the unflipped pass") / flips.len() as f64;
        let classes = mean.dims()[1];
        let values = mean.into_data().convert::<f32>().try_into_vec::<f32>().map_err(|e| InferError::Input(format!("reading the network's output: {e:?}")))?;
        let accumulator = accumulator.get_or_insert_with(|| Accumulator::new(classes, [gd, gh, gw]));
        let per_window = values.len() / batch.len();
        for (&start, window) in batch.iter().zip(values.chunks_exact(per_window)) {
            accumulator.add(start, patch, window, &blend);
        }
    }
    let accumulator = accumulator.expect("at least one window");
    let classes = accumulator.classes();
    let probabilities = accumulator.finish(offset, size);
    Ok(Tensor::from_data(TensorData::new(probabilities, [1, classes, size[0], size[1], size[2]]), &padded.device()))
}

/// The label of every voxel, `argmax` over the classes: (1, 1, D, H, W) from probabilities
/// (1, classes, D, H, W). For sigmoid outputs (multi-label) threshold each class instead
/// (`probabilities.greater_elem(0.5)`).
pub fn argmax_labels(probabilities: Tensor<5>) -> Tensor<5, Int> {
    probabilities.argmax(1)
}

/// Refuses a volume, config or patch the model cannot run, before any window runs.
fn check_shapes<M: WindowModel + ?Sized>(model: &M, shape: [usize; 5], config: &SlidingWindowConfig) -> Result<(), InferError> {
    config.validate()?;
    if shape[0] != 1 || shape[1] == 0 || shape[2..].contains(&0) {
        return Err(InferError::Input(format!("expected one volume (1, C, D, H, W) with C, D, H, W at least 1, got {shape:?}")));
    }
    let multiple = model.size_multiple();
    let patch = config.patch_size;
    for (axis, name) in ["D", "H", "W"].iter().enumerate() {
        let fits = patch[axis].is_multiple_of(multiple) || (axis == 0 && patch[axis] == 1);
        if !fits {
            return Err(InferError::Config(format!(
                "patch_size {patch:?}: {name} = {} is not a multiple of {multiple}, the network's size multiple (D may also be 1)",
                patch[axis]
            )));
        }
    }
    model.check_window([1, shape[1], patch[0], patch[1], patch[2]])
}

fn check_output(dims: [usize; 5], windows: usize, patch: [usize; 3]) -> Result<(), InferError> {
    if dims[0] == windows && dims[1] > 0 && dims[2..] == patch {
        return Ok(());
    }
    Err(InferError::Input(format!("the network gave {dims:?} for {windows} windows of {patch:?}; expected (N, classes) and the window's size")))
}

/// Pads every axis shorter than the patch up to it, half before and the rest after
/// (nnU-Net's `pad_nd_image`); returns the padded volume and where the input starts in it.
fn pad_to_patch(volume: Tensor<5>, patch: [usize; 3], value: f32) -> (Tensor<5>, [usize; 3]) {
    let dims = volume.dims();
    let pads = [0, 1, 2].map(|a| {
        let missing = patch[a].saturating_sub(dims[a + 2]);
        (missing / 2, missing - missing / 2)
    });
    if pads.iter().all(|&(before, after)| before + after == 0) {
        return (volume, [0; 3]);
    }
    let padded = volume.pad([(0, 0), (0, 0), pads[0], pads[1], pads[2]], PadMode::Constant(value));
    (padded, pads.map(|(before, _)| before))
}

fn window_ranges(channels: usize, start: [usize; 3], patch: [usize; 3]) -> [std::ops::Range<usize>; 5] {
    [0..1, 0..channels, start[0]..start[0] + patch[0], start[1]..start[1] + patch[1], start[2]..start[2] + patch[2]]
}

/// Flips the tensor axes in `axes` (none, one, two or three of 2, 3, 4).
fn flip_axes(x: Tensor<5>, axes: &[usize]) -> Tensor<5> {
    match *axes {
        [] => x,
        [a] => x.flip([a]),
        [a, b] => x.flip([a, b]),
        [a, b, c] => x.flip([a, b, c]),
        _ => unreachable!("at most three spatial axes"),
    }
}

fn activate(logits: Tensor<5>, activation: OutputActivation) -> Tensor<5> {
    match activation {
        OutputActivation::Softmax => burn::tensor::activation::softmax(logits, 1),
        OutputActivation::Sigmoid => burn::tensor::activation::sigmoid(logits),
        OutputActivation::None => logits,
    }
}

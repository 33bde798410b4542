//! Image-level prediction with a stored model: a case's channel images become the (C, D, H, W)
//! tensor training builds ([`stack_channels`]), normalised as the model's metadata says, run
//! through sliding-window inference ([`medas_nn::infer::predict`]: Gaussian blending, optional
//! mirror flips), and the class probabilities and their arg-max come back as images on the
//! input's grid.
//!
//! Axes: the tensor's (D, H, W) are the image's index axes (k, j, i), so a label map or
//! probability map written with the first input's geometry (origin, spacing, direction) has its
//! voxel (i, j, k) where the input has it. A 4-D input (modalities on the 4th axis) gives 3-D
//! outputs with the first three axes' geometry.
//!
//! Outputs of [`predict_case_files`] in `OUT`: `CASE.nrrd` (uint8 class per voxel) and, when
//! asked, `CASE_probabilities.nrrd` (float32, one vector component per class, class 0 first;
//! the components of a voxel sum to 1).
//!
//! What the model needs is read from its metadata's `training` entry (the training config
//! `medas train` stores): `normalization`, `labels` (how a case's label becomes classes, for
//! Dice) and `sampler.patch` (the window size, unless one is given).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use medas_image::{Geometry, Image, Voxels};
use medas_nn::infer::{Flips, InferError, SlidingWindowConfig};
use medas_nn::store::{LoadedModel, ModelMetadata};
use serde::{Deserialize, Serialize};

use crate::data::{DataError, LabelMode, Normalization, label_classes, stack_channels};

#[derive(Debug, thiserror::Error)]
pub enum PredictError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Infer(#[from] InferError),
    /// An input that cannot be read (the message names the file).
    #[error(transparent)]
    Read(#[from] medas_io::IoError),
    #[error("{0}")]
    Model(String),
    #[error("{path}: {message}")]
    Write { path: PathBuf, message: String },
}

/// How a model's inputs were prepared in training (from its metadata).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preprocessing {
    pub normalization: Normalization,
    pub labels: LabelMode,
    /// The training patch (D, H, W), when known.
    pub patch: Option<[usize; 3]>,
}

impl Preprocessing {
    /// Reads `training.normalization`, `training.labels` and `training.sampler.patch`; absent
    /// entries give z-score, class indices and no patch.
    pub fn of(metadata: &ModelMetadata) -> Result<Preprocessing, PredictError> {
        let training = &metadata.training;
        let field = |key: &str| training.get(key).cloned().filter(|v| !v.is_null());
        let bad = |key: &str, e: serde_json::Error| PredictError::Model(format!("model metadata: training.{key}: {e}"));
        let normalization = field("normalization").map_or(Ok(Normalization::default()), |v| serde_json::from_value(v).map_err(|e| bad("normalization", e)))?;
        let labels = field("labels").map_or(Ok(LabelMode::default()), |v| serde_json::from_value(v).map_err(|e| bad("labels", e)))?;
        let patch = match training.get("sampler").and_then(|s| s.get("patch")).cloned() {
            Some(v) => Some(serde_json::from_value(v).map_err(|e| bad("sampler.patch", e))?),
            None => None,
        };
        Ok(Preprocessing { normalization, labels, patch })
    }
}

/// Sliding-window settings a caller may choose.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictOptions {
    /// Window (D, H, W); default: the model's training patch.
    pub patch: Option<[usize; 3]>,
    /// Fraction of a window shared with its neighbour, in [0, 1).
    pub overlap: f64,
    /// Test-time augmentation: every mirror image of the window, averaged.
    pub flips: bool,
    /// Windows per forward pass.
    pub batch_size: usize,
}

impl Default for PredictOptions {
    fn default() -> Self {
        PredictOptions { patch: None, overlap: 0.5, flips: false, batch_size: 1 }
    }
}

/// A case's prediction on the input's grid.
#[derive(Debug, Clone)]
pub struct Prediction {
    /// uint8 class per voxel.
    pub labels: Image,
    /// float32, one component per class.
    pub probabilities: Image,
    /// The classes (D, H, W) in tensor order, for Dice against a label.
    pub classes: Vec<u8>,
}

/// A stored model ready to predict.
pub struct Predictor {
    name: String,
    model: LoadedModel,
    preprocessing: Preprocessing,
    window: SlidingWindowConfig,
    device: Device,
}

impl Predictor {
    /// `model` (loaded on `device`) as store model `name`, with `options` over its metadata.
    pub fn new(name: &str, model: LoadedModel, options: &PredictOptions, device: Device) -> Result<Predictor, PredictError> {
        let preprocessing = Preprocessing::of(&model.metadata)?;
        let patch = options.patch.or(preprocessing.patch).ok_or_else(|| PredictError::Model(format!("model {name} records no training patch size; give one (--patch D,H,W)")))?;
        let mut window = SlidingWindowConfig::new(patch);
        window.overlap = options.overlap;
        window.batch_size = options.batch_size;
        window.flips = if options.flips { Flips::All } else { Flips::None };
        window.validate()?;
        if model.config.classes() > 256 {
            return Err(PredictError::Model(format!("model {name} has {} classes; label maps hold at most 256", model.config.classes())));
        }
        Ok(Predictor { name: name.to_string(), model, preprocessing, window, device })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn preprocessing(&self) -> &Preprocessing {
        &self.preprocessing
    }

    pub fn classes(&self) -> usize {
        self.model.config.classes()
    }

    pub fn in_channels(&self) -> usize {
        self.model.config.in_channels()
    }

    /// Predicts case `id` from its channel images (each named for messages; the first one's
    /// geometry is the output's). `progress` gets the fraction done; `false` cancels.
    pub fn predict(&self, id: &str, images: &[(String, Image)], progress: &mut dyn FnMut(f64) -> bool) -> Result<Prediction, PredictError> {
        let (shape, values) = stack_channels(id, images, self.preprocessing.normalization)?;
        let [c, d, h, w] = shape;
        if c != self.in_channels() {
            return Err(PredictError::Model(format!("case {id}: model {} takes {} input channel(s), the image has {c}", self.name, self.in_channels())));
        }
        let volume = Tensor::<5>::from_data(TensorData::new(values, [1, c, d, h, w]), &self.device);
        let output = medas_nn::infer::predict(&self.model.network, volume, &self.window, &mut *progress)?;
        let probabilities: Vec<f32> = output.into_data().convert::<f32>().try_into_vec::<f32>().map_err(|e| PredictError::Model(format!("reading the probabilities: {e:?}")))?;
        let classes = arg_max(&probabilities, self.classes());
        let first = &images[0].1;
        let spatial = &first.size()[..first.dimension().min(3)];
        let geometry = first.geometry().with_dimension(spatial.len());
        Ok(Prediction { labels: label_image(spatial, &classes, &geometry)?, probabilities: probability_image(spatial, probabilities, self.classes(), &geometry)?, classes })
    }
}

/// The class of highest probability per voxel (the first on ties), from (classes, voxels).
fn arg_max(probabilities: &[f32], classes: usize) -> Vec<u8> {
    let voxels = probabilities.len() / classes.max(1);
    (0..voxels)
        .map(|v| {
            let mut best = 0;
            for c in 1..classes {
                if probabilities[c * voxels + v] > probabilities[best * voxels + v] {
                    best = c;
                }
            }
            best as u8
        })
        .collect()
}

/// Tensor order (k, j, i) in C order is the Fortran order of index axes (i, j, k): no copy.
fn label_image(spatial: &[usize], classes: &[u8], geometry: &Geometry) -> Result<Image, PredictError> {
    let voxels = Voxels::from_fortran_vec(spatial, classes.to_vec()).map_err(image_error)?;
    Image::new(voxels, geometry.clone()).map_err(image_error)
}

/// Class planes one after the other are the Fortran order of (i, j, k, class).
fn probability_image(spatial: &[usize], probabilities: Vec<f32>, classes: usize, geometry: &Geometry) -> Result<Image, PredictError> {
    let shape: Vec<usize> = spatial.iter().copied().chain((classes > 1).then_some(classes)).collect();
    let voxels = Voxels::from_fortran_vec(&shape, probabilities).map_err(image_error)?;
    Image::with_components(voxels, classes, geometry.clone()).map_err(image_error)
}

fn image_error(e: medas_image::ImageError) -> PredictError {
    PredictError::Model(format!("building the output image: {e}"))
}

/// Dice of every foreground class (1..classes) between two class maps of the same grid; a
/// class absent from both counts 1 (as in validation).
pub fn dice_per_class(predicted: &[u8], truth: &[u8], classes: usize) -> Vec<f64> {
    let mut both = vec![0usize; classes];
    let mut ours = vec![0usize; classes];
    let mut theirs = vec![0usize; classes];
    for (&p, &t) in predicted.iter().zip(truth) {
        ours[p as usize] += 1;
        theirs[t as usize] += 1;
        if p == t {
            both[p as usize] += 1;
        }
    }
    (1..classes).map(|c| if ours[c] + theirs[c] == 0 { 1.0 } else { 2.0 * both[c] as f64 / (ours[c] + theirs[c]) as f64 }).collect()
}

/// One case to predict: its channel images and, for Dice, its label.
#[derive(Debug, Clone)]
pub struct CaseInput {
    pub id: String,
    pub images: Vec<PathBuf>,
    pub label: Option<PathBuf>,
}

/// What [`predict_case_files`] wrote and measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseSummary {
    pub id: String,
    pub labels: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probabilities: Option<PathBuf>,
    /// Dice per foreground class (by class index), when the case has a label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dice: Option<BTreeMap<String, f64>>,
    /// Mean of `dice` over the foreground classes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_dice: Option<f64>,
}

/// Reads a case, predicts it, writes `OUT/ID.nrrd` (and `OUT/ID_probabilities.nrrd` when
/// `probabilities`), and measures Dice against its label when it has one.
pub fn predict_case_files(predictor: &Predictor, case: &CaseInput, out: &Path, probabilities: bool, progress: &mut dyn FnMut(f64) -> bool) -> Result<CaseSummary, PredictError> {
    let images = case.images.iter().map(|path| Ok((path.display().to_string(), medas_io::read(path)?))).collect::<Result<Vec<_>, PredictError>>()?;
    let prediction = predictor.predict(&case.id, &images, progress)?;
    let write = |image: &Image, path: PathBuf| medas_io::write(image, &path).map(|()| path.clone()).map_err(|e| PredictError::Write { path, message: e.to_string() });
    let labels = write(&prediction.labels, out.join(format!("{}.nrrd", case.id)))?;
    let probabilities = match probabilities {
        true => Some(write(&prediction.probabilities, out.join(format!("{}_probabilities.nrrd", case.id)))?),
        false => None,
    };
    let dice = match &case.label {
        Some(path) => {
            let truth = label_classes(&case.id, path, tensor_shape(&prediction.labels), predictor.preprocessing.labels, predictor.classes())?;
            Some(dice_per_class(&prediction.classes, &truth, predictor.classes()))
        }
        None => None,
    };
    let mean_dice = dice.as_ref().map(|d| d.iter().sum::<f64>() / d.len().max(1) as f64);
    let dice = dice.map(|d| d.into_iter().enumerate().map(|(c, v)| ((c + 1).to_string(), v)).collect());
    Ok(CaseSummary { id: case.id.clone(), labels, probabilities, dice, mean_dice })
}

/// (1, D, H, W) of a scalar image with index axes (i[, j[, k]]).
fn tensor_shape(image: &Image) -> [usize; 4] {
    let axis = |n: usize| image.size().get(n).copied().unwrap_or(1);
    [1, axis(2), axis(1), axis(0)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dice_counts_each_foreground_class_and_absent_classes_count_one() {
        let dice = dice_per_class(&[0, 1, 1, 2], &[0, 1, 2, 2], 4);
        assert_eq!(dice, vec![2.0 / 3.0, 2.0 / 3.0, 1.0]);
    }

    #[test]
    fn arg_max_takes_the_first_class_on_ties() {
        // Two classes of two voxels, class planes one after the other.
        assert_eq!(arg_max(&[0.5, 0.2, 0.5, 0.8], 2), vec![0, 1]);
    }

    #[test]
    fn preprocessing_comes_from_the_stored_training_config() {
        let mut metadata = ModelMetadata::default();
        assert_eq!(Preprocessing::of(&metadata).unwrap(), Preprocessing { normalization: Normalization::Zscore, labels: LabelMode::Classes, patch: None });
        metadata.training = serde_json::json!({"normalization": {"kind": "clip_zscore", "low": -100.0, "high": 300.0}, "labels": "foreground", "sampler": {"patch": [1, 32, 48]}});
        let read = Preprocessing::of(&metadata).unwrap();
        assert_eq!(read, Preprocessing { normalization: Normalization::ClipZscore { low: -100.0, high: 300.0 }, labels: LabelMode::Foreground, patch: Some([1, 32, 48]) });
        metadata.training["labels"] = serde_json::json!("instances");
        let error = Preprocessing::of(&metadata).unwrap_err().to_string();
        assert!(error.starts_with("model metadata: training.labels: unknown variant `instances`"), "{error}");
    }
}

//! Cases to tensors: every channel image read, put in (C, D, H, W) order, normalised; the label
//! map as class indices (D, H, W).

use std::path::{Path, PathBuf};

use medas_image::Image;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("case {case}: {message}")]
    Case { case: String, message: String },
    #[error("class labels: {0}")]
    Classes(String),
}

/// How intensities are brought to a common scale before training.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Normalization {
    /// Per image and channel: (x - mean) / std (nnU-Net's default for MR and microscopy).
    #[default]
    Zscore,
    /// Clip to [low, high] (e.g. a CT window in HU), then z-score with the clipped image's
    /// mean and std.
    ClipZscore { low: f32, high: f32 },
    /// Values as read.
    None,
}

/// How label values become classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LabelMode {
    /// Values are class indices 0..classes.
    #[default]
    Classes,
    /// Every value above 0 is class 1 (instance masks, e.g. nuclei).
    Foreground,
}

/// One case in tensor order.
#[derive(Debug, Clone)]
pub struct Volume {
    pub id: String,
    /// Channels, then D, H, W.
    pub shape: [usize; 4],
    pub image: Vec<f32>,
    /// Class per voxel (D, H, W), when the case has a label.
    pub label: Option<Vec<u8>>,
    /// The case's class for classifiers (index into the run's class names; see
    /// [`crate::classes`]), when the dataset gives one per case.
    pub class: Option<usize>,
}

impl Volume {
    pub fn spatial(&self) -> [usize; 3] {
        [self.shape[1], self.shape[2], self.shape[3]]
    }

    pub fn voxels(&self) -> usize {
        self.shape[1] * self.shape[2] * self.shape[3]
    }
}

fn read(path: &Path) -> Result<Image, DataError> {
    medas_io::read(path).map_err(|e| DataError::Read { path: path.to_path_buf(), message: e.to_string() })
}

/// The image's values as (components, k, j, i) in C order, and that shape with D = 1 for 2-D.
fn tensor_order(image: &Image) -> ([usize; 4], Vec<f32>) {
    let size = image.size(); // index axes, without the component axis
    let (i, j, k) = (size[0], size.get(1).copied().unwrap_or(1), size.get(2).copied().unwrap_or(1));
    // A 4th index axis (MSD keeps modalities there) counts as channels, like components.
    let channels = image.components() * size.iter().skip(3).product::<usize>();
    // Index order [i, j, k, (t,) c] reversed is (c, (t,) k, j, i): its standard iteration is
    // C order of (channels, D, H, W).
    let values = image.voxels().cast::<f32>();
    let reversed = values.view().reversed_axes();
    ([channels, k, j, i], reversed.iter().copied().collect())
}

fn normalise(values: &mut [f32], normalization: Normalization) {
    if let Normalization::ClipZscore { low, high } = normalization {
        values.iter_mut().for_each(|v| *v = v.clamp(low, high));
    }
    if normalization == Normalization::None || values.is_empty() {
        return;
    }
    let n = values.len() as f64;
    let mean = values.iter().map(|&v| v as f64).sum::<f64>() / n;
    let variance = values.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    let scale = 1.0 / variance.sqrt().max(1e-8);
    values.iter_mut().for_each(|v| *v = ((*v as f64 - mean) * scale) as f32);
}

/// Reads one case: its channel images (each normalised per channel) stacked, and its label.
pub fn load_case(id: &str, images: &[PathBuf], label: Option<&Path>, normalization: Normalization, labels: LabelMode, classes: usize) -> Result<Volume, DataError> {
    let read_images = images.iter().map(|path| Ok((path.display().to_string(), read(path)?))).collect::<Result<Vec<_>, DataError>>()?;
    let (shape, stacked) = stack_channels(id, &read_images, normalization)?;
    let label = match label {
        Some(path) => Some(label_classes(id, path, shape, labels, classes)?),
        None => None,
    };
    Ok(Volume { id: id.to_string(), shape, image: stacked, label, class: None })
}

/// The channel images of one case (each named for messages) in tensor order (C, D, H, W),
/// each channel normalised on its own: what the network sees in training and in prediction.
pub fn stack_channels(id: &str, images: &[(String, Image)], normalization: Normalization) -> Result<([usize; 4], Vec<f32>), DataError> {
    let case_error = |message: String| DataError::Case { case: id.to_string(), message };
    let mut shape: Option<[usize; 4]> = None;
    let mut stacked = Vec::new();
    for (name, image) in images {
        let ([c, d, h, w], mut values) = tensor_order(image);
        if let Some([_, d0, h0, w0]) = shape
            && [d0, h0, w0] != [d, h, w]
        {
            return Err(case_error(format!("{name} has size {w}x{h}x{d}, the first channel {w0}x{h0}x{d0}")));
        }
        let plane = d * h * w;
        values.chunks_mut(plane.max(1)).for_each(|channel| normalise(channel, normalization));
        stacked.extend(values);
        shape = Some(match shape {
            Some([c0, ..]) => [c0 + c, d, h, w],
            None => [c, d, h, w],
        });
    }
    let shape = shape.ok_or_else(|| case_error("no image".into()))?;
    Ok((shape, stacked))
}

/// The label map at `path` as classes (D, H, W), checked against the image's shape.
pub fn label_classes(id: &str, path: &Path, shape: [usize; 4], labels: LabelMode, classes: usize) -> Result<Vec<u8>, DataError> {
    let case_error = |message: String| DataError::Case { case: id.to_string(), message };
    let ([c, d, h, w], values) = tensor_order(&read(path)?);
    if c != 1 || [d, h, w] != [shape[1], shape[2], shape[3]] {
        return Err(case_error(format!("label {} is {c}x{w}x{h}x{d}, the image {}x{}x{}", path.display(), shape[3], shape[2], shape[1])));
    }
    classes_of(&values, labels, classes).map_err(|m| case_error(format!("label {}: {m}", path.display())))
}

fn classes_of(values: &[f32], mode: LabelMode, classes: usize) -> Result<Vec<u8>, String> {
    match mode {
        LabelMode::Foreground => Ok(values.iter().map(|&v| u8::from(v > 0.0)).collect()),
        LabelMode::Classes => values
            .iter()
            .map(|&v| {
                if v >= 0.0 && v.fract() == 0.0 && (v as usize) < classes.min(256) {
                    Ok(v as u8)
                } else {
                    Err(format!("value {v} is not a class index below {classes} (use labels \"foreground\" for instance masks)"))
                }
            })
            .collect(),
    }
}

/// Loads the cases of a dataset manifest whose ids are in `ids` (all when `None`), in parallel.
pub fn load_manifest_cases(manifest: &medas_dataset::Manifest, ids: Option<&[String]>, normalization: Normalization, labels: LabelMode, classes: usize) -> Result<Vec<Volume>, DataError> {
    use rayon::prelude::*;
    let cases: Vec<_> = manifest.cases.iter().filter(|c| ids.is_none_or(|ids| ids.contains(&c.id))).collect();
    cases
        .par_iter()
        .map(|case| {
            let images: Vec<PathBuf> = case.images.iter().map(|e| e.path.clone()).collect();
            load_case(&case.id, &images, case.label.as_ref().map(|e| e.path.as_path()), normalization, labels, classes)
        })
        .collect()
}

/// Loads the cases of an imported (not yet registered) dataset, in parallel.
pub fn load_dataset_cases(dataset: &medas_dataset::Dataset, normalization: Normalization, labels: LabelMode, classes: usize) -> Result<Vec<Volume>, DataError> {
    use rayon::prelude::*;
    dataset.cases.par_iter().map(|case| load_case(&case.id, &case.images, case.label.as_deref(), normalization, labels, classes)).collect()
}

//! Classifier batches and validation. A classifier sees whole cases, each brought to the
//! network's input size (`sampler.patch`, (D, H, W)) by a centre crop or zero padding per axis:
//! the window starts at `(size - input) / 2` rounded toward zero, so an odd surplus loses (or an
//! odd shortfall pads) one voxel more at the far end. An input depth of 1 on a volume takes its
//! middle slice (a 2-D classifier on 3-D data).
//!
//! Batch `n` depends only on the seed and `n` (as with [`crate::sampler`]): each item draws a
//! class uniformly among the classes present, then one of its cases (class-balanced batches),
//! then, with `sampler.flips`, a random flip of every axis longer than 1. `foreground_fraction`,
//! `rot90` and `augmentations` do not apply to classifiers. Batches are made on a worker thread,
//! two ahead.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};

use burn::module::Module;
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor, TensorData};
use medas_dataset::split::SplitMix64;
use medas_nn::{ComputeDevice, Network, NetworkOutput};

use crate::classes::{accuracy, classifier_auc};
use crate::data::Volume;
use crate::sampler::{Batch, SamplerConfig};
use crate::train::TrainError;

/// The values of `volume` (C, D, H, W) centre-cropped or zero-padded to `input` (D, H, W).
pub fn fit_to_input(volume: &Volume, input: [usize; 3]) -> Vec<f32> {
    let size = volume.spatial();
    let start: [i64; 3] = std::array::from_fn(|a| (size[a] as i64 - input[a] as i64) / 2);
    let [id, ih, iw] = input;
    let mut out = vec![0f32; volume.shape[0] * id * ih * iw];
    // The output columns whose source x lies inside the volume.
    let x0 = (-start[2]).max(0) as usize;
    let x1 = (size[2] as i64 - start[2]).clamp(0, iw as i64) as usize;
    if x0 >= x1 {
        return out;
    }
    for c in 0..volume.shape[0] {
        for d in 0..id {
            let z = d as i64 + start[0];
            for h in 0..ih {
                let y = h as i64 + start[1];
                if z < 0 || y < 0 || z >= size[0] as i64 || y >= size[1] as i64 {
                    continue;
                }
                let source = ((c * size[0] + z as usize) * size[1] + y as usize) * size[2];
                let from = source + (x0 as i64 + start[2]) as usize;
                let to = ((c * id + d) * ih + h) * iw + x0;
                out[to..to + x1 - x0].copy_from_slice(&volume.image[from..from + x1 - x0]);
            }
        }
    }
    out
}

/// Reverses the axes marked in `flips` of every channel of a (C, D, H, W) block.
fn flip(values: &[f32], input: [usize; 3], flips: [bool; 3]) -> Vec<f32> {
    let [id, ih, iw] = input;
    let mirror = |i: usize, n: usize, on: bool| if on { n - 1 - i } else { i };
    let mut out = Vec::with_capacity(values.len());
    for channel in values.chunks(id * ih * iw) {
        for d in 0..id {
            for h in 0..ih {
                let row = (mirror(d, id, flips[0]) * ih + mirror(h, ih, flips[1])) * iw;
                out.extend((0..iw).map(|w| channel[row + mirror(w, iw, flips[2])]));
            }
        }
    }
    out
}

/// Seeded, class-balanced batches of whole cases at the network's input size.
pub struct CaseSampler {
    /// Every case fitted to the input size once, up front.
    inputs: Vec<Vec<f32>>,
    /// Case indices per class, for the classes that have cases.
    by_class: Vec<Vec<usize>>,
    classes: Vec<usize>,
    channels: usize,
    config: SamplerConfig,
    seed: u64,
}

impl CaseSampler {
    /// `volumes` must all have a class (checked by the trainer).
    pub fn new(volumes: &[Volume], config: SamplerConfig, seed: u64) -> CaseSampler {
        use rayon::prelude::*;
        let inputs = volumes.par_iter().map(|v| fit_to_input(v, config.patch)).collect();
        let classes: Vec<usize> = volumes.iter().map(|v| v.class.unwrap_or(0)).collect();
        let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); classes.iter().max().map_or(0, |m| m + 1)];
        classes.iter().enumerate().for_each(|(case, &class)| by_class[class].push(case));
        by_class.retain(|cases| !cases.is_empty());
        let channels = volumes.first().map_or(0, |v| v.shape[0]);
        CaseSampler { inputs, by_class, classes, channels, config, seed }
    }

    /// Batch number `n`: images (B, C, D, H, W) and classes (B).
    pub fn batch(&self, n: u64) -> Batch {
        let [id, ih, iw] = self.config.patch;
        let mut image = Vec::with_capacity(self.config.batch_size * self.channels * id * ih * iw);
        let mut label = Vec::with_capacity(self.config.batch_size);
        for b in 0..self.config.batch_size {
            let mut rng = SplitMix64::new(self.seed ^ n.wrapping_mul(0xA076_1D64_78BD_642F) ^ (b as u64).wrapping_mul(0xE703_7ED1_A0B4_28DB));
            let cases = &self.by_class[rng.below(self.by_class.len() as u64) as usize];
            let case = cases[rng.below(cases.len() as u64) as usize];
            let flips: [bool; 3] = std::array::from_fn(|a| self.config.flips && self.config.patch[a] > 1 && rng.next_u64() & 1 == 1);
            image.extend(flip(&self.inputs[case], self.config.patch, flips));
            label.push(self.classes[case] as i64);
        }
        Batch { shape: [self.config.batch_size, self.channels, id, ih, iw], image, label }
    }

    /// Batches `first..first + count` made on a worker thread, at most two ahead (as results,
    /// like the patch sampler's; these never fail).
    pub fn prefetch(self: &Arc<Self>, first: u64, count: u64) -> Receiver<Result<Batch, String>> {
        let (sender, receiver) = sync_channel(2);
        let sampler = Arc::clone(self);
        std::thread::spawn(move || (first..first + count).all(|n| sender.send(Ok(sampler.batch(n))).is_ok()));
        receiver
    }
}

/// How well a classifier does on whole validation cases (fitted like the training inputs, not
/// flipped): accuracy, and the AUC when it is defined (see [`classifier_auc`]).
pub fn validate_classifier(network: &Network, cases: &[Volume], device: ComputeDevice, input: [usize; 3], classes: usize) -> Result<(f64, Option<f64>), TrainError> {
    const CHUNK: usize = 8;
    let model = network.valid();
    let device: Device = device.open().map_err(|e| TrainError::Config(e.to_string()))?;
    let [id, ih, iw] = input;
    let mut probabilities = Vec::with_capacity(cases.len() * classes);
    for chunk in cases.chunks(CHUNK) {
        let values: Vec<f32> = chunk.iter().flat_map(|case| fit_to_input(case, input)).collect();
        let x = Tensor::<5>::from_data(TensorData::new(values, [chunk.len(), chunk[0].shape[0], id, ih, iw]), &device);
        let logits = match model.forward(x).map_err(|e| TrainError::Failed(e.to_string()))? {
            NetworkOutput::Classes(logits) => logits,
            NetworkOutput::Segmentation(_) => return Err(TrainError::Failed("a segmentation network gives no class logits".into())),
        };
        let rows: Vec<f32> = softmax(logits, 1).into_data().convert::<f32>().try_into_vec().map_err(|e| TrainError::Failed(format!("{e:?}")))?;
        probabilities.extend(rows);
    }
    let truth: Vec<usize> = cases.iter().map(|c| c.class.expect("checked: every case has a class")).collect();
    Ok((accuracy(&probabilities, &truth, classes), classifier_auc(&probabilities, &truth, classes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(shape: [usize; 4]) -> Volume {
        let n = shape.iter().product::<usize>();
        Volume { id: "r".into(), shape, image: (1..=n).map(|v| v as f32).collect(), label: None, class: Some(0) }
    }

    #[test]
    fn fitting_crops_the_centre_and_pads_with_zeros() {
        // 1 x 1 x 3 x 5 (D, H, W): crop W 5 -> 3 starts at 1; pad H 3 -> 4 puts the rows at 0..3
        // ((3 - 4) / 2 rounds to 0), the 4th row zero.
        let fitted = fit_to_input(&ramp([1, 1, 3, 5]), [1, 4, 3]);
        assert_eq!(fitted, [2.0, 3.0, 4.0, 7.0, 8.0, 9.0, 12.0, 13.0, 14.0, 0.0, 0.0, 0.0]);
        // Padding W 2 -> 5 starts the values at column 1 ((2 - 5) / 2 = -1).
        let padded = fit_to_input(&ramp([2, 1, 1, 2]), [1, 1, 5]);
        assert_eq!(padded, [0.0, 1.0, 2.0, 0.0, 0.0, 0.0, 3.0, 4.0, 0.0, 0.0]);
        // Depth 1 from a volume of depth 3 is the middle slice.
        assert_eq!(fit_to_input(&ramp([1, 3, 1, 2]), [1, 1, 2]), [3.0, 4.0]);
    }

    #[test]
    fn flips_reverse_each_marked_axis() {
        let values: Vec<f32> = (0..8).map(|v| v as f32).collect(); // (D, H, W) = (2, 2, 2)
        assert_eq!(flip(&values, [2, 2, 2], [false, false, true]), [1.0, 0.0, 3.0, 2.0, 5.0, 4.0, 7.0, 6.0]);
        assert_eq!(flip(&values, [2, 2, 2], [true, false, false]), [4.0, 5.0, 6.0, 7.0, 0.0, 1.0, 2.0, 3.0]);
        assert_eq!(flip(&flip(&values, [2, 2, 2], [true; 3]), [2, 2, 2], [true; 3]), values);
    }

    #[test]
    fn batches_are_balanced_and_depend_only_on_seed_and_number() {
        let mut volumes: Vec<Volume> = (0..5).map(|_| ramp([1, 1, 2, 2])).collect();
        volumes[4].class = Some(1); // one case of class 1 among five
        let config = SamplerConfig { patch: [1, 2, 2], batch_size: 64, ..SamplerConfig::default() };
        let sampler = CaseSampler::new(&volumes, config.clone(), 7);
        let batch = sampler.batch(3);
        assert_eq!(batch, CaseSampler::new(&volumes, config, 7).batch(3));
        assert_ne!(batch, sampler.batch(4));
        let ones = batch.label.iter().filter(|&&c| c == 1).count();
        assert!((20..=44).contains(&ones), "class 1 drawn {ones} of 64 times, not about half");
    }
}

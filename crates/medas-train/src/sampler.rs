//! Training batches: patches drawn from the cases by a seeded generator, a share of them
//! centred on a foreground voxel (nnU-Net's over-sampling: small structures are seen often
//! enough), flipped and turned at random, then augmented by the catalog's augmentation tools
//! (see [`crate::augment`]), made on a worker thread a few batches ahead (the items of a batch
//! in parallel). Batch `n` depends only on the seed and `n`, so a run is reproducible and a
//! resumed run draws the same batches as an uninterrupted one.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};

use medas_dataset::split::SplitMix64;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::augment::{AugmentationStep, Augmenter, PatchValues};
use crate::data::Volume;

/// Batches made ahead of the training loop (a small bounded queue: enough to absorb a slow
/// batch, little memory).
pub const PREFETCH_DEPTH: usize = 3;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SamplerConfig {
    /// Patch size (D, H, W); D = 1 for 2-D.
    pub patch: [usize; 3],
    pub batch_size: usize,
    /// Share of patches centred on a random foreground voxel (the rest anywhere).
    pub foreground_fraction: f64,
    /// Random flips of every spatial axis.
    pub flips: bool,
    /// Random quarter turns in the H-W plane (square patches only).
    pub rot90: bool,
    /// Catalog augmentation tools run on every patch after the flips and turns, in order, e.g.
    /// `[{"tool": "augment.affine", "params": {"rotation_max": 30}, "probability": 0.2},
    /// {"tool": "augment.gaussian_noise", "params": {"std_max": 0.1}, "probability": 0.15}]`.
    /// Each step's seed is drawn per patch from the run's seed (no `seed` parameter);
    /// `augment.random_crop` is refused (patches are already random crops). See
    /// [`crate::augment`] for how patches meet the tools.
    pub augmentations: Vec<AugmentationStep>,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig { patch: [1, 128, 128], batch_size: 8, foreground_fraction: 0.33, flips: true, rot90: true, augmentations: Vec::new() }
    }
}

/// A batch: images (B, C, D, H, W) and labels (B, 1, D, H, W), C order.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub shape: [usize; 5],
    pub image: Vec<f32>,
    pub label: Vec<i64>,
}

pub struct PatchSampler {
    volumes: Arc<Vec<Volume>>,
    /// Foreground voxel indices (into D*H*W) per volume.
    foreground: Vec<Vec<u32>>,
    config: SamplerConfig,
    augmenter: Augmenter,
    seed: u64,
}

impl SamplerConfig {
    /// Checks the augmentation steps (tool ids, parameters, fixed patch shape); errors name the step.
    pub fn check_augmentations(&self) -> Result<(), String> {
        Augmenter::plan(&self.augmentations, self.patch).map(|_| ())
    }
}

/// The generator key of item `item` of batch `n`: its patch's draws and its augmentations'
/// seeds ([`crate::augment::step_draw`]) come from it.
pub fn item_key(seed: u64, n: u64, item: usize) -> u64 {
    seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (item as u64).wrapping_mul(0xD1B5_4A32_D192_ED03)
}

impl PatchSampler {
    /// Fails when an augmentation step does not check out ([`SamplerConfig::check_augmentations`]).
    pub fn new(volumes: Arc<Vec<Volume>>, config: SamplerConfig, seed: u64) -> Result<PatchSampler, String> {
        let augmenter = Augmenter::plan(&config.augmentations, config.patch)?;
        let foreground = volumes
            .par_iter()
            .map(|v| v.label.as_ref().map_or(Vec::new(), |l| l.iter().enumerate().filter(|(_, c)| **c > 0).map(|(i, _)| i as u32).collect()))
            .collect();
        Ok(PatchSampler { volumes, foreground, config, augmenter, seed })
    }

    pub fn channels(&self) -> usize {
        self.volumes.first().map_or(0, |v| v.shape[0])
    }

    /// Batch number `n`; fails only when an augmentation tool fails on a patch.
    pub fn batch(&self, n: u64) -> Result<Batch, String> {
        let [pd, ph, pw] = self.config.patch;
        let channels = self.channels();
        let items: Vec<(Vec<f32>, Vec<i64>)> = (0..self.config.batch_size)
            .into_par_iter()
            .map(|b| {
                let key = item_key(self.seed, n, b);
                let mut rng = SplitMix64::new(key);
                rng.next_u64();
                let (mut image, mut label) = self.patch(&mut rng);
                if !self.augmenter.is_empty() {
                    let mut values = PatchValues { image: &mut image, label: &mut label, channels, patch: self.config.patch };
                    self.augmenter.apply(key, &mut values).map_err(|e| format!("batch {n}, item {b}: {e}"))?;
                }
                Ok((image, label))
            })
            .collect::<Result<_, String>>()?;
        let mut image = Vec::with_capacity(self.config.batch_size * channels * pd * ph * pw);
        let mut label = Vec::with_capacity(self.config.batch_size * pd * ph * pw);
        for (i, l) in items {
            image.extend(i);
            label.extend(l);
        }
        Ok(Batch { shape: [self.config.batch_size, channels, pd, ph, pw], image, label })
    }

    fn patch(&self, rng: &mut SplitMix64) -> (Vec<f32>, Vec<i64>) {
        let case = rng.below(self.volumes.len() as u64) as usize;
        let volume = &self.volumes[case];
        let size = volume.spatial();
        let patch = self.config.patch;
        let foreground = &self.foreground[case];
        let wants_foreground = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= self.config.foreground_fraction;
        let start: [i64; 3] = if wants_foreground && !foreground.is_empty() {
            let at = foreground[rng.below(foreground.len() as u64) as usize] as usize;
            let centre = [at / (size[1] * size[2]), (at / size[2]) % size[1], at % size[2]];
            std::array::from_fn(|a| placed(centre[a] as i64 - patch[a] as i64 / 2, size[a], patch[a]))
        } else {
            std::array::from_fn(|a| {
                let free = size[a] as i64 - patch[a] as i64;
                if free > 0 { rng.below(free as u64 + 1) as i64 } else { free / 2 }
            })
        };
        let (mut image, mut label) = crop(volume, start, patch);
        let flips: [bool; 3] = std::array::from_fn(|a| self.config.flips && patch[a] > 1 && rng.next_u64() & 1 == 1);
        let turns = if self.config.rot90 && patch[1] == patch[2] { rng.below(4) as usize } else { 0 };
        let channels = volume.shape[0];
        transform(&mut image, channels, patch, flips, turns);
        transform(&mut label, 1, patch, flips, turns);
        (image, label)
    }

    /// Batches `first..first + count` made on a worker thread, at most [`PREFETCH_DEPTH`]
    /// ahead; the worker stops after the first failed batch.
    pub fn prefetch(self: &Arc<Self>, first: u64, count: u64) -> Receiver<Result<Batch, String>> {
        let (sender, receiver) = sync_channel(PREFETCH_DEPTH);
        let sampler = Arc::clone(self);
        std::thread::spawn(move || {
            for n in first..first + count {
                let batch = sampler.batch(n);
                let failed = batch.is_err();
                if sender.send(batch).is_err() || failed {
                    break; // the training loop stopped, or cannot go on
                }
            }
        });
        receiver
    }
}

/// A start that keeps the patch inside the volume where it fits, centred where it does not.
fn placed(start: i64, size: usize, patch: usize) -> i64 {
    let free = size as i64 - patch as i64;
    if free >= 0 { start.clamp(0, free) } else { free / 2 }
}

/// The patch at `start` (may reach outside: zeros there), image and label.
fn crop(volume: &Volume, start: [i64; 3], patch: [usize; 3]) -> (Vec<f32>, Vec<i64>) {
    let size = volume.spatial();
    let plane = volume.voxels();
    let mut image = vec![0f32; volume.shape[0] * patch.iter().product::<usize>()];
    let mut label = vec![0i64; patch.iter().product::<usize>()];
    for d in 0..patch[0] {
        for h in 0..patch[1] {
            let (z, y) = (start[0] + d as i64, start[1] + h as i64);
            if z < 0 || y < 0 || z >= size[0] as i64 || y >= size[1] as i64 {
                continue;
            }
            // The run of x inside the volume on this row.
            let x0 = start[2].max(0);
            let x1 = (start[2] + patch[2] as i64).min(size[2] as i64);
            if x0 >= x1 {
                continue;
            }
            let source = (z as usize * size[1] + y as usize) * size[2];
            let target = (d * patch[1] + h) * patch[2];
            let (from, to, len) = (source + x0 as usize, target + (x0 - start[2]) as usize, (x1 - x0) as usize);
            for c in 0..volume.shape[0] {
                let at = c * patch.iter().product::<usize>();
                image[at + to..at + to + len].copy_from_slice(&volume.image[c * plane + from..c * plane + from + len]);
            }
            if let Some(classes) = &volume.label {
                label[to..to + len].iter_mut().zip(&classes[from..from + len]).for_each(|(l, c)| *l = i64::from(*c));
            }
        }
    }
    (image, label)
}

/// Flips the axes marked in `flips`, then turns the H-W plane `turns` quarter turns
/// (counter-clockwise seen with H down, W right), channel by channel.
fn transform<T: Copy + Default>(values: &mut [T], channels: usize, patch: [usize; 3], flips: [bool; 3], turns: usize) {
    if !flips.iter().any(|f| *f) && turns == 0 {
        return;
    }
    let [pd, ph, pw] = patch;
    let volume = pd * ph * pw;
    let mut source = vec![T::default(); volume];
    for channel in values.chunks_mut(volume).take(channels) {
        source.copy_from_slice(channel);
        for d in 0..pd {
            for h in 0..ph {
                for w in 0..pw {
                    // Output (d, h, w) after the turns came from (h', w') before them.
                    let (mut y, mut x) = (h, w);
                    for _ in 0..turns {
                        (y, x) = (x, ph - 1 - y);
                    }
                    let z = if flips[0] { pd - 1 - d } else { d };
                    let y = if flips[1] { ph - 1 - y } else { y };
                    let x = if flips[2] { pw - 1 - x } else { x };
                    channel[(d * ph + h) * pw + w] = source[(z * ph + y) * pw + x];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_quarter_turns_and_double_flips_give_the_patch_back() {
        let original: Vec<i64> = (0..2 * 3 * 3).collect();
        let mut turned = original.clone();
        for _ in 0..4 {
            transform(&mut turned, 1, [2, 3, 3], [false; 3], 1);
        }
        assert_eq!(turned, original);
        let mut once = original.clone();
        transform(&mut once, 1, [2, 3, 3], [false; 3], 1);
        // One turn: row 0 of the output is the last column of the input read top to bottom... as
        // worked out: out(h, w) = in(w, 2 - h).
        assert_eq!(&once[..3], &[2, 5, 8]);
        let mut flipped = original.clone();
        transform(&mut flipped, 1, [2, 3, 3], [true, true, true], 0);
        assert_eq!(flipped[0], 17);
        transform(&mut flipped, 1, [2, 3, 3], [true, true, true], 0);
        assert_eq!(flipped, original);
    }

    #[test]
    fn crops_reach_outside_with_zeros_and_keep_image_and_label_aligned() {
        let volume = Volume { id: "v".into(), shape: [1, 1, 2, 3], image: (1..=6).map(|v| v as f32).collect(), label: Some(vec![0, 1, 0, 1, 0, 1]), class: None };
        let (image, label) = crop(&volume, [0, -1, 1], [1, 3, 3]);
        assert_eq!(image, [0.0, 0.0, 0.0, 2.0, 3.0, 0.0, 5.0, 6.0, 0.0]);
        assert_eq!(label, [0, 0, 0, 1, 0, 0, 0, 1, 0]);
    }
}

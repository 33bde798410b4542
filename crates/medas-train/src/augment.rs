//! On-the-fly augmentation with the catalog's augmentation tools (category `augment`): the
//! sampler runs a list of steps on every patch, each a tool id, its parameters and a
//! probability. Per patch, step `s` fires with its probability and runs with a seed drawn from
//! (run seed, batch n, item b, s) ([`step_draw`]), so batch n still depends only on the run's
//! seed and n, and a resumed run draws the same batches.
//!
//! How a patch meets a tool: the patch's values (C, D, H, W, W fastest) are an image whose
//! index axes i, j, k are W, H, D (k left out when D = 1), unit spacing, zero origin, identity
//! direction. Geometric tools (those with a label port: flip, rot90, affine, elastic) run once
//! per channel with the same seed, so every channel gets the same draw and the same transform
//! (elastic takes scalar images only); the label (u8 classes) goes with the first channel and
//! is resampled by nearest neighbour. Intensity tools (noise, blur, gamma,
//! brightness/contrast, bias field) run once on all channels as one multi-component image: one
//! draw for the patch, noise independent per channel, gamma and contrast on the patch's joint
//! range, one bias field for every channel.
//!
//! Affine and elastic steps sample from the patch itself: what maps outside it is the tool's
//! `fill_value` (0 by default, the z-scored mean) and class 0, as a crop-then-transform
//! pipeline does. Sampling a larger source region would avoid the zero corners at the price
//! of a bigger crop per patch; the patches are cut from the whole case at random places, so
//! the corners are a small share of what the network sees. `augment.random_crop` is refused:
//! the sampler's patches are already random crops of a fixed size (set `sampler.patch`).

use std::sync::Arc;

use medas_image::{Geometry, Image, VoxelArray, Voxels};
use medas_tools::tools::augment::{SplitMix64, unit};
use medas_tools::{Category, Context, Data, Inputs, Params, PortType, Registry, Tool, run_resolved};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One augmentation: a catalog tool, its parameters (without `seed`) and the probability that
/// it is applied to a patch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AugmentationStep {
    /// Tool id, e.g. `augment.affine` (`medas tools list`).
    pub tool: String,
    /// The tool's parameters; those left out take the tool's defaults.
    #[serde(default)]
    pub params: Map<String, Value>,
    /// Probability that the step runs on a patch (default 1).
    #[serde(default = "always")]
    pub probability: f64,
}

fn always() -> f64 {
    1.0
}

/// A checked step, ready to run.
struct Planned {
    tool: Arc<dyn Tool>,
    params: Map<String, Value>,
    probability: f64,
    /// The tool takes a label (a geometric tool): it runs per channel, the label with the first.
    moves_label: bool,
}

/// The checked steps of a sampler config.
pub(crate) struct Augmenter {
    steps: Vec<Planned>,
}

/// A patch's values and label: (C, D, H, W) and (D, H, W), W fastest.
pub(crate) struct PatchValues<'a> {
    pub image: &'a mut [f32],
    pub label: &'a mut [i64],
    pub channels: usize,
    /// (D, H, W).
    pub patch: [usize; 3],
}

impl Augmenter {
    /// Checks every step against the tool registry and runs it once on a small patch of the
    /// same dimension (so that the tools' own parameter checks apply); errors name the step.
    pub(crate) fn plan(steps: &[AugmentationStep], patch: [usize; 3]) -> Result<Augmenter, String> {
        let steps = steps.iter().enumerate().map(|(index, step)| plan_step(step, patch).map_err(|e| format!("sampler.augmentations[{index}]: {e}"))).collect::<Result<_, _>>()?;
        Ok(Augmenter { steps })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Runs the steps that fire for item `item_key`'s patch, in order.
    pub(crate) fn apply(&self, item_key: u64, values: &mut PatchValues) -> Result<(), String> {
        for (index, step) in self.steps.iter().enumerate() {
            let (uniform, seed) = step_draw(item_key, index);
            if uniform < step.probability {
                step.run(seed, values).map_err(|e| format!("augmentation {index}: {e}"))?;
            }
        }
        Ok(())
    }
}

/// The draw of step `step` for the patch whose generator key is `item_key`: a uniform in
/// [0, 1) (the step fires when it is below the probability) and the tool's seed (53 bits, the
/// range of the `seed` parameter). Outputs 2 s and 2 s + 1 of SplitMix64 seeded with the key
/// xor a constant, so that the patch's own draws (position, flips) are untouched.
pub fn step_draw(item_key: u64, step: usize) -> (f64, u64) {
    let key = item_key ^ 0xA5A5_5A5A_C3C3_3C3C;
    (unit(SplitMix64::at(key, 2 * step as u64)), SplitMix64::at(key, 2 * step as u64 + 1) >> 11)
}

fn plan_step(step: &AugmentationStep, patch: [usize; 3]) -> Result<Planned, String> {
    if !(0.0..=1.0).contains(&step.probability) {
        return Err(format!("probability must be in [0, 1], got {}", step.probability));
    }
    let tool = Arc::clone(Registry::global().get(&step.tool).map_err(|e| e.to_string())?);
    let spec = tool.spec();
    if spec.category != Category::Augment {
        let category = serde_json::to_value(spec.category).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        return Err(format!("{} is not an augmentation tool (category {category})", spec.id));
    }
    if spec.id == "augment.random_crop" {
        return Err("augment.random_crop would change the patch size; patches are already cut at random places (set sampler.patch)".into());
    }
    if step.params.contains_key("seed") {
        return Err(format!("{}: leave out \"seed\": every patch draws its own from the run's seed", spec.id));
    }
    let resolved = Params::resolve(spec, &step.params).map_err(|e| e.to_string())?;
    if spec.id == "augment.rot90" {
        square_plane(&resolved, patch)?;
    }
    let moves_label = spec.inputs.iter().any(|p| p.name == "label" && p.port_type == PortType::LabelImage);
    let planned = Planned { tool, params: step.params.clone(), probability: step.probability, moves_label };
    planned.dry_run(patch)?;
    Ok(planned)
}

/// Quarter turns keep the patch's shape only in a square plane (any seed may draw one turn).
fn square_plane(params: &Params, [d, h, w]: [usize; 3]) -> Result<(), String> {
    let plane = params.text("plane").map_err(|e| e.to_string())?;
    let size = |axis: char| match axis {
        'i' => w,
        'j' => h,
        _ => d,
    };
    let mut axes = plane.chars();
    let (a, b) = (axes.next().unwrap_or('i'), axes.next().unwrap_or('j'));
    // A 2-D patch has no ik or jk plane: the tool itself refuses those.
    if (d > 1 || plane == "ij") && size(a) != size(b) {
        return Err(format!("augment.rot90: the patch's {plane} plane is {} × {} voxels; quarter turns need a square plane (the sampler keeps the patch shape)", size(a), size(b)));
    }
    Ok(())
}

impl Planned {
    /// One run on a small patch whose axes keep the real patch's pattern of equal sizes (so a
    /// quarter turn of a non-square plane is caught): checks the parameters the tool checks
    /// when it runs and that the patch keeps its shape.
    fn dry_run(&self, patch: [usize; 3]) -> Result<(), String> {
        let mut sizes: Vec<usize> = patch.iter().copied().filter(|&s| s > 1).collect();
        sizes.sort_unstable();
        sizes.dedup();
        let small: [usize; 3] = std::array::from_fn(|a| if patch[a] == 1 { 1 } else { 5 + sizes.iter().position(|&s| s == patch[a]).unwrap_or(0) });
        let voxels = small.iter().product::<usize>();
        let mut image: Vec<f32> = (0..voxels).map(|n| (n % 7) as f32).collect();
        let mut label: Vec<i64> = (0..voxels).map(|n| (n % 2) as i64).collect();
        self.run(0, &mut PatchValues { image: &mut image, label: &mut label, channels: 1, patch: small })
    }

    fn run(&self, seed: u64, values: &mut PatchValues) -> Result<(), String> {
        let mut params = self.params.clone();
        params.insert("seed".into(), Value::from(seed));
        let params = Params::resolve(self.tool.spec(), &params).map_err(|e| e.to_string())?;
        let shape = spatial_shape(values.patch);
        let per_patch = shape.iter().product::<usize>();
        if !self.moves_label {
            let image = patch_image(&shape, values.channels, values.image.to_vec())?;
            let outputs = self.call(image, None, &params)?;
            return read_back(&outputs, "image", &shape, values.channels, values.image).map_err(|e| format!("{} {e}", self.tool.spec().id));
        }
        for (channel, image_values) in values.image.chunks_mut(per_patch).enumerate() {
            let image = patch_image(&shape, 1, image_values.to_vec())?;
            let label = (self.moves_label && channel == 0).then(|| values.label.iter().map(|&c| c.clamp(0, 255) as u8).collect::<Vec<u8>>());
            let label = label.map(|classes| patch_image(&shape, 1, classes)).transpose()?;
            let outputs = self.call(image, label, &params)?;
            let id = &self.tool.spec().id;
            read_back(&outputs, "image", &shape, 1, image_values).map_err(|e| format!("{id} {e}"))?;
            if self.moves_label && channel == 0 {
                read_back(&outputs, "label", &shape, 1, values.label).map_err(|e| format!("{id} {e}"))?;
            }
        }
        Ok(())
    }

    fn call(&self, image: Image, label: Option<Image>, params: &Params) -> Result<medas_tools::Outputs, String> {
        let mut inputs = Inputs::from([("image".to_string(), Data::Image(image))]);
        if let Some(label) = label {
            inputs.insert("label".into(), Data::Image(label));
        }
        run_resolved(self.tool.as_ref(), inputs, params, &Context::default()).map_err(|e| e.to_string())
    }
}

/// The image axes (i, j[, k]) = (W, H[, D]) of a (D, H, W) patch.
fn spatial_shape([d, h, w]: [usize; 3]) -> Vec<usize> {
    if d == 1 { vec![w, h] } else { vec![w, h, d] }
}

/// A (C, D, H, W) buffer, W fastest, is the Fortran layout of (W, H, D, C): wrapped, not copied.
fn patch_image<T: VoxelArray>(spatial: &[usize], channels: usize, values: Vec<T>) -> Result<Image, String> {
    let mut shape = spatial.to_vec();
    if channels > 1 {
        shape.push(channels);
    }
    let voxels = Voxels::from_fortran_vec(&shape, values).map_err(|e| e.to_string())?;
    Image::with_components(voxels, channels, Geometry::identity(spatial.len())).map_err(|e| e.to_string())
}

/// Output `port` copied back into `target` (Fortran order), checked to have the patch's shape.
fn read_back<T: VoxelArray>(outputs: &medas_tools::Outputs, port: &str, spatial: &[usize], channels: usize, target: &mut [T]) -> Result<(), String> {
    let Some(Data::Image(image)) = outputs.get(port) else {
        return Err(format!("gave no {port} image"));
    };
    if image.size() != spatial || image.components() != channels {
        return Err(format!("changed the patch's {port} from {spatial:?} to {:?} voxels; the sampler needs patches of a fixed shape", image.size()));
    }
    let array = image.voxels().cast::<T>();
    // Reversed axes of a Fortran array are in C order: one contiguous copy when laid out so.
    let reversed = array.view().reversed_axes();
    match reversed.as_slice() {
        Some(values) => target.copy_from_slice(values),
        None => target.iter_mut().zip(reversed.iter()).for_each(|(t, v)| *t = *v),
    }
    Ok(())
}

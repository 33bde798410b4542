//! `augment.flip` and `augment.rot90`: voxel-exact flips and quarter turns of the voxel array,
//! drawn from a seed and applied identically to an image and its label. The grid's origin and
//! direction are kept (the content moves, as in nnU-Net's and MONAI's array flips).

use crate::context::Context;
use crate::data::{Inputs, Outputs};
use crate::error::ToolError;
use crate::params::Params;
use crate::registry::{Tool, ToolEntry};
use crate::spec::{Category, ParamSpec, ToolSpec};
use crate::tools::augment::{failed, fortran_voxels, generator, geometric_outputs, geometric_ports, image_and_label, parameter_table, probability, seed_param};
use crate::tools::bad_param;
use medas_image::{Geometry, Image, VoxelArray, Voxels, with_voxels};
use ndarray::{ArcArray, ArrayViewD, Axis, IxDyn};
use std::sync::Arc;

const AXES: [&str; 3] = ["i", "j", "k"];

/// The voxels with `flips` axes reversed and then axes `swap` exchanged, in Fortran layout.
fn rearranged(voxels: &Voxels, flips: &[usize], swap: Option<(usize, usize)>) -> Voxels {
    with_voxels!(voxels, a => rearranged_array(a, flips, swap))
}

fn rearranged_array<T: VoxelArray>(array: &ArcArray<T, IxDyn>, flips: &[usize], swap: Option<(usize, usize)>) -> Voxels {
    let mut view: ArrayViewD<T> = array.view();
    flips.iter().for_each(|&axis| view.invert_axis(Axis(axis)));
    if let Some((a, b)) = swap {
        view.swap_axes(a, b);
    }
    fortran_voxels(view)
}

/// `image` with its voxels rearranged as [`rearranged`] and the swapped axes' spacings swapped.
fn apply(tool: &str, image: &Image, flips: &[usize], swap: Option<(usize, usize)>) -> Result<Image, ToolError> {
    let voxels = rearranged(image.voxels(), flips, swap);
    let geometry = image.geometry();
    let mut spacing = geometry.spacing().to_vec();
    if let Some((a, b)) = swap {
        spacing.swap(a, b);
    }
    let geometry = Geometry::new(spacing, geometry.origin().to_vec(), geometry.direction().to_vec()).map_err(|e| failed(tool, e))?;
    let mut out = Image::with_components(voxels, image.components(), geometry).map_err(|e| failed(tool, e))?;
    out.metadata = image.metadata.clone();
    Ok(out)
}

pub struct Flip(ToolSpec);

impl Flip {
    fn new() -> Flip {
        let probability = |axis: &str| {
            ParamSpec::float(&format!("probability_{axis}"), &format!("Probability that axis {axis} is reversed (0 to 1).")).default(0.5).tunable()
        };
        let spec = ToolSpec::new(
            "augment.flip",
            Category::Augment,
            "Random flip",
            "Reverses each spatial axis (i, j, k; k only in 3-D) with its own probability, the same \
             for the image and its label, as numpy.flip on the voxel array. The draw: one uniform \
             number u in [0, 1) per axis in the order i, j, k from SplitMix64(seed); the axis is \
             flipped when u < probability. Voxel values, type, origin, spacing and direction are \
             kept. The parameters table lists flip_i, flip_j[, flip_k] as 0 or 1.",
        )
        .param(seed_param())
        .params(AXES.iter().map(|axis| probability(axis)).collect());
        Flip(geometric_ports(spec))
    }
}

impl Tool for Flip {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn run(&self, mut inputs: Inputs, params: &Params, _context: &Context) -> Result<Outputs, ToolError> {
        let id = &self.0.id;
        let probabilities: Vec<f64> = AXES.iter().map(|axis| probability(id, params, &format!("probability_{axis}"))).collect::<Result<_, _>>()?;
        let (image, label) = image_and_label(&mut inputs, id)?;
        let mut rng = generator(params)?;
        let spatial = image.dimension().min(3);
        let flipped: Vec<bool> = probabilities[..spatial].iter().map(|&p| rng.uniform() < p).collect();
        let axes: Vec<usize> = (0..spatial).filter(|&a| flipped[a]).collect();
        let rows: Vec<(String, f64)> = (0..spatial).map(|a| (format!("flip_{}", AXES[a]), f64::from(u8::from(flipped[a])))).collect();
        let image_out = apply(id, &image, &axes, None)?;
        let label_out = label.map(|label| apply(id, &label, &axes, None)).transpose()?;
        geometric_outputs(id, image_out, label_out, parameter_table(&rows))
    }
}

inventory::submit! { ToolEntry { build: || Arc::new(Flip::new()) } }

const PLANES: [&str; 3] = ["ij", "ik", "jk"];

pub struct Rot90(ToolSpec);

impl Rot90 {
    fn new() -> Rot90 {
        let spec = ToolSpec::new(
            "augment.rot90",
            Category::Augment,
            "Random 90° rotation",
            "Rotates the voxel array by a random number of quarter turns in one plane, the same \
             for the image and its label, exactly as numpy.rot90(array, turns, axes=(a, b)) with \
             (a, b) the plane's axes in i, j, k order. The draw from SplitMix64(seed): a uniform u0 in \
             [0, 1) rotates when u0 < probability; then turns = floor(4 u1) for the next uniform \
             u1 (else turns = 0). Origin and direction are kept; after an odd number of turns the two \
             axes' sizes and spacings are exchanged, so every voxel keeps its physical extent. \
             The parameters table lists turns.",
        )
        .param(seed_param())
        .param(ParamSpec::choice("plane", "The plane of the rotation (ik and jk need a 3-D image).", &PLANES).default("ij"))
        .param(ParamSpec::float("probability", "Probability that the image is rotated at all (0 to 1).").default(1.0).tunable());
        Rot90(geometric_ports(spec))
    }
}

/// numpy.rot90's flips and axis exchange for `turns` quarter turns from axis `a` towards `b`.
fn quarter_turns(turns: u64, a: usize, b: usize) -> (Vec<usize>, Option<(usize, usize)>) {
    match turns % 4 {
        0 => (vec![], None),
        1 => (vec![b], Some((a, b))),
        2 => (vec![a, b], None),
        _ => (vec![a], Some((a, b))),
    }
}

impl Tool for Rot90 {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn run(&self, mut inputs: Inputs, params: &Params, _context: &Context) -> Result<Outputs, ToolError> {
        let id = &self.0.id;
        let p = probability(id, params, "probability")?;
        let (image, label) = image_and_label(&mut inputs, id)?;
        let plane = params.text("plane")?;
        let (a, b) = match plane {
            "ik" => (0, 2),
            "jk" => (1, 2),
            _ => (0, 1),
        };
        if b >= image.dimension() {
            return Err(bad_param(id, "plane", format!("{plane:?} needs a 3-D image, got a {}-D image", image.dimension())));
        }
        let mut rng = generator(params)?;
        let rotate = rng.uniform() < p;
        let turns = if rotate { rng.below(4) } else { 0 };
        let (flips, swap) = quarter_turns(turns, a, b);
        let image_out = apply(id, &image, &flips, swap)?;
        let label_out = label.map(|label| apply(id, &label, &flips, swap)).transpose()?;
        geometric_outputs(id, image_out, label_out, parameter_table(&[("turns".to_string(), turns as f64)]))
    }
}

inventory::submit! { ToolEntry { build: || Arc::new(Rot90::new()) } }

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_quarter_turn_matches_numpy_rot90() {
        // numpy.rot90([[0, 1, 2], [3, 4, 5]]) = [[2, 5], [1, 4], [0, 3]] (row-major indices).
        // In (i, j) indexing with Fortran storage: a[i, j] = 3 i + j for a 2 x 3 array.
        let values: Vec<u8> = (0..6).map(|n| (3 * (n % 2) + n / 2) as u8).collect();
        let voxels = Voxels::from_fortran_vec(&[2, 3], values).unwrap();
        let (flips, swap) = quarter_turns(1, 0, 1);
        let out = rearranged(&voxels, &flips, swap);
        let array = out.as_array::<u8>().unwrap();
        assert_eq!(array.shape(), &[3, 2]);
        let rows: Vec<Vec<u8>> = (0..3).map(|i| (0..2).map(|j| array[[i, j]]).collect()).collect();
        assert_eq!(rows, vec![vec![2, 5], vec![1, 4], vec![0, 3]]);
    }
}

//! Axis rearrangements without interpolation: `preprocess.reorient` (to an orientation code, as
//! SimpleITK's DICOMOrient), `preprocess.flip` and `preprocess.rot90` (as numpy's `flip` and
//! `rot90` on the voxels). Every voxel keeps its physical position: the geometry is rewritten
//! so that the new index of a voxel maps to the same LPS point as its old index did.

use crate::context::Context;
use crate::data::{Data, Inputs, Outputs, take_image};
use crate::error::ToolError;
use crate::params::Params;
use crate::registry::{Tool, ToolEntry};
use crate::spec::{Category, ParamKind, ParamSpec, PortSpec, PortType, ToolSpec};
use crate::tools::bad_param;
use crate::tools::mask::failed;
use medas_image::{Geometry, Image, VoxelArray, with_voxels};
use ndarray::{ArcArray, Array, ArrayViewD, Axis, IxDyn, ShapeBuilder, Zip};
use serde_json::json;
use std::sync::Arc;

/// Output index axis `a` is input axis `from[a]`, run backwards when `reverse[a]`. Covers the
/// spatial axes; a component axis rides along unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AxisMap {
    pub from: Vec<usize>,
    pub reverse: Vec<bool>,
}

impl AxisMap {
    pub fn identity(dimension: usize) -> AxisMap {
        AxisMap { from: (0..dimension).collect(), reverse: vec![false; dimension] }
    }

    /// Whether this map leaves every axis in place.
    pub fn is_identity(&self) -> bool {
        self.from.iter().enumerate().all(|(a, &f)| a == f) && !self.reverse.contains(&true)
    }

    /// The rearranged image: voxels copied once into first-axis-fastest order (in parallel),
    /// geometry such that each voxel keeps its physical position, metadata kept.
    pub fn apply(&self, image: &Image) -> Image {
        let voxels = with_voxels!(image.voxels(), a => VoxelArray::wrap(self.rearrange(a)));
        let geometry = self.geometry(image.geometry(), image.size());
        let mut out = Image::with_components(voxels, image.components(), geometry)
            .expect("a permutation keeps the dimension and the components");
        out.metadata = image.metadata.clone();
        out
    }

    fn rearrange<T: Copy + Send + Sync>(&self, array: &ArcArray<T, IxDyn>) -> ArcArray<T, IxDyn> {
        let order: Vec<usize> = self.from.iter().copied().chain(self.from.len()..array.ndim()).collect();
        let mut view = array.view().permuted_axes(IxDyn(&order));
        for (axis, _) in self.reverse.iter().enumerate().filter(|(_, r)| **r) {
            view.invert_axis(Axis(axis));
        }
        fortran_copy(&view)
    }

    /// The geometry of the rearranged grid of `size`: spacing and direction columns follow
    /// their axes (negated when reversed); the origin is the point of the input voxel that
    /// becomes voxel 0.
    pub fn geometry(&self, geometry: &Geometry, size: &[usize]) -> Geometry {
        let n = geometry.dimension();
        let first: Vec<f64> = (0..n)
            .map(|c| {
                let a = self.from.iter().position(|&f| f == c).expect("from is a permutation");
                if self.reverse[a] { size[c].saturating_sub(1) as f64 } else { 0.0 }
            })
            .collect();
        let origin = geometry.index_to_point(&first);
        let spacing = self.from.iter().map(|&c| geometry.spacing()[c]).collect();
        let mut direction = vec![0.0; n * n];
        for (a, (&c, &reverse)) in self.from.iter().zip(&self.reverse).enumerate() {
            let sign = if reverse { -1.0 } else { 1.0 };
            for r in 0..n {
                direction[r * n + a] = sign * geometry.direction_at(r, c);
            }
        }
        Geometry::new(spacing, origin, direction).expect("a signed permutation of a valid geometry is valid")
    }
}

/// The anatomical axis (0: L/R, 1: P/A, 2: S/I) and sign (+1 towards L, P, S) of a letter.
fn letter_axis(letter: char) -> Option<(usize, f64)> {
    match letter {
        'L' => Some((0, 1.0)),
        'R' => Some((0, -1.0)),
        'P' => Some((1, 1.0)),
        'A' => Some((1, -1.0)),
        'S' => Some((2, 1.0)),
        'I' => Some((2, -1.0)),
        _ => None,
    }
}

/// Parses an orientation code (three letters, one per anatomical axis, each naming where
/// increasing index points; case ignored) into (anatomical axis, sign) per index axis.
pub fn parse_orientation(code: &str) -> Result<[(usize, f64); 3], String> {
    let problem = || {
        format!("must be three letters, one of L/R, one of P/A and one of S/I (e.g. RAS, LPS, RAI), got {code:?}")
    };
    let letters: Vec<Option<(usize, f64)>> = code.trim().to_uppercase().chars().map(letter_axis).collect();
    let parsed: Vec<(usize, f64)> = letters.into_iter().collect::<Option<_>>().ok_or_else(problem)?;
    let [a, b, c] = parsed[..] else { return Err(problem()) };
    if a.0 == b.0 || a.0 == c.0 || b.0 == c.0 {
        return Err(problem());
    }
    Ok([a, b, c])
}

/// The map that brings the first three axes of `geometry` to `target` (from
/// [`parse_orientation`]). Each input axis is named by the anatomical axis its direction
/// points along most (as `Geometry::orientation_code`); fails when two share one.
pub fn reorientation(geometry: &Geometry, target: [(usize, f64); 3]) -> Result<AxisMap, String> {
    let n = geometry.dimension();
    let dominant: Vec<(usize, f64)> = (0..3)
        .map(|c| {
            let row = (0..3).max_by(|&a, &b| geometry.direction_at(a, c).abs().total_cmp(&geometry.direction_at(b, c).abs()));
            let row = row.unwrap_or(c);
            (row, geometry.direction_at(row, c).signum())
        })
        .collect();
    let mut map = AxisMap::identity(n);
    for (a, &(row, sign)) in target.iter().enumerate() {
        let found = dominant.iter().position(|&(r, _)| r == row);
        let ambiguous = dominant.iter().filter(|&&(r, _)| r == row).count() != 1;
        let Some(c) = found.filter(|_| !ambiguous) else {
            return Err(format!("the image's direction {:?} is too oblique to name its axes", geometry.direction()));
        };
        map.from[a] = c;
        map.reverse[a] = dominant[c].1 != sign;
    }
    Ok(map)
}

/// A copy of `view` stored first axis fastest (as the readers store voxels), in parallel.
pub fn fortran_copy<T: Copy + Send + Sync>(view: &ArrayViewD<'_, T>) -> ArcArray<T, IxDyn> {
    let mut out = Array::uninit(IxDyn(view.shape()).f());
    // Reversed axes make `out` C-ordered, so that the Zip runs along its contiguous first axis.
    let (target, source) = (out.view_mut().reversed_axes(), view.view().reversed_axes());
    Zip::from(target).and(source).par_for_each(|o, &v| _ = o.write(v));
    // SAFETY: the Zip above wrote every element of `out`.
    unsafe { out.assume_init() }.into_shared()
}

pub(crate) fn output(image: Image) -> Outputs {
    Outputs::from([("image".to_string(), Data::Image(image))])
}

pub struct Reorient(ToolSpec);

impl Reorient {
    fn new() -> Reorient {
        Reorient(
            ToolSpec::new(
                "preprocess.reorient",
                Category::Preprocess,
                "Reorient",
                "Permutes and flips the index axes, without interpolation, so that they point as an \
                 orientation code says: one letter per index axis naming where increasing index points \
                 (L/R, P/A, S/I; e.g. RAS, nibabel's canonical; LPS, DICOM's; RAI), as SimpleITK's \
                 DICOMOrient (same voxels, same geometry). Each voxel keeps its physical position: \
                 spacing and direction columns follow their axes and the origin moves to the new first \
                 voxel. An input axis is named by the anatomical axis its direction points along most; \
                 a direction too oblique for that (two axes nearest the same anatomical axis) is an \
                 error. 3-D images (a fourth, time axis stays last and unchanged).",
            )
            .param(ParamSpec::string("orientation", "Target orientation code, three letters (RAS, LPS, RAI, ...).").default("RAS"))
            .input(PortSpec::new("image", PortType::Image, "A 3-D or 4-D image."))
            .output(PortSpec::new("image", PortType::Image, "The same voxels with axes in the target orientation.")),
        )
    }
}

impl Tool for Reorient {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn run(&self, mut inputs: Inputs, params: &Params, _context: &Context) -> Result<Outputs, ToolError> {
        let id = &self.0.id;
        let image = take_image(&mut inputs, id, "image")?;
        let target = parse_orientation(params.text("orientation")?).map_err(|e| bad_param(id, "orientation", e))?;
        if image.dimension() < 3 {
            return Err(failed(id, format!("reorienting needs a 3-D or 4-D image, this one is {}-D", image.dimension())));
        }
        let map = reorientation(image.geometry(), target).map_err(|e| failed(id, e))?;
        Ok(output(if map.is_identity() { image } else { map.apply(&image) }))
    }
}

inventory::submit! { ToolEntry { build: || Arc::new(Reorient::new()) } }

/// Axis numbers of a list parameter, each below `dimension`, without repeats.
fn axes_param(tool: &str, params: &Params, name: &str, dimension: usize) -> Result<Vec<usize>, ToolError> {
    let list = params.value(name).and_then(|v| v.as_array()).cloned().unwrap_or_default();
    let mut axes = Vec::with_capacity(list.len());
    for value in list {
        let axis = value.as_i64().unwrap_or(-1);
        if axis < 0 || axis as usize >= dimension {
            let message = format!("holds axis {axis}; this {dimension}-D image has axes 0 to {}", dimension - 1);
            return Err(bad_param(tool, name, message));
        }
        if axes.contains(&(axis as usize)) {
            return Err(bad_param(tool, name, format!("names axis {axis} twice")));
        }
        axes.push(axis as usize);
    }
    Ok(axes)
}

const AXIS: ParamKind = ParamKind::Int { min: Some(0), max: Some(3) };

pub struct Flip(ToolSpec);

impl Flip {
    fn new() -> Flip {
        Flip(
            ToolSpec::new(
                "preprocess.flip",
                Category::Preprocess,
                "Flip axes",
                "Reverses the voxel order along the given index axes, as numpy.flip on the array \
                 (axes 0, 1, 2 = i, j, k), and rewrites the geometry so that every voxel keeps its \
                 physical position (the direction column of a flipped axis is negated and the origin \
                 moves to the voxel that comes first). Unlike sitk.Flip, which mirrors the image in \
                 physical space, this changes how the voxels are stored, never where they are.",
            )
            .param(ParamSpec::list("axes", "Index axes to reverse (0 = i, 1 = j, 2 = k), each at most once.", AXIS).default(json!([0])))
            .input(PortSpec::new("image", PortType::Image, "The image to flip."))
            .output(PortSpec::new("image", PortType::Image, "The flipped image.")),
        )
    }
}

impl Tool for Flip {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn run(&self, mut inputs: Inputs, params: &Params, _context: &Context) -> Result<Outputs, ToolError> {
        let id = &self.0.id;
        let image = take_image(&mut inputs, id, "image")?;
        let mut map = AxisMap::identity(image.dimension());
        for axis in axes_param(id, params, "axes", image.dimension())? {
            map.reverse[axis] = true;
        }
        Ok(output(if map.is_identity() { image } else { map.apply(&image) }))
    }
}

inventory::submit! { ToolEntry { build: || Arc::new(Flip::new()) } }

/// numpy's `rot90(m, k, axes=(p, q))` as an axis map of `dimension` axes: `k = 1` flips axis
/// `q` and swaps `p` and `q`; `k = 2` flips both; `k = 3` swaps them and flips axis `q`.
pub fn rot90_map(dimension: usize, k: i64, p: usize, q: usize) -> AxisMap {
    let mut map = AxisMap::identity(dimension);
    match k.rem_euclid(4) {
        1 => {
            (map.from[p], map.from[q]) = (q, p);
            map.reverse[p] = true;
        }
        2 => (map.reverse[p], map.reverse[q]) = (true, true),
        3 => {
            (map.from[p], map.from[q]) = (q, p);
            map.reverse[q] = true;
        }
        _ => {}
    }
    map
}

pub struct Rot90(ToolSpec);

impl Rot90 {
    fn new() -> Rot90 {
        Rot90(
            ToolSpec::new(
                "preprocess.rot90",
                Category::Preprocess,
                "Rotate by 90°",
                "Rotates the voxel array by k quarter turns in the plane of two index axes, as \
                 numpy.rot90(array, k, axes) (the first axis turns towards the second; negative k turns \
                 the other way), and rewrites the geometry so that every voxel keeps its physical \
                 position: the axes are swapped and reversed, never resampled.",
            )
            .param(ParamSpec::int("k", "Number of quarter turns (any integer; taken modulo 4).").default(1))
            .param(ParamSpec::list("axes", "The two index axes of the plane of rotation.", AXIS).range(2.0, 2.0).default(json!([0, 1])))
            .input(PortSpec::new("image", PortType::Image, "The image to rotate (at least 2-D)."))
            .output(PortSpec::new("image", PortType::Image, "The rotated image.")),
        )
    }
}

impl Tool for Rot90 {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn run(&self, mut inputs: Inputs, params: &Params, _context: &Context) -> Result<Outputs, ToolError> {
        let id = &self.0.id;
        let image = take_image(&mut inputs, id, "image")?;
        let axes = axes_param(id, params, "axes", image.dimension())?;
        let [p, q] = axes[..] else {
            return Err(bad_param(id, "axes", format!("must name two axes, got {}", axes.len())));
        };
        let map = rot90_map(image.dimension(), params.int("k")?, p, q);
        Ok(output(if map.is_identity() { image } else { map.apply(&image) }))
    }
}

inventory::submit! { ToolEntry { build: || Arc::new(Rot90::new()) } }

#[cfg(test)]
mod tests {
    use super::*;
    use medas_image::Voxels;
    use ndarray::Dimension;

    fn image(shape: &[usize]) -> Image {
        let values: Vec<i32> = (0..shape.iter().product::<usize>() as i32).collect();
        let n = shape.len();
        let direction = Geometry::identity(n).direction().to_vec();
        let geometry = Geometry::new((1..=n).map(|s| s as f64).collect(), vec![5.0; n], direction).unwrap();
        Image::new(Voxels::from_fortran_vec(shape, values).unwrap(), geometry).unwrap()
    }

    /// Every voxel of `out` sits where the voxel of `input` with the same value sat.
    fn assert_positions_kept(input: &Image, out: &Image) {
        let a = input.voxels().as_array::<i32>().unwrap();
        let b = out.voxels().as_array::<i32>().unwrap();
        let mut where_in = vec![vec![]; a.len()];
        for (index, &v) in a.indexed_iter() {
            where_in[v as usize] = input.geometry().index_to_point(&index.slice().iter().map(|&i| i as f64).collect::<Vec<_>>());
        }
        for (index, &v) in b.indexed_iter() {
            let point = out.geometry().index_to_point(&index.slice().iter().map(|&i| i as f64).collect::<Vec<_>>());
            assert!(point.iter().zip(&where_in[v as usize]).all(|(x, y)| (x - y).abs() < 1e-12), "{index:?}");
        }
    }

    #[test]
    fn rot90_matches_numpy_on_a_small_array() {
        // numpy: np.rot90(np.arange(6).reshape(2, 3)) == [[2, 5], [1, 4], [0, 3]] (C order).
        let values = Voxels::from(ndarray::ArrayD::from_shape_vec(IxDyn(&[2, 3]), (0..6).collect::<Vec<i32>>()).unwrap());
        let img = Image::from_voxels(values).unwrap();
        let out = rot90_map(2, 1, 0, 1).apply(&img);
        let got: Vec<i32> = out.voxels().as_array::<i32>().unwrap().iter().copied().collect();
        assert_eq!((out.size(), got), (&[3usize, 2][..], vec![2, 5, 1, 4, 0, 3]));
        for k in [-1, 2, 3, 4] {
            assert_positions_kept(&img, &rot90_map(2, k, 0, 1).apply(&img));
        }
        assert!(rot90_map(3, 4, 0, 2).is_identity());
    }

    #[test]
    fn flips_and_reorientations_keep_physical_positions() {
        let img = image(&[4, 3, 2]);
        let mut map = AxisMap::identity(3);
        map.reverse = vec![true, false, true];
        assert_positions_kept(&img, &map.apply(&img));
        let target = parse_orientation("sra").unwrap();
        let out = reorientation(img.geometry(), target).unwrap().apply(&img);
        assert_eq!(out.geometry().orientation_code(), "SRA");
        assert_eq!(out.size(), &[2, 4, 3]);
        assert_positions_kept(&img, &out);
    }

    #[test]
    fn orientation_codes_are_checked() {
        assert_eq!(parse_orientation("LPS").unwrap(), [(0, 1.0), (1, 1.0), (2, 1.0)]);
        for bad in ["RAX", "RRS", "RA", "RASL", ""] {
            assert!(parse_orientation(bad).is_err(), "{bad}");
        }
        // 45° between i and j: both point along L/R and P/A equally.
        let s = std::f64::consts::FRAC_1_SQRT_2;
        let oblique = Geometry::new(vec![1.0; 3], vec![0.0; 3], vec![s, -s, 0.0, s, s, 0.0, 0.0, 0.0, 1.0]).unwrap();
        assert!(reorientation(&oblique, parse_orientation("RAS").unwrap()).is_err());
    }
}

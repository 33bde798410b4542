//! Kernels the mask tools share: a mask read as runs of foreground voxels along the first
//! (fastest, contiguous) axis, and connected-component labelling of those runs by union-find.
//!
//! A mask is any 2-D or 3-D integer image; a voxel is foreground when non-zero. Voxels are
//! read in place when they lie first axis fastest (Fortran order, as every reader gives them);
//! any other layout is first copied into that order. A 2-D image is a 3-D one with one slice.

use crate::error::{ParamProblem, ToolError};
use medas_image::{Image, Voxels};
use ndarray::{ArcArray, IxDyn};
use rayon::prelude::*;

/// The shape of a mask as three axes `[n0, n1, n2]` (`n2 = 1` for a 2-D image), voxels stored
/// with axis 0 fastest. A *line* is one row along axis 0, numbered `j + n1 * k`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grid {
    pub dims: [usize; 3],
    /// 2 or 3: the image's dimension.
    pub rank: usize,
}

impl Grid {
    pub fn len(&self) -> usize {
        self.dims.iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn lines(&self) -> usize {
        self.dims[1] * self.dims[2]
    }
    pub fn shape(&self) -> Vec<usize> {
        self.dims[..self.rank].to_vec()
    }
}

/// One run of foreground voxels `[start, end)` along axis 0 of one line.
pub type Run = (u32, u32);

/// The foreground of a mask as runs, grouped by line: the runs of line `l` are
/// `runs[first[l]..first[l + 1]]`, sorted.
pub struct Runs {
    pub grid: Grid,
    pub first: Vec<usize>,
    pub runs: Vec<Run>,
}

impl Runs {
    pub fn of_line(&self, line: usize) -> &[Run] {
        &self.runs[self.first[line]..self.first[line + 1]]
    }

    /// Runs from the on/off values of each line, computed in parallel over slices.
    pub fn build<T: Copy + Sync>(grid: Grid, voxels: &[T], on: impl Fn(T) -> bool + Sync) -> Runs {
        let [n0, n1, _] = grid.dims;
        let slice = (n0 * n1).max(1);
        let parts: Vec<(Vec<Run>, Vec<usize>)> = voxels
            .par_chunks(slice)
            .map(|plane| {
                let mut runs = Vec::new();
                let mut counts = Vec::with_capacity(n1);
                for line in plane.chunks(n0.max(1)) {
                    let before = runs.len();
                    push_runs(line.iter().map(|&v| on(v)), &mut runs);
                    counts.push(runs.len() - before);
                }
                (runs, counts)
            })
            .collect();
        let mut first = Vec::with_capacity(grid.lines() + 1);
        first.push(0);
        let mut runs = Vec::with_capacity(parts.iter().map(|p| p.0.len()).sum());
        for (part, counts) in parts {
            runs.extend_from_slice(&part);
            for count in counts {
                first.push(first.last().copied().unwrap_or(0) + count);
            }
        }
        first.resize(grid.lines() + 1, runs.len());
        Runs { grid, first, runs }
    }

    /// The runs of the background (the gaps between this mask's runs).
    pub fn complement(&self) -> Runs {
        let n0 = self.grid.dims[0] as u32;
        let mut first = Vec::with_capacity(self.first.len());
        let mut runs = Vec::with_capacity(self.runs.len() + self.grid.lines());
        first.push(0);
        for line in 0..self.grid.lines() {
            let mut at = 0;
            for &(start, end) in self.of_line(line) {
                if start > at {
                    runs.push((at, start));
                }
                at = end;
            }
            if at < n0 {
                runs.push((at, n0));
            }
            first.push(runs.len());
        }
        Runs { grid: self.grid, first, runs }
    }

    /// Whether the mask has no foreground voxel.
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }
}

fn push_runs(values: impl Iterator<Item = bool>, runs: &mut Vec<Run>) {
    let mut start = None;
    let mut at = 0u32;
    for on in values {
        match (on, start) {
            (true, None) => start = Some(at),
            (false, Some(s)) => {
                runs.push((s, at));
                start = None;
            }
            _ => {}
        }
        at += 1;
    }
    if let Some(s) = start {
        runs.push((s, at));
    }
}

/// The shape of `image` as a mask grid, or an error naming the tool when it is not a scalar
/// 2-D or 3-D image.
pub fn grid_of(image: &Image, tool: &str) -> Result<Grid, ToolError> {
    let fail = |message: String| ToolError::Failed { tool: tool.into(), message };
    if image.components() != 1 {
        return Err(fail(format!("a mask has one value per voxel, this image has {} components", image.components())));
    }
    let size = image.size();
    match size.len() {
        2 => Ok(Grid { dims: [size[0], size[1], 1], rank: 2 }),
        3 => Ok(Grid { dims: [size[0], size[1], size[2]], rank: 3 }),
        n => Err(fail(format!("masks must be 2-D or 3-D images, this one is {n}-D"))),
    }
}

/// Work over the voxels of an integer mask, whatever their type (see [`visit_mask`]).
pub trait MaskVisitor {
    type Output;
    /// Called with every voxel in Fortran order; non-zero is foreground.
    fn visit<T: Copy + Default + PartialEq + Send + Sync>(self, values: &[T]) -> Self::Output;
}

/// Runs `visitor` over the voxels of an integer mask image, read in place when they are
/// stored in Fortran order (copied into that order otherwise). Floating-point images are
/// refused: threshold or cast them first, so that what counts as "on" is explicit.
pub fn visit_mask<V: MaskVisitor>(image: &Image, tool: &str, visitor: V) -> Result<V::Output, ToolError> {
    let voxels = image.voxels();
    Ok(match voxels {
        Voxels::U8(a) => in_fortran_order(a, visitor),
        Voxels::I8(a) => in_fortran_order(a, visitor),
        Voxels::U16(a) => in_fortran_order(a, visitor),
        Voxels::I16(a) => in_fortran_order(a, visitor),
        Voxels::U32(a) => in_fortran_order(a, visitor),
        Voxels::I32(a) => in_fortran_order(a, visitor),
        Voxels::U64(a) => in_fortran_order(a, visitor),
        Voxels::I64(a) => in_fortran_order(a, visitor),
        Voxels::F32(_) | Voxels::F64(_) => {
            let message = format!(
                "the mask has {} voxels; masks must be integer images (use preprocess.threshold or preprocess.cast first)",
                voxels.scalar_type()
            );
            return Err(failed(tool, message));
        }
    })
}

fn in_fortran_order<T: Copy + Default + PartialEq + Send + Sync, V: MaskVisitor>(array: &ArcArray<T, IxDyn>, visitor: V) -> V::Output {
    match fortran_slice(array) {
        Some(slice) => visitor.visit(slice),
        None => {
            // Another memory layout: one copy in Fortran order (readers never produce this).
            let copy: Vec<T> = array.view().reversed_axes().iter().copied().collect();
            visitor.visit(&copy)
        }
    }
}

struct RunsOf(Grid);

impl MaskVisitor for RunsOf {
    type Output = Runs;
    fn visit<T: Copy + Default + PartialEq + Send + Sync>(self, values: &[T]) -> Runs {
        let zero = T::default();
        Runs::build(self.0, values, |v| v != zero)
    }
}

/// The runs of the foreground (non-zero voxels) of an integer mask image.
pub fn foreground_runs(image: &Image, tool: &str) -> Result<Runs, ToolError> {
    let grid = grid_of(image, tool)?;
    let runs = visit_mask(image, tool, RunsOf(grid))?;
    // Run indices are u32 (half the memory of usize in the union-find).
    if runs.runs.len() >= u32::MAX as usize {
        return Err(failed(tool, "the mask has more than 4 billion runs of voxels"));
    }
    Ok(runs)
}

/// The voxels as one slice in Fortran order, when that is how they are stored.
pub fn fortran_slice<T>(array: &ArcArray<T, IxDyn>) -> Option<&[T]> {
    let fortran = array.ndim() <= 1 || array.view().reversed_axes().is_standard_layout();
    if fortran { array.as_slice_memory_order() } else { None }
}

/// A new image on `like`'s grid (geometry and metadata kept) from values in Fortran order.
pub fn image_like<T: medas_image::VoxelArray>(like: &Image, grid: Grid, values: Vec<T>, tool: &str) -> Result<Image, ToolError> {
    let voxels = Voxels::from_fortran_vec(&grid.shape(), values).map_err(|e| failed(tool, e.to_string()))?;
    like.with_voxels(voxels).map_err(|e| failed(tool, e.to_string()))
}

/// The input port every mask tool reads.
pub fn mask_input() -> crate::spec::PortSpec {
    crate::spec::PortSpec::new("mask", crate::spec::PortType::LabelImage, "A 2-D or 3-D integer mask; non-zero voxels are foreground.")
}

pub fn failed(tool: &str, message: impl Into<String>) -> ToolError {
    ToolError::Failed { tool: tool.into(), message: message.into() }
}

/// A parameter error naming the tool, the parameter and what was expected.
pub fn bad_param(tool: &str, param: &str, value: impl ToString, expected: &[&str]) -> ToolError {
    ToolError::Param {
        tool: tool.into(),
        param: param.into(),
        problem: ParamProblem::NotAChoice { value: value.to_string(), choices: expected.iter().map(|c| c.to_string()).collect() },
    }
}

/// Which neighbours touch: scipy's `generate_binary_structure(rank, connectivity)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connectivity {
    /// Shared faces: 6 neighbours in 3-D, 4 in 2-D.
    Face,
    /// Faces and edges: 18 in 3-D, 8 in 2-D.
    Edge,
    /// Faces, edges and corners: 26 in 3-D, 8 in 2-D.
    Vertex,
}

pub const CONNECTIVITY_DOC: &str = "Neighbours that join voxels: 6 (faces), 18 (faces and edges) or 26 (all) in 3-D; \
    4 or 8 in 2-D, where 6 means 4 and 18 or 26 mean 8 (scipy's generate_binary_structure with connectivity 1, 2, 3).";

impl Connectivity {
    /// Reads the `connectivity` parameter for an image of `rank` 2 or 3.
    pub fn parse(value: i64, rank: usize, tool: &str) -> Result<Connectivity, ToolError> {
        match (value, rank) {
            (6, _) | (4, 2) => Ok(Connectivity::Face),
            (18, _) => Ok(Connectivity::Edge),
            (26, _) | (8, 2) => Ok(Connectivity::Vertex),
            _ if rank == 2 => Err(bad_param(tool, "connectivity", value, &["4", "8", "6", "18", "26"])),
            _ => Err(bad_param(tool, "connectivity", value, &["6", "18", "26"])),
        }
    }

    /// The earlier lines a line touches, as `(dj, dk, reach)`: runs touch when they overlap
    /// after widening by `reach` voxels along axis 0.
    fn earlier_lines(self) -> &'static [(isize, isize, u32)] {
        match self {
            Connectivity::Face => &[(-1, 0, 0), (0, -1, 0)],
            Connectivity::Edge => &[(-1, 0, 1), (0, -1, 1), (-1, -1, 0), (1, -1, 0)],
            Connectivity::Vertex => &[(-1, 0, 1), (0, -1, 1), (-1, -1, 1), (1, -1, 1)],
        }
    }
}

/// Connected components of a mask's runs: a label 1..=count for every run, numbered as
/// `scipy.ndimage.label` numbers them (by each component's first voxel in C order of the
/// `[i, j, k]` array, i.e. smallest `i`, then `j`, then `k`), and each component's size.
pub struct Components {
    pub label_of_run: Vec<u32>,
    pub sizes: Vec<u64>,
}

impl Components {
    /// Which labels (indexed by label, 0 = background) are among the `count` largest regions
    /// that have at least `min_voxels` voxels. Ties go to the lower label (a stable sort), so
    /// count=1 picks what `argmax(bincount(labels)[1:]) + 1` picks.
    pub fn largest(&self, count: usize, min_voxels: u64) -> Vec<bool> {
        let mut order: Vec<usize> = (0..self.count()).collect();
        order.sort_by(|&a, &b| self.sizes[b].cmp(&self.sizes[a]));
        let mut keep = vec![false; self.count() + 1];
        for &n in order.iter().take(count).filter(|&&n| self.sizes[n] >= min_voxels) {
            keep[n + 1] = true;
        }
        keep
    }

    pub fn count(&self) -> usize {
        self.sizes.len()
    }
}

/// Labels the runs: union-find within blocks of lines in parallel, then across block edges.
pub fn label(runs: &Runs, connectivity: Connectivity) -> Components {
    let lines = runs.grid.lines();
    let mut parent: Vec<u32> = (0..runs.runs.len() as u32).collect();
    let blocks = (rayon::current_num_threads() * 4).clamp(1, lines.max(1));
    let per = lines.div_ceil(blocks).max(1);
    let mut pieces = Vec::with_capacity(blocks);
    let mut rest = parent.as_mut_slice();
    for start in (0..lines).step_by(per) {
        let end = (start + per).min(lines);
        let (piece, tail) = rest.split_at_mut(runs.first[end] - runs.first[start]);
        pieces.push((start, end, piece));
        rest = tail;
    }
    pieces.into_par_iter().for_each(|(start, end, piece)| {
        let base = runs.first[start];
        for line in start..end {
            join_line(runs, connectivity, line, start, piece, base);
        }
    });
    // Lines whose earlier neighbours lie in the previous block.
    let n1 = runs.grid.dims[1];
    for block_start in (per..lines).step_by(per) {
        for line in block_start..(block_start + n1 + 1).min(lines) {
            join_line(runs, connectivity, line, 0, &mut parent, 0);
        }
    }
    number(runs, &mut parent)
}

/// Unites the runs of `line` with those of its earlier neighbours at or after line `from`.
fn join_line(runs: &Runs, connectivity: Connectivity, line: usize, from: usize, parent: &mut [u32], base: usize) {
    let n1 = runs.grid.dims[1] as isize;
    let (j, k) = ((line as isize) % n1, (line as isize) / n1);
    let here = runs.of_line(line);
    if here.is_empty() {
        return;
    }
    for &(dj, dk, reach) in connectivity.earlier_lines() {
        let (nj, nk) = (j + dj, k + dk);
        if nj < 0 || nj >= n1 || nk < 0 {
            continue;
        }
        let other = (nj + n1 * nk) as usize;
        if other < from {
            continue;
        }
        let there = runs.of_line(other);
        let (mut a, mut b) = (0, 0);
        while a < here.len() && b < there.len() {
            let ((s, e), (s2, e2)) = (here[a], there[b]);
            if s2 < e + reach && s < e2 + reach {
                union(parent, base, runs.first[line] + a, runs.first[other] + b);
            }
            if e + reach <= e2 { a += 1 } else { b += 1 }
        }
    }
}

fn find(parent: &mut [u32], base: usize, mut x: usize) -> usize {
    while parent[x - base] as usize != x {
        let up = parent[parent[x - base] as usize - base];
        parent[x - base] = up;
        x = up as usize;
    }
    x
}

fn union(parent: &mut [u32], base: usize, a: usize, b: usize) {
    let (ra, rb) = (find(parent, base, a), find(parent, base, b));
    // The smaller index stays the root, so that roots come early in line order.
    if ra < rb {
        parent[rb - base] = ra as u32;
    } else if rb < ra {
        parent[ra - base] = rb as u32;
    }
}

/// Numbers the roots in scipy's order and counts voxels per component.
fn number(runs: &Runs, parent: &mut [u32]) -> Components {
    let [_, n1, n2] = runs.grid.dims;
    let mut key = vec![u64::MAX; runs.runs.len()];
    for line in 0..runs.grid.lines() {
        let (j, k) = ((line % n1) as u64, (line / n1) as u64);
        for r in runs.first[line]..runs.first[line + 1] {
            let root = find(parent, 0, r);
            parent[r] = root as u32;
            let position = (runs.runs[r].0 as u64 * n1 as u64 + j) * n2 as u64 + k;
            key[root] = key[root].min(position);
        }
    }
    let mut roots: Vec<usize> = (0..runs.runs.len()).filter(|&r| parent[r] as usize == r).collect();
    roots.sort_unstable_by_key(|&r| key[r]);
    let mut label_of_root = key; // reused as the root -> label table
    for (n, &root) in roots.iter().enumerate() {
        label_of_root[root] = n as u64 + 1;
    }
    let mut sizes = vec![0u64; roots.len()];
    let label_of_run: Vec<u32> = (0..runs.runs.len())
        .map(|r| {
            let label = label_of_root[parent[r] as usize] as u32;
            let (s, e) = runs.runs[r];
            sizes[label as usize - 1] += (e - s) as u64;
            label
        })
        .collect();
    Components { label_of_run, sizes }
}

/// The mask with its holes filled (background regions that touch no border become
/// foreground, face connectivity), in 3-D or, with `slice_by_slice`, in each axial slice (fixed
/// k) on its own; a Fortran-order 0/1 volume of the mask's grid.
pub fn fill_holes(runs: &Runs, slice_by_slice: bool) -> Vec<u8> {
    let grid = runs.grid;
    let mut filled = vec![0u8; grid.len()];
    if slice_by_slice && grid.rank == 3 {
        let plane = grid.dims[0] * grid.dims[1];
        filled.par_chunks_mut(plane.max(1)).enumerate().for_each(|(k, out)| fill(&slice_runs(runs, k), out));
    } else {
        fill(runs, &mut filled);
    }
    filled
}

/// The runs of axial slice `k` as a 2-D mask of their own.
fn slice_runs(runs: &Runs, k: usize) -> Runs {
    let [n0, n1, _] = runs.grid.dims;
    let lines = &runs.first[k * n1..=(k + 1) * n1];
    let base = lines[0];
    Runs {
        grid: Grid { dims: [n0, n1, 1], rank: 2 },
        first: lines.iter().map(|f| f - base).collect(),
        runs: runs.runs[base..lines[n1]].to_vec(),
    }
}

/// Writes the mask and its holes into `out` (zeroed, `runs.grid`'s size): background runs
/// are labelled with face connectivity, and regions that touch no border are filled.
fn fill(runs: &Runs, out: &mut [u8]) {
    let background = runs.complement();
    let regions = label(&background, Connectivity::Face);
    let Grid { dims: [n0, n1, n2], rank } = runs.grid;
    let mut open = vec![false; regions.count() + 1];
    for line in 0..background.grid.lines() {
        let (j, k) = (line % n1, line / n1);
        let edge_line = j == 0 || j + 1 == n1 || (rank == 3 && (k == 0 || k + 1 == n2));
        for r in background.first[line]..background.first[line + 1] {
            let (s, e) = background.runs[r];
            if edge_line || s == 0 || e as usize == n0 {
                open[regions.label_of_run[r] as usize] = true;
            }
        }
    }
    let n0 = n0.max(1);
    out.par_chunks_mut(n0).enumerate().for_each(|(line, row)| {
        for &(s, e) in runs.of_line(line) {
            row[s as usize..e as usize].fill(1);
        }
        for r in background.first[line]..background.first[line + 1] {
            if !open[regions.label_of_run[r] as usize] {
                let (s, e) = background.runs[r];
                row[s as usize..e as usize].fill(1);
            }
        }
    });
}

/// Paints every run with `value_of(run index)` into a Fortran-order volume of `grid`'s size.
pub fn paint<T: Copy + Default + PartialEq + Send + Sync>(runs: &Runs, value_of: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let n0 = runs.grid.dims[0].max(1);
    let mut out = vec![T::default(); runs.grid.len()];
    out.par_chunks_mut(n0).enumerate().for_each(|(line, row)| {
        for r in runs.first[line]..runs.first[line + 1] {
            let (s, e) = runs.runs[r];
            let value = value_of(r);
            if value != T::default() {
                row[s as usize..e as usize].fill(value);
            }
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs_of(dims: [usize; 3], on: &[u8]) -> Runs {
        Runs::build(Grid { dims, rank: 3 }, on, |v| v != 0)
    }

    #[test]
    fn runs_and_complement() {
        let runs = runs_of([4, 2, 1], &[1, 1, 0, 1, 0, 0, 0, 0]);
        assert_eq!(runs.of_line(0), &[(0, 2), (3, 4)]);
        assert!(runs.of_line(1).is_empty());
        let gaps = runs.complement();
        assert_eq!(gaps.of_line(0), &[(2, 3)]);
        assert_eq!(gaps.of_line(1), &[(0, 4)]);
    }

    #[test]
    fn diagonal_voxels_join_only_with_wider_connectivity() {
        // 2x2x2 with voxels at (0,0,0) and (1,1,1): corners only.
        let mut on = vec![0u8; 8];
        on[0] = 1;
        on[7] = 1;
        let runs = runs_of([2, 2, 2], &on);
        assert_eq!(label(&runs, Connectivity::Face).count(), 2);
        assert_eq!(label(&runs, Connectivity::Edge).count(), 2);
        assert_eq!(label(&runs, Connectivity::Vertex).count(), 1);
        // (1,0,0) and (0,1,0) share an edge.
        let mut on = vec![0u8; 8];
        on[1] = 1;
        on[2] = 1;
        let runs = runs_of([2, 2, 2], &on);
        assert_eq!(label(&runs, Connectivity::Face).count(), 2);
        assert_eq!(label(&runs, Connectivity::Edge).count(), 1);
    }

    #[test]
    fn numbering_follows_c_order_of_the_first_voxel() {
        // Voxels (3,0,0), (0,3,0), (0,0,1) in a 4x4x2 grid: scipy numbers them 3, 2, 1.
        let mut on = vec![0u8; 32];
        on[3] = 1;
        on[12] = 1;
        on[16] = 1;
        let runs = runs_of([4, 4, 2], &on);
        let components = label(&runs, Connectivity::Face);
        // Runs in line order: (0,0,0)->line 0 holds (3,0,0); line 3 holds (0,3,0); line 4 holds (0,0,1).
        assert_eq!(components.label_of_run, vec![3, 2, 1]);
    }
}

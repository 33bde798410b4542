//! Where the windows go and how much each of their voxels counts.

/// The start of every window along one axis, as nnU-Net's `compute_steps_for_sliding_window`:
///
/// - target step `t = patch * (1 - overlap)` voxels (may be fractional);
/// - `n = ceil((size - patch) / t) + 1` windows, so consecutive windows overlap by at least
///   `overlap`;
/// - the starts are `round(i * (size - patch) / (n - 1))` for `i = 0..n` (rounding half to
///   even, as NumPy's `np.round`): the first window starts at 0, the last ends at the border,
///   and the others are spread evenly between. One window (at 0) when `size == patch`.
///
/// Starts that come out equal (only when the step is below one voxel, e.g. a patch of 1) are
/// kept once: a repeated window would only cost time. `size >= patch >= 1` and `overlap` in
/// [0, 1) are the caller's to ensure ([`super::SlidingWindowConfig::validate`] and the padding).
pub fn window_starts(size: usize, patch: usize, overlap: f64) -> Vec<usize> {
    debug_assert!(patch >= 1 && size >= patch && (0.0..1.0).contains(&overlap));
    let span = (size - patch) as f64;
    let target_step = patch as f64 * (1.0 - overlap);
    let count = (span / target_step).ceil() as usize + 1;
    if count == 1 {
        return vec![0];
    }
    let step = span / (count - 1) as f64;
    let mut starts: Vec<usize> = (0..count).map(|i| (step * i as f64).round_ties_even() as usize).collect();
    starts.dedup();
    starts
}

/// Every window's start (D, H, W) over a grid of `size`, D slowest: the product of the
/// per-axis [`window_starts`].
pub fn window_grid(size: [usize; 3], patch: [usize; 3], overlap: f64) -> Vec<[usize; 3]> {
    let [ds, hs, ws] = [0, 1, 2].map(|a| window_starts(size[a], patch[a], overlap));
    let mut grid = Vec::with_capacity(ds.len() * hs.len() * ws.len());
    for &d in &ds {
        for &h in &hs {
            for &w in &ws {
                grid.push([d, h, w]);
            }
        }
    }
    grid
}

/// nnU-Net's Gaussian importance map over a patch (D, H, W), row-major (W fastest).
///
/// nnU-Net smooths a unit impulse at the centre voxel `p / 2` with SciPy's `gaussian_filter`
/// (sigma = `p / 8` per axis, kernel truncated at `int(4 sigma + 0.5)` voxels, zero outside)
/// and divides by the maximum. That is the product over the axes of
/// `exp(-(x - p/2)² / (2 sigma²))` within the truncation radius and 0 beyond it, 1 at the
/// centre; it is computed here in that closed form (f64, stored as f32). Zeros (none for
/// sigma = p / 8, whose radius covers the patch, but kept for fidelity) are raised to the
/// smallest positive weight so every voxel counts.
pub fn gaussian_weights(patch: [usize; 3]) -> Vec<f32> {
    let axes = patch.map(gaussian_profile);
    let mut weights = Vec::with_capacity(patch.iter().product());
    for &d in &axes[0] {
        for &h in &axes[1] {
            weights.extend(axes[2].iter().map(|&w| (d * h * w) as f32));
        }
    }
    let smallest = weights.iter().copied().filter(|&w| w > 0.0).fold(f32::INFINITY, f32::min);
    for w in weights.iter_mut().filter(|w| **w == 0.0) {
        *w = smallest;
    }
    weights
}

/// One axis of [`gaussian_weights`], 1 at the centre.
fn gaussian_profile(size: usize) -> Vec<f64> {
    let sigma = size as f64 / 8.0;
    let radius = (4.0 * sigma + 0.5).floor();
    let centre = (size / 2) as f64;
    (0..size)
        .map(|x| {
            let offset = x as f64 - centre;
            if offset.abs() > radius { 0.0 } else { (-0.5 * (offset / sigma).powi(2)).exp() }
        })
        .collect()
}

/// The blend weights of a patch: the Gaussian map or all ones.
pub(crate) fn blend_weights(blend: super::Blend, patch: [usize; 3]) -> Vec<f32> {
    match blend {
        super::Blend::Gaussian => gaussian_weights(patch),
        super::Blend::Constant => vec![1.0; patch.iter().product()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_window_when_the_patch_fills_the_axis() {
        assert_eq!(window_starts(64, 64, 0.5), [0]);
        assert_eq!(window_starts(64, 64, 0.0), [0]);
    }

    #[test]
    fn a_patch_of_one_visits_every_slice_once() {
        assert_eq!(window_starts(5, 1, 0.5), [0, 1, 2, 3, 4]);
        assert_eq!(window_starts(5, 1, 0.0), [0, 1, 2, 3, 4]);
    }

    #[test]
    fn the_profile_is_one_at_the_centre_and_symmetric_for_odd_sizes() {
        let p = gaussian_profile(7);
        assert_eq!(p[3], 1.0);
        for i in 0..3 {
            assert_eq!(p[i], p[6 - i]);
        }
        assert_eq!(gaussian_profile(1), [1.0]);
    }
}

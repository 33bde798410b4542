//! `augment.bias_field`: a smooth multiplicative intensity inhomogeneity, the exponential of a
//! random polynomial of the voxel coordinates (TorchIO's RandomBiasField model).

use crate::context::Context;
use crate::data::{Inputs, Outputs, take_image};
use crate::error::ToolError;
use crate::params::Params;
use crate::registry::{Tool, ToolEntry};
use crate::spec::{Category, ParamSpec, ToolSpec};
use crate::table::Table;
use crate::tools::augment::{failed, generator, intensity_outputs, intensity_ports, non_negative, seed_param};
use crate::tools::augment_intensity::map_values;
use std::sync::Arc;

/// The polynomial terms: exponents (p_i, p_j, p_k) with p_i + p_j + p_k <= order, p_i outermost
/// (TorchIO's order); p_k stays 0 in 2-D.
fn terms(order: usize, dimension: usize) -> Vec<[usize; 3]> {
    let mut terms = Vec::new();
    for pi in 0..=order {
        for pj in 0..=order - pi {
            let top = if dimension >= 3 { order - pi - pj } else { 0 };
            terms.extend((0..=top).map(|pk| [pi, pj, pk]));
        }
    }
    terms
}

/// Index `i` of an axis of `len` voxels mapped linearly onto [-1, 1] (0 for a single voxel).
fn coordinate(i: usize, len: usize) -> f64 {
    if len <= 1 { 0.0 } else { (2.0 * i as f64 - (len - 1) as f64) / (len - 1) as f64 }
}

/// The field exp(sum c u^p_i v^p_j w^p_k) at every voxel of a Fortran-ordered `size` grid.
fn field_at(size: [usize; 3], terms: &[[usize; 3]], coefficients: &[f64], n: usize) -> f64 {
    let index = [n % size[0], (n / size[0]) % size[1], (n / (size[0] * size[1])) % size[2]];
    let u: [f64; 3] = std::array::from_fn(|a| coordinate(index[a], size[a]));
    let sum: f64 = terms.iter().zip(coefficients).map(|(p, c)| c * (0..3).map(|a| u[a].powi(p[a] as i32)).product::<f64>()).sum();
    sum.exp()
}

pub struct BiasField(ToolSpec);

impl BiasField {
    fn new() -> BiasField {
        let spec = ToolSpec::new(
            "augment.bias_field",
            Category::Augment,
            "Random bias field",
            "Multiplies the image by a smooth field exp(P(u, v, w)), P a polynomial of degree at \
             most order in the voxel coordinates mapped linearly onto [-1, 1] along each axis \
             (first voxel -1, last +1), as TorchIO's RandomBiasField. Its coefficients, one per \
             term u^a v^b w^c with a + b + c <= order (a outermost, then b, then c; c = 0 in \
             2-D), are drawn uniformly from [-coefficient_max, coefficient_max] in that order \
             from SplitMix64(seed). Output float32; the parameters table lists power_i, power_j, \
             power_k and coefficient per term.",
        )
        .param(seed_param())
        .param(ParamSpec::int("order", "Degree of the polynomial (0 to 6).").default(3).range(0.0, 6.0))
        .param(ParamSpec::float("coefficient_max", "Largest magnitude of a coefficient (>= 0).").default(0.5).tunable());
        BiasField(intensity_ports(spec))
    }
}

impl Tool for BiasField {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn run(&self, mut inputs: Inputs, params: &Params, _context: &Context) -> Result<Outputs, ToolError> {
        let id = &self.0.id;
        let magnitude = non_negative(id, params, "coefficient_max")?;
        let image = take_image(&mut inputs, id, "image")?;
        if image.voxels().is_empty() {
            return Err(failed(id, "the image has no voxels"));
        }
        let dimension = image.dimension().min(3);
        let terms = terms(params.int("order")?.clamp(0, 6) as usize, dimension);
        let mut rng = generator(params)?;
        let coefficients: Vec<f64> = terms.iter().map(|_| rng.uniform_in((-magnitude, magnitude))).collect();
        let size: [usize; 3] = std::array::from_fn(|a| if a < dimension { image.size()[a] } else { 1 });
        let voxels = map_values(image.voxels(), |n, x| x * field_at(size, &terms, &coefficients, n));
        let out = image.with_voxels(voxels).map_err(|e| failed(id, e))?;
        let column = |a: usize| terms.iter().map(|p| p[a] as f64).collect::<Vec<_>>();
        let table = Table::new()
            .with_numbers("power_i", column(0))
            .and_then(|t| t.with_numbers("power_j", column(1)))
            .and_then(|t| t.with_numbers("power_k", column(2)))
            .and_then(|t| t.with_numbers("coefficient", coefficients))
            .map_err(|e| failed(id, e))?;
        Ok(intensity_outputs(out, table))
    }
}

inventory::submit! { ToolEntry { build: || Arc::new(BiasField::new()) } }

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_follow_torchio_order_and_count() {
        assert_eq!(terms(3, 3).len(), 20);
        assert_eq!(terms(3, 2).len(), 10);
        assert_eq!(&terms(1, 3), &[[0, 0, 0], [0, 0, 1], [0, 1, 0], [1, 0, 0]]);
        assert_eq!((coordinate(0, 5), coordinate(2, 5), coordinate(4, 5), coordinate(0, 1)), (-1.0, 0.0, 1.0, 0.0));
    }
}

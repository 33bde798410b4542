//! What the augmentation tools share: a seeded SplitMix64 generator (every tool draws its
//! parameters from it, in a documented order, so that a seed replays a run exactly), the
//! `seed` and range parameters, the image + optional label inputs on one grid, and the table
//! of drawn parameters each tool outputs so that a user can see what was applied.

use crate::data::{Data, Inputs, Outputs, take_image};
use crate::error::ToolError;
use crate::params::Params;
use crate::spec::{ParamSpec, PortSpec, PortType, ToolSpec};
use crate::table::{Column, Table};
use crate::tools::bad_param;
use medas_image::{Image, VoxelArray, Voxels};

const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64 (Steele, Lea and Flood 2014): a 64-bit counter stepped by the golden gamma and
/// scrambled by a fixed finaliser. Output `n` depends only on the seed and `n`, so a volume of
/// noise can be drawn in parallel voxel by voxel ([`SplitMix64::at`]).
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    /// Output `n` (0-based) of the generator seeded with `seed`, without stepping through the others.
    pub fn at(seed: u64, n: u64) -> u64 {
        finalise(seed.wrapping_add(n.wrapping_add(1).wrapping_mul(GOLDEN_GAMMA)))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN_GAMMA);
        finalise(self.state)
    }

    /// Uniform in [0, 1): the top 53 bits.
    pub fn uniform(&mut self) -> f64 {
        unit(self.next_u64())
    }

    /// Uniform in [low, high]; exactly `low` when the range is one value.
    pub fn uniform_in(&mut self, (low, high): (f64, f64)) -> f64 {
        let u = self.uniform();
        if low == high { low } else { low + (high - low) * u }
    }

    /// Uniform integer in 0..n (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.uniform() * n as f64) as u64).min(n - 1)
    }
}

fn finalise(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The top 53 bits of `bits` as a float in [0, 1).
pub fn unit(bits: u64) -> f64 {
    (bits >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// A standard normal value from outputs `2n` and `2n + 1` of the generator seeded with `key`
/// (Box-Muller, cosine branch): voxel `n`'s noise, independent of the order voxels are visited.
pub fn normal_at(key: u64, n: u64) -> f64 {
    let (u1, u2) = (unit(SplitMix64::at(key, 2 * n)), unit(SplitMix64::at(key, 2 * n + 1)));
    (-2.0 * (1.0 - u1).ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

pub fn seed_param() -> ParamSpec {
    ParamSpec::int("seed", "Seed of the parameter draw (SplitMix64); the same seed gives the same output.").default(0).range(0.0, 9.007_199_254_740_991e15)
}

/// The generator the parameters describe.
pub fn generator(params: &Params) -> Result<SplitMix64, ToolError> {
    Ok(SplitMix64::new(params.int("seed")? as u64))
}

/// `{name}_min` and `{name}_max` parameters: a range a value is drawn from uniformly.
pub fn range_params(name: &str, what: &str, (low, high): (f64, f64), unit: &str) -> [ParamSpec; 2] {
    let spec = |bound: &str, value: f64| {
        let doc = format!("{} end of the range {what} is drawn from (uniformly).", if bound == "min" { "Lower" } else { "Upper" });
        let spec = ParamSpec::float(&format!("{name}_{bound}"), &doc).default(value).tunable();
        if unit.is_empty() { spec } else { spec.unit(unit) }
    };
    [spec("min", low), spec("max", high)]
}

/// The lower bound of a drawn range: inclusive, or exclusive (a scale or gamma of 0 is no use).
#[derive(Debug, Clone, Copy)]
pub enum Lower {
    AtLeast(f64),
    Above(f64),
}

/// The range `{name}_min..{name}_max`, checked to be finite, in order and within `lower`.
pub fn drawn_range(tool: &str, params: &Params, name: &str, lower: Lower) -> Result<(f64, f64), ToolError> {
    let (min_name, max_name) = (format!("{name}_min"), format!("{name}_max"));
    let (low, high) = (params.float(&min_name)?, params.float(&max_name)?);
    for (param, value) in [(&min_name, low), (&max_name, high)] {
        let (fits, rule) = match lower {
            Lower::AtLeast(floor) => (value >= floor, format!("of at least {floor}")),
            Lower::Above(floor) => (value > floor, format!("greater than {floor}")),
        };
        if !fits || !value.is_finite() {
            return Err(bad_param(tool, param, format!("must be a finite number {rule}, got {value}")));
        }
    }
    if low > high {
        return Err(bad_param(tool, &min_name, format!("must be at most {max_name} ({high}), got {low}")));
    }
    Ok((low, high))
}

/// A parameter that must be finite and at least 0 (a largest magnitude).
pub fn non_negative(tool: &str, params: &Params, name: &str) -> Result<f64, ToolError> {
    let value = params.float(name)?;
    if !(value >= 0.0 && value.is_finite()) {
        return Err(bad_param(tool, name, format!("must be a finite number of at least 0, got {value}")));
    }
    Ok(value)
}

/// A probability parameter, checked to lie in [0, 1].
pub fn probability(tool: &str, params: &Params, name: &str) -> Result<f64, ToolError> {
    let p = params.float(name)?;
    if !(0.0..=1.0).contains(&p) {
        return Err(bad_param(tool, name, format!("must be a probability in [0, 1], got {p}")));
    }
    Ok(p)
}

/// The ports of a geometric augmentation: image and optional label in, both out, plus the table.
pub fn geometric_ports(spec: ToolSpec) -> ToolSpec {
    spec.input(PortSpec::new("image", PortType::Image, "The image to augment."))
        .input(PortSpec::new("label", PortType::LabelImage, "Optional label map on the image's grid, moved with it (nearest neighbour).").optional())
        .output(PortSpec::new("image", PortType::Image, "The augmented image."))
        .output(PortSpec::new("label", PortType::LabelImage, "The label moved with the image; all zeros (uint8) when no label was given."))
        .output(parameters_port())
}

/// The ports of an intensity augmentation: labels are not affected, so none is taken.
pub fn intensity_ports(spec: ToolSpec) -> ToolSpec {
    spec.input(PortSpec::new("image", PortType::Image, "The image to augment."))
        .output(PortSpec::new("image", PortType::Image, "The augmented image, float32, on the input's grid."))
        .output(parameters_port())
}

fn parameters_port() -> PortSpec {
    PortSpec::new("parameters", PortType::Table, "The drawn parameters (columns parameter, value), to inspect or replay.")
}

/// The image and, if given, the label, checked to share the image's grid.
pub fn image_and_label(inputs: &mut Inputs, tool: &str) -> Result<(Image, Option<Image>), ToolError> {
    let image = take_image(inputs, tool, "image")?;
    if image.voxels().is_empty() {
        return Err(ToolError::Failed { tool: tool.into(), message: "the image has no voxels".into() });
    }
    let label = match inputs.remove("label") {
        None => None,
        Some(data) => Some(data.into_image(tool, "label")?),
    };
    if let Some(label) = &label {
        let same = label.size() == image.size() && label.components() == 1 && label.geometry().approx_eq(image.geometry(), 1e-6);
        if !same {
            let message = format!("the label's grid (size {:?}) is not the image's (size {:?}) or its geometry differs", label.size(), image.size());
            return Err(ToolError::Failed { tool: tool.into(), message });
        }
    }
    Ok((image, label))
}

/// Rows `parameter`, `value` of the drawn parameters.
pub fn parameter_table(rows: &[(String, f64)]) -> Table {
    let names = Column::Text(rows.iter().map(|(name, _)| name.clone()).collect());
    let values = Column::Number(rows.iter().map(|(_, value)| *value).collect());
    Table::new().with_column("parameter", names).and_then(|t| t.with_column("value", values)).expect("two columns of equal length")
}

/// The outputs of a geometric augmentation; without a label, an all-zero one on the output grid.
pub fn geometric_outputs(tool: &str, image: Image, label: Option<Image>, table: Table) -> Result<Outputs, ToolError> {
    let label = match label {
        Some(label) => label,
        None => {
            let zeros = Voxels::from_fortran_vec(image.size(), vec![0u8; image.size().iter().product()]).map_err(|e| failed(tool, e))?;
            Image::new(zeros, image.geometry().clone()).map_err(|e| failed(tool, e))?
        }
    };
    Ok(Outputs::from([
        ("image".to_string(), Data::Image(image)),
        ("label".to_string(), Data::Image(label)),
        ("parameters".to_string(), Data::Table(table)),
    ]))
}

pub fn intensity_outputs(image: Image, table: Table) -> Outputs {
    Outputs::from([("image".to_string(), Data::Image(image)), ("parameters".to_string(), Data::Table(table))])
}

/// A view's values copied into Fortran-ordered voxels of the view's shape.
pub fn fortran_voxels<T: VoxelArray>(view: ndarray::ArrayViewD<T>) -> Voxels {
    let shape = view.shape().to_vec();
    // Walking the reversed axes in logical order visits the first axis fastest: Fortran order.
    let values: Vec<T> = view.reversed_axes().iter().copied().collect();
    Voxels::from_fortran_vec(&shape, values).expect("the values fill the view's shape")
}

pub fn failed(tool: &str, error: impl std::fmt::Display) -> ToolError {
    ToolError::Failed { tool: tool.into(), message: error.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_the_published_sequence() {
        // Reference values of SplitMix64 seeded with 1234567 (from the author's C code, also
        // the test vector of Java's SplittableRandom).
        let mut rng = SplitMix64::new(1234567);
        let expected = [6457827717110365317u64, 3203168211198807973, 9817491932198370423, 4593380528125082431, 16408922859458223821];
        for (n, value) in expected.iter().enumerate() {
            assert_eq!(SplitMix64::at(1234567, n as u64), *value);
            assert_eq!(rng.next_u64(), *value);
        }
    }

    #[test]
    fn uniform_draws_stay_in_range_and_normal_noise_is_standard() {
        let mut rng = SplitMix64::new(7);
        assert!((0..1000).all(|_| (0.0..1.0).contains(&rng.uniform())));
        assert!((0..1000).all(|_| rng.below(4) < 4));
        assert_eq!(rng.uniform_in((2.5, 2.5)), 2.5);
        let values: Vec<f64> = (0..200_000).map(|n| normal_at(99, n)).collect();
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64;
        assert!(mean.abs() < 0.01 && (var - 1.0).abs() < 0.01, "mean {mean}, variance {var}");
    }
}

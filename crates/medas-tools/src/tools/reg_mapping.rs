//! What `preprocess.register` optimises and saves: a rigid or affine transform, or a cubic
//! B-spline deformation optionally followed by a fixed rigid or affine one,
//! `T(x) = A (x + d(x)) + o`, saved as ITK text (a `CompositeTransform` of the linear transform
//! then the B-spline when composed, the order `sitk.CompositeTransform([linear, bspline])` and
//! sitk's registration with a moving initial transform use: the last listed acts first) or JSON.

use crate::tools::reg_bspline::BSpline;
use crate::tools::reg_transform::{Derivatives, Matrix, Point, Transform, apply_matrix, load_transform_text, save_transform_text};
use serde_json::json;
use std::path::Path;

const HEADER: &str = "#Insight Transform File V1.0\n";

#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // one value per registration: boxing would buy nothing
pub enum Mapping {
    Linear(Transform),
    /// `initial(spline(x))`; only the spline's coefficients are parameters.
    Deformable { initial: Option<Transform>, spline: BSpline },
}

/// A mapping made ready to map many points and project gradients onto its parameters.
pub struct Prepared<'a> {
    a: Matrix,
    o: Point,
    derivatives: Option<Derivatives>,
    spline: Option<&'a BSpline>,
    pub parameter_count: usize,
}

impl Prepared<'_> {
    pub fn map(&self, x: &Point) -> Point {
        let moved = self.spline.map_or(*x, |s| s.apply(x));
        let y = apply_matrix(&self.a, &moved);
        [y[0] + self.o[0], y[1] + self.o[1], y[2] + self.o[2]]
    }

    /// `A` and `o` when the mapping is linear.
    pub fn linear(&self) -> Option<(Matrix, Point)> {
        self.spline.is_none().then_some((self.a, self.o))
    }

    /// Adds `weight * g^T dT(x)/dp` to `out`; for the B-spline `dT/dc = A e_axis w(x)`.
    pub fn project(&self, x: &Point, g: &Point, weight: f64, out: &mut [f64]) {
        match (&self.derivatives, self.spline) {
            (Some(derivatives), _) => derivatives.project(x, g, weight, out),
            (None, Some(spline)) => {
                let a = &self.a;
                let pulled = [0, 1, 2].map(|c| a[0][c] * g[0] + a[1][c] * g[1] + a[2][c] * g[2]);
                spline.project(x, &pulled, weight, out);
            }
            (None, None) => {}
        }
    }
}

impl Mapping {
    pub fn parameters(&self) -> &[f64] {
        match self {
            Mapping::Linear(t) => &t.parameters,
            Mapping::Deformable { spline, .. } => &spline.coefficients,
        }
    }

    pub fn set_parameters(&mut self, p: &[f64]) {
        match self {
            Mapping::Linear(t) => t.parameters.copy_from_slice(p),
            Mapping::Deformable { spline, .. } => spline.coefficients.copy_from_slice(p),
        }
    }

    pub fn with_parameters(&self, p: &[f64]) -> Mapping {
        let mut copy = self.clone();
        copy.set_parameters(p);
        copy
    }

    pub fn prepare(&self) -> Prepared<'_> {
        let identity = ([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], [0.0; 3]);
        match self {
            Mapping::Linear(t) => {
                let (a, o) = t.linear_offset();
                Prepared { a, o, derivatives: Some(t.derivatives()), spline: None, parameter_count: t.parameters.len() }
            }
            Mapping::Deformable { initial, spline } => {
                let (a, o) = initial.as_ref().map_or(identity, Transform::linear_offset);
                Prepared { a, o, derivatives: None, spline: Some(spline), parameter_count: spline.coefficients.len() }
            }
        }
    }

    pub fn apply(&self, x: &Point) -> Point {
        self.prepare().map(x)
    }

    pub fn to_itk_text(&self) -> String {
        match self {
            Mapping::Linear(t) => t.to_itk_text(),
            Mapping::Deformable { initial: None, spline } => format!("{HEADER}#Transform 0\n{}", spline_block(spline)),
            Mapping::Deformable { initial: Some(t), spline } => format!(
                "{HEADER}#Transform 0\nTransform: CompositeTransform_double_3_3\n#Transform 1\n{}#Transform 2\n{}",
                t.itk_block(),
                spline_block(spline)
            ),
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Mapping::Linear(t) => t.to_json(),
            Mapping::Deformable { initial, spline } => {
                let mut value = spline.to_json();
                value["initial"] = initial.as_ref().map_or(serde_json::Value::Null, Transform::to_json);
                value["maps"] = json!("fixed physical point x (LPS, mm) to moving point initial(x + displacement(x)); displacement: ITK BSplineTransform order 3");
                value
            }
        }
    }

    /// Reads ITK text (one transform, or a composite of a linear transform then a B-spline)
    /// or this module's JSON.
    pub fn parse(text: &str) -> Result<Mapping, String> {
        if text.trim_start().starts_with('{') {
            let value: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
            if !value["transform"].as_str().unwrap_or_default().starts_with("BSplineTransform") {
                return Transform::parse(text).map(Mapping::Linear);
            }
            let initial = match &value["initial"] {
                serde_json::Value::Null => None,
                v => Some(Transform::parse(&v.to_string())?),
            };
            return Ok(Mapping::Deformable { initial, spline: BSpline::from_json(&value)? });
        }
        let mut blocks = itk_blocks(text)?;
        if blocks.first().is_some_and(|b| b.0.starts_with("CompositeTransform")) {
            blocks.remove(0);
        }
        let mut parts = blocks.into_iter().map(|(name, parameters, fixed)| {
            if name.starts_with("BSplineTransform") {
                BSpline::from_itk(parameters, &fixed).map(Err)
            } else {
                Transform::from_parts(&name, parameters, &fixed).map(Ok)
            }
        });
        let first = parts.next().ok_or("no \"Transform:\" line")??;
        let unsupported = || "only a rigid or affine transform, a B-spline, or a composite of a rigid or affine transform then a B-spline is supported".to_string();
        let mapping = match (first, parts.next().transpose()?) {
            (Ok(linear), None) => Mapping::Linear(linear),
            (Err(spline), None) => Mapping::Deformable { initial: None, spline },
            (Ok(linear), Some(Err(spline))) => Mapping::Deformable { initial: Some(linear), spline },
            _ => return Err(unsupported()),
        };
        if parts.next().is_some() {
            return Err(unsupported());
        }
        Ok(mapping)
    }

    /// Saves as ITK text (`.tfm`, `.txt`) or JSON (`.json`).
    pub fn save(&self, path: &Path) -> Result<(), String> {
        save_transform_text(path, || self.to_json(), || self.to_itk_text())
    }

    pub fn load(path: &Path) -> Result<Mapping, String> {
        load_transform_text(path, Mapping::parse)
    }
}

fn spline_block(spline: &BSpline) -> String {
    let join = |v: &[f64]| v.iter().map(|x| format!("{x:?}")).collect::<Vec<_>>().join(" ");
    format!(
        "Transform: BSplineTransform_double_3_3\nParameters: {}\nFixedParameters: {}\n",
        join(&spline.coefficients),
        join(&spline.fixed_parameters())
    )
}

type Block = (String, Vec<f64>, Vec<f64>);

/// The `Transform:` blocks of an ITK text file with their parameters.
fn itk_blocks(text: &str) -> Result<Vec<Block>, String> {
    let mut blocks: Vec<Block> = Vec::new();
    let numbers = |key: &str, line: &str| -> Result<Vec<f64>, String> {
        line.split_whitespace().map(|w| w.parse().map_err(|_| format!("{key} {w:?} is not a number"))).collect()
    };
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("Transform:") {
            blocks.push((name.trim().to_string(), Vec::new(), Vec::new()));
        } else if let Some(rest) = line.strip_prefix("Parameters:") {
            blocks.last_mut().ok_or("\"Parameters:\" before any \"Transform:\" line")?.1 = numbers("Parameters:", rest)?;
        } else if let Some(rest) = line.strip_prefix("FixedParameters:") {
            blocks.last_mut().ok_or("\"FixedParameters:\" before any \"Transform:\" line")?.2 = numbers("FixedParameters:", rest)?;
        }
    }
    Ok(blocks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::reg_transform::Kind;

    fn composed() -> Mapping {
        let mut spline = BSpline::covering([10, 8, 6], &([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0]], [0.0; 3]), [2, 2, 2]);
        spline.coefficients.iter_mut().enumerate().for_each(|(n, c)| *c = (n % 5) as f64 * 0.7 - 1.0);
        let initial = Transform { kind: Kind::Rigid, parameters: vec![0.1, -0.2, 0.05, 3.0, -1.0, 2.0], center: [9.0, 7.0, 5.0] };
        Mapping::Deformable { initial: Some(initial), spline }
    }

    #[test]
    fn composite_text_and_json_round_trip() {
        let mapping = composed();
        assert_eq!(Mapping::parse(&mapping.to_itk_text()).unwrap(), mapping);
        assert_eq!(Mapping::parse(&mapping.to_json().to_string()).unwrap(), mapping);
        let Mapping::Deformable { spline, .. } = &mapping else { unreachable!() };
        let alone = Mapping::Deformable { initial: None, spline: spline.clone() };
        assert_eq!(Mapping::parse(&alone.to_itk_text()).unwrap(), alone);
    }

    #[test]
    fn the_linear_transform_acts_after_the_spline() {
        let mapping = composed();
        let Mapping::Deformable { initial: Some(t), spline } = &mapping else { unreachable!() };
        let x = [8.0, 6.0, 4.0];
        assert_eq!(mapping.apply(&x), t.apply(&spline.apply(&x)));
    }
}

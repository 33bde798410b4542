//! Spatial transforms of the registration tools, in ITK's conventions so that a saved transform
//! means the same in SimpleITK: a transform maps a point of the fixed image's physical space
//! (LPS, mm) to the moving image's, `T(x) = A (x - c) + c + t` with centre `c`; the parameters
//! are in ITK's order (`Euler3DTransform`: angles about x, y, z in radians, then the
//! translation, with `A = Rz Rx Ry`; `AffineTransform`: the matrix row by row, then the
//! translation). Saved as ITK's text format (`.tfm`, readable by `sitk.ReadTransform`) or as
//! JSON.

use serde_json::json;
use std::path::Path;

pub type Matrix = [[f64; 3]; 3];
pub type Point = [f64; 3];

/// Which family of transforms, and so what the parameters mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Rotation and translation (6 parameters).
    Rigid,
    /// Any linear map and translation (12 parameters).
    Affine,
}

impl Kind {
    pub fn parameter_count(self) -> usize {
        match self {
            Kind::Rigid => 6,
            Kind::Affine => 12,
        }
    }

    fn itk_name(self) -> &'static str {
        match self {
            Kind::Rigid => "Euler3DTransform_double_3_3",
            Kind::Affine => "AffineTransform_double_3_3",
        }
    }
}

/// A rigid or affine transform with its centre.
#[derive(Debug, Clone, PartialEq)]
pub struct Transform {
    pub kind: Kind,
    pub parameters: Vec<f64>,
    pub center: Point,
}

fn rotation(angles: &[f64]) -> [Matrix; 3] {
    let (sx, cx) = angles[0].sin_cos();
    let (sy, cy) = angles[1].sin_cos();
    let (sz, cz) = angles[2].sin_cos();
    let rx = [[1.0, 0.0, 0.0], [0.0, cx, -sx], [0.0, sx, cx]];
    let ry = [[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]];
    let rz = [[cz, -sz, 0.0], [sz, cz, 0.0], [0.0, 0.0, 1.0]];
    [rx, ry, rz]
}

pub fn multiply(a: &Matrix, b: &Matrix) -> Matrix {
    let mut out = [[0.0; 3]; 3];
    for (i, row) in out.iter_mut().enumerate() {
        for (j, value) in row.iter_mut().enumerate() {
            *value = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    out
}

pub fn apply_matrix(m: &Matrix, v: &Point) -> Point {
    [0, 1, 2].map(|i| m[i][0] * v[0] + m[i][1] * v[1] + m[i][2] * v[2])
}

impl Transform {
    /// The identity of `kind` about `center`.
    pub fn identity(kind: Kind, center: Point) -> Transform {
        let parameters = match kind {
            Kind::Rigid => vec![0.0; 6],
            Kind::Affine => vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0],
        };
        Transform { kind, parameters, center }
    }

    pub fn translation(&self) -> Point {
        let n = self.parameters.len();
        [self.parameters[n - 3], self.parameters[n - 2], self.parameters[n - 1]]
    }

    pub fn set_translation(&mut self, t: Point) {
        let n = self.parameters.len();
        self.parameters[n - 3..].copy_from_slice(&t);
    }

    /// The linear part `A`.
    pub fn matrix(&self) -> Matrix {
        match self.kind {
            Kind::Rigid => {
                let [rx, ry, rz] = rotation(&self.parameters[..3]);
                multiply(&rz, &multiply(&rx, &ry))
            }
            Kind::Affine => {
                let p = &self.parameters;
                [[p[0], p[1], p[2]], [p[3], p[4], p[5]], [p[6], p[7], p[8]]]
            }
        }
    }

    /// `A` and the offset `o` of `T(x) = A x + o`, for mapping many points.
    pub fn linear_offset(&self) -> (Matrix, Point) {
        let a = self.matrix();
        let ac = apply_matrix(&a, &self.center);
        let t = self.translation();
        (a, [0, 1, 2].map(|i| t[i] + self.center[i] - ac[i]))
    }

    pub fn apply(&self, x: &Point) -> Point {
        let (a, o) = self.linear_offset();
        let ax = apply_matrix(&a, x);
        [0, 1, 2].map(|i| ax[i] + o[i])
    }

    /// Precomputed derivatives for [`Derivatives::project`].
    pub fn derivatives(&self) -> Derivatives {
        let rotation = match self.kind {
            Kind::Rigid => {
                let [rx, ry, rz] = rotation(&self.parameters[..3]);
                let (sx, cx) = self.parameters[0].sin_cos();
                let (sy, cy) = self.parameters[1].sin_cos();
                let (sz, cz) = self.parameters[2].sin_cos();
                let drx = [[0.0, 0.0, 0.0], [0.0, -sx, -cx], [0.0, cx, -sx]];
                let dry = [[-sy, 0.0, cy], [0.0, 0.0, 0.0], [-cy, 0.0, -sy]];
                let drz = [[-sz, -cz, 0.0], [cz, -sz, 0.0], [0.0, 0.0, 0.0]];
                Some([
                    multiply(&rz, &multiply(&drx, &ry)),
                    multiply(&rz, &multiply(&rx, &dry)),
                    multiply(&drz, &multiply(&rx, &ry)),
                ])
            }
            Kind::Affine => None,
        };
        Derivatives { kind: self.kind, rotation, center: self.center }
    }

    /// ITK's text transform file (`#Insight Transform File V1.0`).
    pub fn to_itk_text(&self) -> String {
        format!("#Insight Transform File V1.0\n#Transform 0\n{}", self.itk_block())
    }

    /// The `Transform:`, `Parameters:` and `FixedParameters:` lines of this transform.
    pub fn itk_block(&self) -> String {
        let join = |v: &[f64]| v.iter().map(|x| format!("{x:?}")).collect::<Vec<_>>().join(" ");
        let mut fixed = self.center.to_vec();
        if self.kind == Kind::Rigid {
            fixed.push(0.0); // ComputeZYX off: A = Rz Rx Ry
        }
        format!(
            "Transform: {}\nParameters: {}\nFixedParameters: {}\n",
            self.kind.itk_name(),
            join(&self.parameters),
            join(&fixed)
        )
    }

    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "transform": self.kind.itk_name(),
            "parameters": self.parameters,
            "center": self.center,
            "maps": "fixed physical point (LPS, mm) to moving physical point: T(x) = A (x - center) + center + translation",
        })
    }

    /// Reads ITK's text format or this module's JSON.
    pub fn parse(text: &str) -> Result<Transform, String> {
        if text.trim_start().starts_with('{') {
            let value: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
            let numbers = |key: &str| -> Vec<f64> {
                value[key].as_array().map(|a| a.iter().filter_map(|v| v.as_f64()).collect()).unwrap_or_default()
            };
            let name = value["transform"].as_str().unwrap_or_default();
            return Transform::from_parts(name, numbers("parameters"), &numbers("center"));
        }
        let field = |key: &str| text.lines().find_map(|line| line.strip_prefix(key)).map(str::trim);
        let numbers = |key: &str| -> Result<Vec<f64>, String> {
            let line = field(key).ok_or_else(|| format!("no {key:?} line"))?;
            line.split_whitespace().map(|w| w.parse().map_err(|_| format!("{key} {w:?} is not a number"))).collect()
        };
        let name = field("Transform:").ok_or("no \"Transform:\" line")?;
        Transform::from_parts(name, numbers("Parameters:")?, &numbers("FixedParameters:")?)
    }

    pub fn from_parts(name: &str, parameters: Vec<f64>, fixed: &[f64]) -> Result<Transform, String> {
        let kind = if name.starts_with("Euler3DTransform") {
            Kind::Rigid
        } else if name.starts_with("AffineTransform") {
            Kind::Affine
        } else {
            return Err(format!("transform type {name:?} is not supported (Euler3DTransform or AffineTransform)"));
        };
        if parameters.len() != kind.parameter_count() || fixed.len() < 3 {
            let got = (parameters.len(), fixed.len());
            return Err(format!("{name} needs {} parameters and a 3-D centre, got {} and {}", kind.parameter_count(), got.0, got.1));
        }
        if kind == Kind::Rigid && fixed.get(3).is_some_and(|&zyx| zyx != 0.0) {
            return Err("Euler3DTransform with ComputeZYX on is not supported".into());
        }
        if parameters.iter().chain(fixed).any(|v| !v.is_finite()) {
            return Err("the transform holds a value that is not a finite number".into());
        }
        Ok(Transform { kind, parameters, center: [fixed[0], fixed[1], fixed[2]] })
    }

    /// Saves as ITK text (`.tfm`, `.txt`) or JSON (`.json`).
    pub fn save(&self, path: &Path) -> Result<(), String> {
        save_transform_text(path, || self.to_json(), || self.to_itk_text())
    }

    pub fn load(path: &Path) -> Result<Transform, String> {
        load_transform_text(path, Transform::parse)
    }
}

/// What the metric gradients need of a transform: how a moving-space gradient at a fixed point
/// turns into a gradient over the parameters.
pub struct Derivatives {
    kind: Kind,
    rotation: Option<[Matrix; 3]>,
    center: Point,
}

impl Derivatives {
    /// Adds `weight * g^T dT(x)/dp` to `out` (one entry per parameter).
    pub fn project(&self, x: &Point, g: &Point, weight: f64, out: &mut [f64]) {
        let d = [x[0] - self.center[0], x[1] - self.center[1], x[2] - self.center[2]];
        match (&self.rotation, self.kind) {
            (Some(rotation), _) => {
                for (k, m) in rotation.iter().enumerate() {
                    let column = apply_matrix(m, &d);
                    out[k] += weight * (g[0] * column[0] + g[1] * column[1] + g[2] * column[2]);
                }
                (0..3).for_each(|i| out[3 + i] += weight * g[i]);
            }
            _ => {
                for i in 0..3 {
                    (0..3).for_each(|j| out[3 * i + j] += weight * g[i] * d[j]);
                    out[9 + i] += weight * g[i];
                }
            }
        }
    }
}

/// Writes a transform file in the form its extension names: JSON, or ITK text.
pub(crate) fn save_transform_text(path: &Path, json: impl FnOnce() -> serde_json::Value, itk: impl FnOnce() -> String) -> Result<(), String> {
    let text = match path.extension().and_then(|e| e.to_str()) {
        Some("json") => format!("{:#}\n", json()),
        Some("tfm" | "txt") => itk(),
        _ => return Err(format!("{}: a transform is saved as .tfm, .txt or .json", path.display())),
    };
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Reads a transform file with `parse`, errors prefixed by the path.
pub(crate) fn load_transform_text<T>(path: &Path, parse: impl FnOnce(&str) -> Result<T, String>) -> Result<T, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rigid_derivatives_match_finite_differences() {
        let t = Transform { kind: Kind::Rigid, parameters: vec![0.2, -0.3, 0.4, 1.0, 2.0, 3.0], center: [5.0, -4.0, 3.0] };
        let x = [10.0, 20.0, -7.0];
        let g = [0.3, -1.2, 0.7];
        let mut analytic = vec![0.0; 6];
        t.derivatives().project(&x, &g, 1.0, &mut analytic);
        for (k, a) in analytic.iter().enumerate() {
            let (mut plus, mut minus) = (t.clone(), t.clone());
            plus.parameters[k] += 1e-6;
            minus.parameters[k] -= 1e-6;
            let (p, m) = (plus.apply(&x), minus.apply(&x));
            let numeric: f64 = (0..3).map(|i| g[i] * (p[i] - m[i]) / 2e-6).sum();
            assert!((a - numeric).abs() < 1e-5, "parameter {k}: {a} vs {numeric}");
        }
    }

    #[test]
    fn itk_text_and_json_round_trip() {
        let t = Transform { kind: Kind::Affine, parameters: (0..12).map(|v| v as f64 * 0.5).collect(), center: [1.0, 2.0, 3.0] };
        assert_eq!(Transform::parse(&t.to_itk_text()).unwrap(), t);
        assert_eq!(Transform::parse(&t.to_json().to_string()).unwrap(), t);
        let rigid = Transform::identity(Kind::Rigid, [0.0; 3]);
        assert!(rigid.to_itk_text().contains("FixedParameters: 0.0 0.0 0.0 0.0"));
        assert!(Transform::parse("Transform: BSplineTransform\nParameters: 1\nFixedParameters: 1").is_err());
    }

    #[test]
    fn the_centre_is_kept_by_a_pure_rotation() {
        let t = Transform { kind: Kind::Rigid, parameters: vec![0.5, 0.1, -0.2, 0.0, 0.0, 0.0], center: [3.0, 4.0, 5.0] };
        let c = t.apply(&[3.0, 4.0, 5.0]);
        assert!(c.iter().zip([3.0, 4.0, 5.0]).all(|(a, b)| (a - b).abs() < 1e-12));
    }
}


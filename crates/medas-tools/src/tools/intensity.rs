//! `preprocess.window_level`: CT display windows (width/level, with the usual presets) mapped
//! to a float range, as SimpleITK's IntensityWindowingImageFilter does.

use crate::context::Context;
use crate::data::{Data, Inputs, Outputs, take_image};
use crate::error::ToolError;
use crate::params::Params;
use crate::registry::{Tool, ToolEntry};
use crate::spec::{Category, ParamSpec, PortSpec, PortType, ToolSpec};
use crate::tools::{bad_param, metadata_for_new_values};
use medas_image::{Scalar, Voxels, with_voxels};
use ndarray::{ArcArray, IxDyn, Zip};
use std::sync::Arc;

/// Preset names and their (width, level) in HU; `none` takes `width` and `level`.
const PRESETS: [(&str, f64, f64); 5] = [
    ("lung", 1500.0, -600.0),
    ("mediastinum", 350.0, 50.0),
    ("liver", 150.0, 30.0),
    ("brain", 80.0, 40.0),
    ("bone", 1800.0, 400.0),
];
const PRESET_NAMES: [&str; 6] = ["none", "lung", "mediastinum", "liver", "brain", "bone"];

/// A linear map of `[low, high]` (input units) onto `[out_min, out_max]`, clamped outside.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub low: f64,
    pub high: f64,
    pub out_min: f64,
    pub out_max: f64,
}

impl Window {
    /// The window of `width` centred on `level` (both in the image's unit, e.g. HU).
    pub fn from_width_level(width: f64, level: f64, out_min: f64, out_max: f64) -> Window {
        Window { low: level - width / 2.0, high: level + width / 2.0, out_min, out_max }
    }

    /// The value `x` maps to. NaN stays NaN, as in ITK (neither comparison holds).
    #[inline]
    pub fn map(&self, x: f64, scale: f64, shift: f64) -> f64 {
        if x < self.low {
            self.out_min
        } else if x > self.high {
            self.out_max
        } else {
            x * scale + shift
        }
    }

    /// ITK's `scale` and `shift`, so that in-window values are `x * scale + shift`.
    fn coefficients(&self) -> (f64, f64) {
        let scale = (self.out_max - self.out_min) / (self.high - self.low);
        (scale, self.out_min - self.low * scale)
    }

    /// Maps every voxel (computed in f64, stored as f32), in parallel, keeping the memory layout.
    pub fn apply(&self, voxels: &Voxels) -> Voxels {
        with_voxels!(voxels, a => Voxels::F32(self.apply_array(a)))
    }

    fn apply_array<T: Scalar>(&self, array: &ArcArray<T, IxDyn>) -> ArcArray<f32, IxDyn> {
        let (scale, shift) = self.coefficients();
        Zip::from(array).par_map_collect(|v| self.map(v.to_f64(), scale, shift) as f32).into_shared()
    }
}

pub struct WindowLevel(ToolSpec);

impl WindowLevel {
    fn new() -> WindowLevel {
        WindowLevel(
            ToolSpec::new(
                "preprocess.window_level",
                Category::Preprocess,
                "Window / level",
                "Maps the intensity window [level - width/2, level + width/2] linearly onto \
                 [output_min, output_max] and clamps values outside it, as SimpleITK's \
                 IntensityWindowing (computed in double precision, stored as float32; NaN stays NaN). \
                 A CT preset (lung W1500 L-600, mediastinum W350 L50, liver W150 L30, brain W80 L40, \
                 bone W1800 L400, in HU) replaces width and level. Geometry and metadata are kept, \
                 except the value unit and display windows, which no longer describe the values.",
            )
            .param(ParamSpec::choice("preset", "A CT window preset; none uses width and level.", &PRESET_NAMES).default("none"))
            .param(ParamSpec::float("width", "Window width (must be > 0), used when preset is none.").default(400.0).unit("HU").tunable())
            .param(ParamSpec::float("level", "Window centre, used when preset is none.").default(40.0).unit("HU").tunable())
            .param(ParamSpec::float("output_min", "Value of the window's lower end and below.").default(0.0))
            .param(ParamSpec::float("output_max", "Value of the window's upper end and above (must be > output_min).").default(1.0))
            .input(PortSpec::new("image", PortType::Image, "The image to window (CT in HU for the presets)."))
            .output(PortSpec::new("image", PortType::Image, "The windowed image, float32.")),
        )
    }

    /// The window the parameters describe, or an error naming the parameter at fault.
    fn window(&self, params: &Params) -> Result<Window, ToolError> {
        let id = &self.0.id;
        let preset = params.text("preset")?;
        let (width, level) = match PRESETS.iter().find(|(name, ..)| *name == preset) {
            Some(&(_, width, level)) => (width, level),
            None => (params.float("width")?, params.float("level")?),
        };
        if width <= 0.0 {
            return Err(bad_param(id, "width", format!("must be greater than 0 HU, got {width}")));
        }
        let (out_min, out_max) = (params.float("output_min")?, params.float("output_max")?);
        if out_max <= out_min {
            return Err(bad_param(id, "output_max", format!("must be greater than output_min ({out_min}), got {out_max}")));
        }
        Ok(Window::from_width_level(width, level, out_min, out_max))
    }
}

impl Tool for WindowLevel {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn run(&self, mut inputs: Inputs, params: &Params, _context: &Context) -> Result<Outputs, ToolError> {
        let id = &self.0.id;
        let image = take_image(&mut inputs, id, "image")?;
        let window = self.window(params)?;
        let voxels = window.apply(image.voxels());
        let failed = |e: medas_image::ImageError| ToolError::Failed { tool: id.clone(), message: e.to_string() };
        let mut windowed = image.with_voxels(voxels).map_err(failed)?;
        windowed.metadata = metadata_for_new_values(&image.metadata);
        Ok(Outputs::from([("image".to_string(), Data::Image(windowed))]))
    }
}

inventory::submit! { ToolEntry { build: || Arc::new(WindowLevel::new()) } }

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_map_linearly_inside_the_window_and_clamp_outside() {
        let window = Window::from_width_level(100.0, 50.0, -1.0, 1.0);
        let voxels = Voxels::from_fortran_vec(&[3, 2], vec![-5i16, 0, 25, 50, 100, 400]).unwrap();
        let out = window.apply(&voxels);
        let values = out.as_array::<f32>().unwrap().as_slice_memory_order().unwrap().to_vec();
        assert_eq!(values, vec![-1.0, -1.0, -0.5, 0.0, 1.0, 1.0]);
        let nan = window.apply(&Voxels::from_fortran_vec(&[1], vec![f64::NAN]).unwrap());
        assert!(nan.as_array::<f32>().unwrap()[[0]].is_nan());
    }

    #[test]
    fn fortran_layout_is_kept() {
        let voxels = Voxels::from_fortran_vec(&[2, 3], vec![0u8, 1, 2, 3, 4, 5]).unwrap();
        let out = Window::from_width_level(10.0, 5.0, 0.0, 10.0).apply(&voxels);
        let array = out.as_array::<f32>().unwrap();
        assert_eq!(array[[1, 0]], 1.0);
        assert_eq!(array.view().reversed_axes().as_slice().unwrap(), &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    }
}

//! What the user asks for (serde config structs) and what the kernels receive once it has been
//! checked against the input shape (plain, resolved geometry).
//!
//! All conventions are PyTorch's: NCDHW, `stride` defaults to `kernel`, padding counts as `-inf`
//! for max pooling and as zeros for average pooling, `ceil_mode = false`, and padding may be at
//! most half the kernel on every axis.

use serde::{Deserialize, Serialize};

use super::OpsError;

/// `torch.nn.MaxPool3d(kernel, stride, padding, dilation)` with `ceil_mode = false`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaxPool3dConfig {
    /// Window size `[d, h, w]`.
    pub kernel: [usize; 3],
    /// Step between windows; `None` means `kernel` (PyTorch's default).
    #[serde(default)]
    pub stride: Option<[usize; 3]>,
    /// Implicit `-inf` border on each side; at most `kernel / 2`.
    #[serde(default)]
    pub padding: [usize; 3],
    /// Spacing between window taps.
    #[serde(default = "ones")]
    pub dilation: [usize; 3],
}

/// `torch.nn.AvgPool3d(kernel, stride, padding, count_include_pad)` with `ceil_mode = false`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AvgPool3dConfig {
    /// Window size `[d, h, w]`.
    pub kernel: [usize; 3],
    /// Step between windows; `None` means `kernel` (PyTorch's default).
    #[serde(default)]
    pub stride: Option<[usize; 3]>,
    /// Implicit zero border on each side; at most `kernel / 2`.
    #[serde(default)]
    pub padding: [usize; 3],
    /// Whether padded zeros count in the divisor (PyTorch's default `true`).
    #[serde(default = "yes")]
    pub count_include_pad: bool,
}

/// How an NCDHW tensor is resampled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Interpolate3dMode {
    /// `mode="trilinear"`.
    #[default]
    Trilinear,
    /// `mode="nearest"` (PyTorch's legacy nearest: `floor(dst * scale)`).
    Nearest,
}

/// The target of a resampling: an explicit size or a per-axis scale factor.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resize3d {
    /// Output `[d, h, w]`.
    Size([usize; 3]),
    /// Output is `floor(input * factor)`; as in PyTorch (without `recompute_scale_factor`), the
    /// source coordinates step by `1 / factor`, not by `input / output`.
    ScaleFactor([f64; 3]),
}

/// `torch.nn.functional.interpolate` on 5-D tensors.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Interpolate3dConfig {
    pub resize: Resize3d,
    #[serde(default)]
    pub mode: Interpolate3dMode,
    /// Trilinear only (nearest refuses `true`, as PyTorch does); PyTorch's default is `false`.
    #[serde(default)]
    pub align_corners: bool,
}

fn ones() -> [usize; 3] {
    [1; 3]
}

fn yes() -> bool {
    true
}

impl MaxPool3dConfig {
    pub fn new(kernel: [usize; 3]) -> Self {
        Self {
            kernel,
            stride: None,
            padding: [0; 3],
            dilation: [1; 3],
        }
    }
    pub fn with_stride(self, stride: [usize; 3]) -> Self {
        Self {
            stride: Some(stride),
            ..self
        }
    }
    pub fn with_padding(self, padding: [usize; 3]) -> Self {
        Self { padding, ..self }
    }
    pub fn with_dilation(self, dilation: [usize; 3]) -> Self {
        Self { dilation, ..self }
    }

    /// Checks the options against an input's spatial size `[d, h, w]`.
    pub fn window(&self, input: [usize; 3]) -> Result<PoolWindow, OpsError> {
        PoolWindow::resolve(
            "max_pool3d",
            input,
            self.kernel,
            self.stride,
            self.padding,
            self.dilation,
        )
    }
}

impl AvgPool3dConfig {
    pub fn new(kernel: [usize; 3]) -> Self {
        Self {
            kernel,
            stride: None,
            padding: [0; 3],
            count_include_pad: true,
        }
    }
    pub fn with_stride(self, stride: [usize; 3]) -> Self {
        Self {
            stride: Some(stride),
            ..self
        }
    }
    pub fn with_padding(self, padding: [usize; 3]) -> Self {
        Self { padding, ..self }
    }
    pub fn with_count_include_pad(self, count_include_pad: bool) -> Self {
        Self {
            count_include_pad,
            ..self
        }
    }

    /// Checks the options against an input's spatial size `[d, h, w]`.
    pub fn window(&self, input: [usize; 3]) -> Result<PoolWindow, OpsError> {
        PoolWindow::resolve(
            "avg_pool3d",
            input,
            self.kernel,
            self.stride,
            self.padding,
            [1; 3],
        )
    }
}

impl Interpolate3dConfig {
    pub fn size(size: [usize; 3], mode: Interpolate3dMode, align_corners: bool) -> Self {
        Self {
            resize: Resize3d::Size(size),
            mode,
            align_corners,
        }
    }
    pub fn scale(factor: [f64; 3], mode: Interpolate3dMode, align_corners: bool) -> Self {
        Self {
            resize: Resize3d::ScaleFactor(factor),
            mode,
            align_corners,
        }
    }

    /// Checks the options against an input's spatial size `[d, h, w]`.
    pub fn plan(&self, input: [usize; 3]) -> Result<ResizePlan, OpsError> {
        let axis = |a: usize| -> Result<AxisResize, OpsError> {
            let (output, scale_factor) = match self.resize {
                Resize3d::Size(size) => (size[a], None),
                Resize3d::ScaleFactor(factor) => {
                    let f = factor[a];
                    if !(f.is_finite() && f > 0.0) {
                        return Err(invalid(
                            "interpolate3d",
                            "scale_factor",
                            "finite and > 0",
                            factor,
                        ));
                    }
                    ((input[a] as f64 * f).floor() as usize, Some(f))
                }
            };
            if output == 0 {
                return Err(OpsError::EmptyOutput {
                    op: "interpolate3d",
                    input,
                    axis: a,
                });
            }
            Ok(AxisResize {
                input: input[a],
                output,
                mode: self.mode,
                align_corners: self.align_corners,
                scale_factor,
            })
        };
        if self.align_corners && self.mode == Interpolate3dMode::Nearest {
            // PyTorch refuses it too: nearest sampling has no corner convention.
            return Err(invalid(
                "interpolate3d",
                "align_corners",
                "false for nearest mode",
                true,
            ));
        }
        if input.contains(&0) {
            return Err(OpsError::EmptyInput {
                op: "interpolate3d",
                input,
            });
        }
        Ok(ResizePlan {
            axes: [axis(0)?, axis(1)?, axis(2)?],
        })
    }
}

fn invalid<T: std::fmt::Debug>(
    op: &'static str,
    option: &'static str,
    rule: &str,
    value: T,
) -> OpsError {
    OpsError::InvalidOption {
        op,
        option,
        rule: rule.to_string(),
        value: format!("{value:?}"),
    }
}

/// A checked pooling window for one input size: every field is valid and `output >= 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolWindow {
    pub input: [usize; 3],
    pub output: [usize; 3],
    pub kernel: [usize; 3],
    pub stride: [usize; 3],
    pub padding: [usize; 3],
    pub dilation: [usize; 3],
}

impl PoolWindow {
    fn resolve(
        op: &'static str,
        input: [usize; 3],
        kernel: [usize; 3],
        stride: Option<[usize; 3]>,
        padding: [usize; 3],
        dilation: [usize; 3],
    ) -> Result<Self, OpsError> {
        let stride = stride.unwrap_or(kernel);
        if kernel.contains(&0) {
            return Err(invalid(op, "kernel", ">= 1 on every axis", kernel));
        }
        if stride.contains(&0) {
            return Err(invalid(op, "stride", ">= 1 on every axis", stride));
        }
        if dilation.contains(&0) {
            return Err(invalid(op, "dilation", ">= 1 on every axis", dilation));
        }
        if (0..3).any(|a| padding[a] > kernel[a] / 2) {
            let rule = format!("at most kernel / 2 = {:?}", kernel.map(|k| k / 2));
            return Err(invalid(op, "padding", &rule, padding));
        }
        if input.contains(&0) {
            return Err(OpsError::EmptyInput { op, input });
        }
        let mut output = [0; 3];
        for a in 0..3 {
            let span = dilation[a] * (kernel[a] - 1) + 1;
            let padded = input[a] + 2 * padding[a];
            if padded < span {
                return Err(OpsError::EmptyOutput { op, input, axis: a });
            }
            output[a] = (padded - span) / stride[a] + 1;
        }
        Ok(Self {
            input,
            output,
            kernel,
            stride,
            padding,
            dilation,
        })
    }
}

/// A checked resampling of one axis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AxisResize {
    pub input: usize,
    pub output: usize,
    pub mode: Interpolate3dMode,
    pub align_corners: bool,
    /// The user's factor when the size came from one (changes the coordinate step, as in PyTorch).
    pub scale_factor: Option<f64>,
}

/// A checked resampling of the three spatial axes `[d, h, w]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResizePlan {
    pub axes: [AxisResize; 3],
}

impl ResizePlan {
    pub fn output(&self) -> [usize; 3] {
        self.axes.map(|a| a.output)
    }
}

/// For every output index along one axis: the two source indices and the weight of the upper one.
/// Output `i` = `(1 - weight[i]) * x[lower[i]] + weight[i] * x[upper[i]]`. Nearest mode has
/// `upper == lower` and weight 0.
#[derive(Debug, Clone, PartialEq)]
pub struct AxisTaps {
    pub lower: Vec<usize>,
    pub upper: Vec<usize>,
    pub weight: Vec<f64>,
}

impl AxisResize {
    /// PyTorch's `area_pixel_compute_scale`: source units per output unit.
    fn step(&self) -> f64 {
        let (input, output) = (self.input as f64, self.output as f64);
        match (self.mode, self.align_corners) {
            (Interpolate3dMode::Trilinear, true) if self.output > 1 => {
                (input - 1.0) / (output - 1.0)
            }
            (Interpolate3dMode::Trilinear, true) => 0.0,
            _ => self.scale_factor.map_or(input / output, |f| 1.0 / f),
        }
    }

    /// The source taps of every output index (PyTorch's `area_pixel_compute_source_index` and
    /// `nearest_idx`).
    pub fn taps(&self) -> AxisTaps {
        let step = self.step();
        let last = self.input - 1;
        let mut taps = AxisTaps {
            lower: Vec::with_capacity(self.output),
            upper: Vec::with_capacity(self.output),
            weight: Vec::with_capacity(self.output),
        };
        for dst in 0..self.output {
            let dst = dst as f64;
            let (lower, upper, weight) = match self.mode {
                Interpolate3dMode::Nearest => {
                    let src = ((dst * step).floor() as usize).min(last);
                    (src, src, 0.0)
                }
                Interpolate3dMode::Trilinear => {
                    let src = if self.align_corners {
                        dst * step
                    } else {
                        ((dst + 0.5) * step - 0.5).max(0.0)
                    };
                    let lower = (src.floor() as usize).min(last);
                    let upper = (lower + 1).min(last);
                    (
                        lower,
                        upper,
                        if upper == lower {
                            0.0
                        } else {
                            src - lower as f64
                        },
                    )
                }
            };
            taps.lower.push(lower);
            taps.upper.push(upper);
            taps.weight.push(weight);
        }
        taps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_size_follows_pytorch_formula() {
        // floor((in + 2p - d(k-1) - 1) / s) + 1: (9 + 2 - 2*2 - 1)/2 + 1 = 4 on depth.
        let window = MaxPool3dConfig::new([3, 2, 1])
            .with_stride([2, 1, 1])
            .with_padding([1, 1, 0])
            .with_dilation([2, 1, 1])
            .window([9, 4, 5])
            .unwrap();
        assert_eq!(window.output, [4, 5, 5]);
    }

    #[test]
    fn half_pixel_taps_clamp_at_the_border() {
        // in 2 -> out 4, align_corners false: src = (dst + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25
        // -> clamp to 0; lower 0,0,0,1; upper 1,1,1,1; weight 0, .25, .75, 0 (upper == lower).
        let axis = AxisResize {
            input: 2,
            output: 4,
            mode: Interpolate3dMode::Trilinear,
            align_corners: false,
            scale_factor: None,
        };
        let taps = axis.taps();
        assert_eq!(taps.lower, vec![0, 0, 0, 1]);
        assert_eq!(taps.upper, vec![1, 1, 1, 1]);
        assert_eq!(taps.weight, vec![0.0, 0.25, 0.75, 0.0]);
    }

    #[test]
    fn scale_factor_sets_the_coordinate_step() {
        // in 5, factor 1.5 -> out floor(7.5) = 7, step 1/1.5 (not 5/7); nearest src = floor(dst/1.5).
        let config = Interpolate3dConfig::scale([1.5, 1.0, 1.0], Interpolate3dMode::Nearest, false);
        let plan = config.plan([5, 1, 1]).unwrap();
        assert_eq!(plan.output(), [7, 1, 1]);
        assert_eq!(plan.axes[0].taps().lower, vec![0, 0, 1, 2, 2, 3, 4]);
    }
}

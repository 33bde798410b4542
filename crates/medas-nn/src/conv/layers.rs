//! Drop-in replacements for `burn::nn::conv::Conv2d` / `Conv3d` (groups = 1) that run the fast
//! convolution. Fields, parameter names and layouts are Burn's, so weights saved from one load
//! into the other.

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig, Conv3d, Conv3dConfig};
use burn::nn::{PaddingConfig2d, PaddingConfig3d};
use burn::tensor::{Device, Tensor, ops::ConvOptions};

use super::{ConvError, conv2d, conv3d};

/// Burn's "same" padding rule (`burn_nn::padding`, which ignores dilation): pad so that the
/// output has `ceil(size / stride)` voxels, the odd voxel going after.
fn same_padding(kernel: usize, stride: usize, size: usize) -> (usize, usize) {
    let out = size.div_ceil(stride);
    let total = if out > 0 {
        ((out - 1) * stride + kernel).saturating_sub(size)
    } else {
        0
    };
    (total / 2, total - total / 2)
}

fn check_groups(groups: usize) -> Result<(), ConvError> {
    if groups == 1 {
        Ok(())
    } else {
        Err(ConvError::GroupsUnsupported(groups))
    }
}

/// The layer struct, its constructors and `forward`, identical for both ranks but for types.
macro_rules! fast_conv_layer {
    ($(#[$doc:meta])* $name:ident, $burn:ident, $config:ident, $padding:ident, $dims:literal, $axes:literal) => {
        $(#[$doc])*
        #[derive(Module, Debug)]
        pub struct $name {
            pub weight: Param<Tensor<$dims>>,
            pub bias: Option<Param<Tensor<1>>>,
            pub stride: [usize; $axes],
            pub kernel_size: [usize; $axes],
            pub dilation: [usize; $axes],
            #[module(skip)]
            pub padding: $padding,
        }

        impl $name {
            #[doc = concat!("Initialises the layer exactly as `config.init(device)` would a Burn `", stringify!($burn), "`.")]
            pub fn new(config: &$config, device: &Device) -> Result<Self, ConvError> {
                check_groups(config.groups)?;
                Self::from_burn(config.init(device))
            }

            #[doc = concat!("Takes over the parameters of a Burn `", stringify!($burn), "` (groups must be 1).")]
            pub fn from_burn(conv: $burn) -> Result<Self, ConvError> {
                check_groups(conv.groups)?;
                Ok(Self {
                    weight: conv.weight,
                    bias: conv.bias,
                    stride: conv.stride,
                    kernel_size: conv.kernel_size,
                    dilation: conv.dilation,
                    padding: conv.padding,
                })
            }

            #[doc = concat!("Like Burn's `", stringify!($burn), "::forward`.")]
            ///
            /// # Panics
            /// With the [`ConvError`] message when the input does not fit the layer (use
            /// `try_forward` to handle it).
            pub fn forward(&self, x: Tensor<$dims>) -> Tensor<$dims> {
                self.try_forward(x)
                    .unwrap_or_else(|e| panic!("{}: {e}", stringify!($name)))
            }

            fn options(&self, padding: [(usize, usize); $axes]) -> Result<ConvOptions<$axes>, ConvError> {
                if self.stride.contains(&0) || self.dilation.contains(&0) {
                    return Err(ConvError::ZeroStepOrDilation);
                }
                Ok(ConvOptions::new_with_padding(self.stride, padding, self.dilation, 1))
            }
        }
    };
}

fast_conv_layer!(
    /// A 2-D convolution layer: `weight [out, in, kH, kW]`, `bias [out]`.
    FastConv2d, Conv2d, Conv2dConfig, PaddingConfig2d, 4, 2
);
fast_conv_layer!(
    /// A 3-D convolution layer: `weight [out, in, kD, kH, kW]`, `bias [out]`.
    FastConv3d, Conv3d, Conv3dConfig, PaddingConfig3d, 5, 3
);

impl FastConv2d {
    /// `x [batch, in, H, W]` to `[batch, out, oH, oW]`, or why the shapes do not fit.
    pub fn try_forward(&self, x: Tensor<4>) -> Result<Tensor<4>, ConvError> {
        let [_, _, h, w] = x.dims();
        let padding = match self.padding {
            PaddingConfig2d::Valid => [(0, 0); 2],
            PaddingConfig2d::Same => [
                same_padding(self.kernel_size[0], self.stride[0], h),
                same_padding(self.kernel_size[1], self.stride[1], w),
            ],
            PaddingConfig2d::Explicit(top, left, bottom, right) => [(top, bottom), (left, right)],
        };
        let bias = self.bias.as_ref().map(Param::val);
        conv2d(x, self.weight.val(), bias, &self.options(padding)?)
    }
}

impl FastConv3d {
    /// `x [batch, in, D, H, W]` to `[batch, out, oD, oH, oW]`, or why the shapes do not fit.
    pub fn try_forward(&self, x: Tensor<5>) -> Result<Tensor<5>, ConvError> {
        let [_, _, d, h, w] = x.dims();
        let padding = match self.padding {
            PaddingConfig3d::Valid => [(0, 0); 3],
            PaddingConfig3d::Same => {
                let size = [d, h, w];
                std::array::from_fn(|a| same_padding(self.kernel_size[a], self.stride[a], size[a]))
            }
            PaddingConfig3d::Explicit(pd, ph, pw) => [(pd, pd), (ph, ph), (pw, pw)],
        };
        let bias = self.bias.as_ref().map(Param::val);
        conv3d(x, self.weight.val(), bias, &self.options(padding)?)
    }
}

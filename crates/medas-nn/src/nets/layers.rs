//! The layers every network is made of, for 2-D and 3-D alike. Activations are always
//! `Tensor<5>` (N, C, D, H, W); a 2-D network sees D = 1 and its layers drop that axis around
//! Burn's 2-D kernels (a reshape, no copy), so one network definition serves both.

use burn::module::Module;
use crate::conv::{FastConv2d, FastConv3d};
use burn::nn::conv::{Conv2dConfig, Conv3dConfig, ConvTranspose2d, ConvTranspose2dConfig, ConvTranspose3d, ConvTranspose3dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::norm::{Normalization, NormalizationConfig};
use burn::nn::{BatchNormConfig, GroupNormConfig, InstanceNormConfig, PaddingConfig2d, PaddingConfig3d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::NetworkError;

/// 2-D (depth 1) or 3-D.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Spatial {
    #[serde(rename = "2d")]
    Two,
    #[default]
    #[serde(rename = "3d")]
    Three,
}

impl Spatial {
    pub fn rank(self) -> usize {
        match self {
            Spatial::Two => 2,
            Spatial::Three => 3,
        }
    }
}

/// The normalisation after each convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Norm {
    /// Batch statistics while training, running averages at inference.
    Batch,
    /// Per sample and channel (nnU-Net's default).
    #[default]
    Instance,
    /// Channels in groups of `norm_groups`; the number of channels must divide.
    Group,
    None,
}

/// The non-linearity after each normalisation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    Relu,
    /// Slope 0.01 below zero (nnU-Net's default).
    #[default]
    LeakyRelu,
}

impl Activation {
    pub fn apply(self, x: Tensor<5>) -> Tensor<5> {
        match self {
            Activation::Relu => relu(x),
            // One parallel pass each way instead of Burn's three recorded single-threaded ones.
            Activation::LeakyRelu => crate::ops::leaky_relu(x, 0.01),
        }
    }
}

/// What the layers of one network share.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayerStyle {
    pub spatial: Spatial,
    pub norm: Norm,
    /// The number of groups of [`Norm::Group`] (PyTorch's `num_groups`).
    pub norm_groups: usize,
    pub activation: Activation,
}

impl LayerStyle {
    /// A normalisation over `channels`, checked (Burn's constructors panic on bad sizes).
    pub fn norm(&self, channels: usize, device: &Device) -> Result<Normalization, NetworkError> {
        let config: NormalizationConfig = match self.norm {
            Norm::Batch => BatchNormConfig::new(channels).into(),
            Norm::Instance => InstanceNormConfig::new(channels).into(),
            Norm::Group => {
                if self.norm_groups == 0 || !channels.is_multiple_of(self.norm_groups) {
                    return Err(NetworkError::Invalid(format!(
                        "group normalisation: {channels} channels do not split into {} groups",
                        self.norm_groups
                    )));
                }
                GroupNormConfig::new(self.norm_groups, channels).into()
            }
            Norm::None => NormalizationConfig::Identity,
        };
        Ok(config.init(device))
    }
}

/// A convolution with "same" padding for odd kernels (or none for stride = kernel), on our
/// im2col + GEMM kernels (`crate::conv`: several times faster than Burn's backward on the CPU;
/// the same parameters and layout as Burn's Conv2d/Conv3d).
#[derive(Module, Debug)]
pub enum Conv {
    Two(FastConv2d),
    Three(FastConv3d),
}

impl Conv {
    /// `kernel` and `stride` per axis (isotropic); padding keeps the size when stride is 1.
    pub fn new(spatial: Spatial, channels: [usize; 2], kernel: usize, stride: usize, bias: bool, device: &Device) -> Conv {
        let pad = if stride == 1 { kernel / 2 } else { 0 };
        // The configs are valid by construction (positive sizes, groups 1).
        match spatial {
            Spatial::Two => Conv::Two(
                FastConv2d::new(
                    &Conv2dConfig::new(channels, [kernel; 2]).with_stride([stride; 2]).with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad)).with_bias(bias),
                    device,
                )
                .expect("a valid 2-D convolution"),
            ),
            Spatial::Three => Conv::Three(
                FastConv3d::new(
                    &Conv3dConfig::new(channels, [kernel; 3]).with_stride([stride; 3]).with_padding(PaddingConfig3d::Explicit(pad, pad, pad)).with_bias(bias),
                    device,
                )
                .expect("a valid 3-D convolution"),
            ),
        }
    }

    pub fn forward(&self, x: Tensor<5>) -> Tensor<5> {
        match self {
            Conv::Two(conv) => conv.forward(x.squeeze_dim::<4>(2)).unsqueeze_dim(2),
            Conv::Three(conv) => conv.forward(x),
        }
    }
}

/// A transposed convolution with kernel = stride = `factor`: exact up-sampling by `factor`.
#[derive(Module, Debug)]
pub enum UpConv {
    Two(ConvTranspose2d),
    Three(ConvTranspose3d),
}

impl UpConv {
    pub fn new(spatial: Spatial, channels: [usize; 2], factor: usize, device: &Device) -> UpConv {
        match spatial {
            Spatial::Two => UpConv::Two(ConvTranspose2dConfig::new(channels, [factor; 2]).with_stride([factor; 2]).init(device)),
            Spatial::Three => UpConv::Three(ConvTranspose3dConfig::new(channels, [factor; 3]).with_stride([factor; 3]).init(device)),
        }
    }

    pub fn forward(&self, x: Tensor<5>) -> Tensor<5> {
        match self {
            UpConv::Two(up) => up.forward(x.squeeze_dim::<4>(2)).unsqueeze_dim(2),
            UpConv::Three(up) => up.forward(x),
        }
    }
}

/// Max pooling by 2 on every spatial axis (sizes must be even; the networks check).
#[derive(Module, Debug)]
pub struct MaxPool {
    two: Option<MaxPool2d>,
}

impl MaxPool {
    pub fn new(spatial: Spatial) -> MaxPool {
        MaxPool { two: (spatial == Spatial::Two).then(|| MaxPool2dConfig::new([2, 2]).init()) }
    }

    pub fn forward(&self, x: Tensor<5>) -> Tensor<5> {
        match &self.two {
            Some(pool) => pool.forward(x.squeeze_dim::<4>(2)).unsqueeze_dim(2),
            None => crate::ops::max_pool3d(x, &crate::ops::MaxPool3dConfig::new([2; 3])).expect("2x2x2 pooling of an even-sized volume is valid"),
        }
    }
}

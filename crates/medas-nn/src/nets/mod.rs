//! Networks by name. One JSON config (`{"name": "unet", "spatial": "2d", ...}`) builds any of
//! them; activations are `Tensor<5>` (N, C, D, H, W) throughout, a 2-D network taking D = 1.
//!
//! | name | what |
//! |---|---|
//! | `unet` | U-Net: plain two-convolution blocks |
//! | `res_unet` | U-Net with residual blocks |
//! | `dense_unet` | U-Net with dense blocks |
//! | `dp_unet` | U-Net with dual-path blocks |
//! | `vnet` | V-Net: residual stages, strided down-sampling |
//! | `fcn` | fully convolutional network with skips at every level |
//! | `classifier` | U-Net encoder + global pooling + linear (class logits) |
//! | `dpn` | Dual-Path Net classifier (dual-path blocks in the encoder) |

pub mod blocks;
mod classifier;
mod fcn;
pub mod init;
pub mod layers;
mod unet;
mod vnet;

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

pub use blocks::BlockKind;
pub use classifier::Classifier;
pub use fcn::Fcn;
pub use layers::{Activation, Norm, Spatial};
pub use unet::{EncoderDecoder, EncoderDecoderConfig};
pub use vnet::{VNet, VNetConfig};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NetworkError {
    #[error("{0}")]
    Invalid(String),
    #[error("network config: {0}")]
    Json(String),
    #[error("{network} expects input (N, {channels}, {expected}; got {got:?}")]
    Input { network: &'static str, channels: usize, expected: String, got: [usize; 5] },
}

/// A segmentation network's output: logits (N, classes, D, H, W) at the input's size, and for
/// deep supervision the logits of coarser decoder levels (finest first, each half the size of
/// the one before).
#[derive(Debug, Clone)]
pub struct SegmentationOutput {
    pub logits: Tensor<5>,
    pub deep: Vec<Tensor<5>>,
}

/// Which network, and its settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum NetworkConfig {
    Unet(EncoderDecoderConfig),
    ResUnet(EncoderDecoderConfig),
    DenseUnet(EncoderDecoderConfig),
    DpUnet(EncoderDecoderConfig),
    Vnet(VNetConfig),
    Fcn(EncoderDecoderConfig),
    Classifier(EncoderDecoderConfig),
    Dpn(EncoderDecoderConfig),
}

/// Every network name with a one-line description, for help texts and the tool catalog.
pub const NETWORKS: &[(&str, &str)] = &[
    ("unet", "U-Net (2-D or 3-D): plain two-convolution blocks, max pooling, transposed-convolution up-sampling, skips by concatenation"),
    ("res_unet", "U-Net whose blocks are residual (two convolutions + shortcut)"),
    ("dense_unet", "U-Net whose blocks are dense (each layer adds channels to a growing stack)"),
    ("dp_unet", "U-Net whose blocks are dual-path (half residual, half dense)"),
    ("vnet", "V-Net: residual stages of 5x5x5 convolutions, strided-convolution down-sampling"),
    ("fcn", "Fully convolutional network: encoder, class scores at every level summed coarse to fine"),
    ("classifier", "U-Net encoder, global average pooling and a linear layer: one label per image"),
    ("dpn", "Dual-Path Net classifier: dual-path blocks in the encoder, global pooling, linear"),
];

impl NetworkConfig {
    pub fn from_json(text: &str) -> Result<NetworkConfig, NetworkError> {
        serde_json::from_str(text).map_err(|e| NetworkError::Json(e.to_string()))
    }

    pub fn name(&self) -> &'static str {
        match self {
            NetworkConfig::Unet(_) => "unet",
            NetworkConfig::ResUnet(_) => "res_unet",
            NetworkConfig::DenseUnet(_) => "dense_unet",
            NetworkConfig::DpUnet(_) => "dp_unet",
            NetworkConfig::Vnet(_) => "vnet",
            NetworkConfig::Fcn(_) => "fcn",
            NetworkConfig::Classifier(_) => "classifier",
            NetworkConfig::Dpn(_) => "dpn",
        }
    }

    /// Builds the network on `device` with weights drawn from `seed` alone (the same weights on
    /// every machine and run; see [`init`]).
    pub fn build_seeded(&self, device: &Device, seed: u64) -> Result<Network, NetworkError> {
        Ok(init::initialize(self.build(device)?, seed))
    }

    /// Builds the network with weights from Burn's process-wide generator.
    pub fn build(&self, device: &Device) -> Result<Network, NetworkError> {
        let name = self.name();
        let with_block = |config: &EncoderDecoderConfig, block: BlockKind| -> Result<EncoderDecoderConfig, NetworkError> {
            config.validate(name)?;
            Ok(EncoderDecoderConfig { block, ..config.clone() })
        };
        let body = match self {
            NetworkConfig::Unet(c) => Body::EncoderDecoder(EncoderDecoder::new(&with_block(c, BlockKind::Plain)?, device)?),
            NetworkConfig::ResUnet(c) => Body::EncoderDecoder(EncoderDecoder::new(&with_block(c, BlockKind::Residual)?, device)?),
            NetworkConfig::DenseUnet(c) => Body::EncoderDecoder(EncoderDecoder::new(&with_block(c, BlockKind::Dense)?, device)?),
            NetworkConfig::DpUnet(c) => Body::EncoderDecoder(EncoderDecoder::new(&with_block(c, BlockKind::DualPath)?, device)?),
            NetworkConfig::Vnet(c) => {
                c.validate()?;
                Body::VNet(VNet::new(c, device)?)
            }
            NetworkConfig::Fcn(c) => Body::Fcn(Fcn::new(&with_block(c, BlockKind::Plain)?, device)?),
            NetworkConfig::Classifier(c) => Body::Classifier(Classifier::new(&with_block(c, BlockKind::Plain)?, device)?),
            NetworkConfig::Dpn(c) => Body::Classifier(Classifier::new(&with_block(c, BlockKind::DualPath)?, device)?),
        };
        let Outline { spatial, in_channels, .. } = self.outline();
        Ok(Network { body, name, spatial, in_channels })
    }

    /// The number of classes the network predicts.
    pub fn classes(&self) -> usize {
        self.outline().classes
    }

    pub fn in_channels(&self) -> usize {
        self.outline().in_channels
    }

    pub fn spatial(&self) -> Spatial {
        self.outline().spatial
    }

    /// Number of down-sampling steps.
    pub fn depth(&self) -> usize {
        self.outline().depth
    }

    /// The settings every network has, whatever its kind.
    fn outline(&self) -> Outline {
        match self {
            NetworkConfig::Vnet(c) => Outline { spatial: c.spatial, in_channels: c.in_channels, classes: c.classes, depth: c.depth },
            NetworkConfig::Unet(c)
            | NetworkConfig::ResUnet(c)
            | NetworkConfig::DenseUnet(c)
            | NetworkConfig::DpUnet(c)
            | NetworkConfig::Fcn(c)
            | NetworkConfig::Classifier(c)
            | NetworkConfig::Dpn(c) => Outline { spatial: c.spatial, in_channels: c.in_channels, classes: c.classes, depth: c.depth },
        }
    }
}

struct Outline {
    spatial: Spatial,
    in_channels: usize,
    classes: usize,
    depth: usize,
}

#[derive(Module, Debug)]
pub enum Body {
    EncoderDecoder(EncoderDecoder),
    VNet(VNet),
    Fcn(Fcn),
    Classifier(Classifier),
}

/// What a network gives: per-voxel logits or per-image class logits.
#[derive(Debug, Clone)]
pub enum NetworkOutput {
    Segmentation(SegmentationOutput),
    Classes(Tensor<2>),
}

/// A built network: its layers and what its input must look like.
#[derive(Module, Debug)]
pub struct Network {
    body: Body,
    #[module(skip)]
    name: &'static str,
    #[module(skip)]
    spatial: Spatial,
    #[module(skip)]
    in_channels: usize,
}

impl Network {
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The factor every spatial size (of H, W, and D in 3-D) must be divisible by.
    pub fn size_multiple(&self) -> usize {
        match &self.body {
            Body::EncoderDecoder(net) => net.size_multiple(),
            Body::VNet(net) => net.size_multiple(),
            Body::Fcn(net) => net.size_multiple(),
            Body::Classifier(net) => net.size_multiple(),
        }
    }

    /// Refuses an input whose channels, depth (1 in 2-D) or sizes do not fit.
    pub fn check_input(&self, shape: [usize; 5]) -> Result<(), NetworkError> {
        let m = self.size_multiple();
        let fits = |n: usize| n > 0 && n.is_multiple_of(m);
        let depth_fits = match self.spatial {
            Spatial::Two => shape[2] == 1,
            Spatial::Three => fits(shape[2]),
        };
        if shape[0] > 0 && shape[1] == self.in_channels && depth_fits && fits(shape[3]) && fits(shape[4]) {
            return Ok(());
        }
        let expected = match self.spatial {
            Spatial::Two => format!("1, H, W) with H and W multiples of {m}"),
            Spatial::Three => format!("D, H, W) with D, H and W multiples of {m}"),
        };
        Err(NetworkError::Input { network: self.name, channels: self.in_channels, expected, got: shape })
    }

    /// Runs the network on `x` after [`Network::check_input`].
    pub fn forward(&self, x: Tensor<5>) -> Result<NetworkOutput, NetworkError> {
        self.check_input(x.dims())?;
        Ok(match &self.body {
            Body::EncoderDecoder(net) => NetworkOutput::Segmentation(net.forward(x)),
            Body::VNet(net) => NetworkOutput::Segmentation(net.forward(x)),
            Body::Fcn(net) => NetworkOutput::Segmentation(net.forward(x)),
            Body::Classifier(net) => NetworkOutput::Classes(net.forward(x)),
        })
    }
}

/// Errors for the named counts that must be at least 1.
pub(crate) fn check_positive(network: &str, values: &[(&str, usize)]) -> Result<(), NetworkError> {
    match values.iter().find(|(_, v)| *v == 0) {
        Some((name, _)) => Err(NetworkError::Invalid(format!("{network}: {name} must be at least 1, got 0"))),
        None => Ok(()),
    }
}

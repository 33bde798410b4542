//! The blocks networks are built from: a plain convolution block, a residual block, a dense
//! block and a dual-path block. Each maps `in` channels to `out` channels at the same spatial
//! size, so an encoder-decoder can take any of them.

use burn::module::Module;
use burn::nn::norm::Normalization;
use burn::nn::{Dropout, DropoutConfig};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::NetworkError;
use super::layers::{Activation, Conv, LayerStyle};

/// Which block a network's stages use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BlockKind {
    /// `convs` × (convolution, normalisation, activation): U-Net's block.
    #[default]
    Plain,
    /// Two convolutions and an identity (or 1×1 projection) shortcut, activation after the sum
    /// (He et al. 2016).
    Residual,
    /// `convs` layers each adding out/4 channels to a growing stack, then a 1×1 transition to
    /// `out` (Huang et al. 2017).
    Dense,
    /// One half residual, one half densely growing (Chen et al. 2017's dual-path block):
    /// a 1×1, 3×3, 1×1 bottleneck whose output is split between both paths.
    DualPath,
}

/// Convolution, normalisation, activation.
#[derive(Module, Debug)]
pub struct Unit {
    conv: Conv,
    norm: Normalization,
    #[module(skip)]
    activation: Option<Activation>,
}

impl Unit {
    pub fn new(style: &LayerStyle, channels: [usize; 2], kernel: usize, stride: usize, device: &Device) -> Result<Unit, NetworkError> {
        Unit::with_activation(style, channels, kernel, stride, Some(style.activation), device)
    }

    fn with_activation(style: &LayerStyle, channels: [usize; 2], kernel: usize, stride: usize, activation: Option<Activation>, device: &Device) -> Result<Unit, NetworkError> {
        // A bias right before a normalisation is redundant.
        let bias = style.norm == super::layers::Norm::None;
        Ok(Unit { conv: Conv::new(style.spatial, channels, kernel, stride, bias, device), norm: style.norm(channels[1], device)?, activation })
    }

    pub fn forward(&self, x: Tensor<5>) -> Tensor<5> {
        let y = self.norm.forward(self.conv.forward(x));
        match self.activation {
            Some(activation) => activation.apply(y),
            None => y,
        }
    }
}

#[derive(Module, Debug)]
pub struct PlainBlock {
    units: Vec<Unit>,
}

#[derive(Module, Debug)]
pub struct ResidualBlock {
    first: Unit,
    second: Unit,
    shortcut: Option<Conv>,
    #[module(skip)]
    activation: Activation,
}

#[derive(Module, Debug)]
pub struct DenseBlock {
    layers: Vec<Unit>,
    transition: Unit,
}

#[derive(Module, Debug)]
pub struct DualPathBlock {
    projection: Option<Unit>,
    reduce: Unit,
    spatial: Unit,
    expand: Unit,
    #[module(skip)]
    residual_channels: usize,
}

/// One block of any kind, with optional dropout after it.
#[derive(Module, Debug)]
pub struct Block {
    body: BlockBody,
    dropout: Option<Dropout>,
}

// The variants differ in size, but a network holds a few dozen blocks: boxing buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum BlockBody {
    Plain(PlainBlock),
    Residual(ResidualBlock),
    Dense(DenseBlock),
    DualPath(DualPathBlock),
}

/// What a block needs to know besides its channels.
#[derive(Debug, Clone, Copy)]
pub struct BlockStyle {
    pub kind: BlockKind,
    pub layers: LayerStyle,
    /// Convolutions per plain block, layers per dense block.
    pub convs: usize,
    pub kernel: usize,
    pub dropout: f64,
}

impl Block {
    pub fn new(style: &BlockStyle, channels_in: usize, channels_out: usize, device: &Device) -> Result<Block, NetworkError> {
        let (layers, kernel) = (&style.layers, style.kernel);
        let body = match style.kind {
            BlockKind::Plain => {
                let units = (0..style.convs.max(1))
                    .map(|n| Unit::new(layers, [if n == 0 { channels_in } else { channels_out }, channels_out], kernel, 1, device))
                    .collect::<Result<_, _>>()?;
                BlockBody::Plain(PlainBlock { units })
            }
            BlockKind::Residual => BlockBody::Residual(ResidualBlock {
                first: Unit::new(layers, [channels_in, channels_out], kernel, 1, device)?,
                second: Unit::with_activation(layers, [channels_out, channels_out], kernel, 1, None, device)?,
                shortcut: (channels_in != channels_out).then(|| Conv::new(layers.spatial, [channels_in, channels_out], 1, 1, false, device)),
                activation: layers.activation,
            }),
            BlockKind::Dense => {
                let growth = (channels_out / 4).max(1);
                let layers_list = (0..style.convs.max(1))
                    .map(|n| Unit::new(layers, [channels_in + n * growth, growth], kernel, 1, device))
                    .collect::<Result<_, _>>()?;
                let stacked = channels_in + style.convs.max(1) * growth;
                BlockBody::Dense(DenseBlock { layers: layers_list, transition: Unit::new(layers, [stacked, channels_out], 1, 1, device)? })
            }
            BlockKind::DualPath => BlockBody::DualPath(DualPathBlock::new(layers, channels_in, channels_out, kernel, device)?),
        };
        let dropout = (style.dropout > 0.0).then(|| DropoutConfig::new(style.dropout).init());
        Ok(Block { body, dropout })
    }

    pub fn forward(&self, x: Tensor<5>) -> Tensor<5> {
        let y = match &self.body {
            BlockBody::Plain(block) => block.units.iter().fold(x, |x, unit| unit.forward(x)),
            BlockBody::Residual(block) => {
                let shortcut = match &block.shortcut {
                    Some(conv) => conv.forward(x.clone()),
                    None => x.clone(),
                };
                block.activation.apply(block.second.forward(block.first.forward(x)) + shortcut)
            }
            BlockBody::Dense(block) => {
                let stacked = block.layers.iter().fold(x, |stack, unit| {
                    let grown = unit.forward(stack.clone());
                    Tensor::cat(vec![stack, grown], 1)
                });
                block.transition.forward(stacked)
            }
            BlockBody::DualPath(block) => block.forward(x),
        };
        match &self.dropout {
            Some(dropout) => dropout.forward(y),
            None => y,
        }
    }
}

impl DualPathBlock {
    /// `out` = r residual + d dense channels, r = out - out/2, d = out/2; the bottleneck
    /// (width out/2) adds r to the residual path and g = max(out/4, 1) new dense channels. The
    /// input is first projected (1×1) to r + d - g channels unless it already has them.
    fn new(style: &LayerStyle, channels_in: usize, channels_out: usize, kernel: usize, device: &Device) -> Result<DualPathBlock, NetworkError> {
        if channels_out < 2 {
            return Err(NetworkError::Invalid(format!("a dual-path block needs at least 2 output channels, got {channels_out}")));
        }
        let dense = channels_out / 2;
        let residual = channels_out - dense;
        let growth = (channels_out / 4).max(1);
        let carried = residual + dense - growth;
        let width = dense.max(1);
        Ok(DualPathBlock {
            projection: (channels_in != carried).then(|| Unit::new(style, [channels_in, carried], 1, 1, device)).transpose()?,
            reduce: Unit::new(style, [carried, width], 1, 1, device)?,
            spatial: Unit::new(style, [width, width], kernel, 1, device)?,
            expand: Unit::new(style, [width, residual + growth], 1, 1, device)?,
            residual_channels: residual,
        })
    }

    fn forward(&self, x: Tensor<5>) -> Tensor<5> {
        let x = match &self.projection {
            Some(unit) => unit.forward(x),
            None => x,
        };
        let y = self.expand.forward(self.spatial.forward(self.reduce.forward(x.clone())));
        let r = self.residual_channels;
        let [_, carried, ..] = x.dims();
        let [_, produced, ..] = y.dims();
        let residual = x.clone().narrow(1, 0, r) + y.clone().narrow(1, 0, r);
        let dense = Tensor::cat(vec![x.narrow(1, r, carried - r), y.narrow(1, r, produced - r)], 1);
        Tensor::cat(vec![residual, dense], 1)
    }
}

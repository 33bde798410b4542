//! Encoder-decoder segmentation networks: U-Net (Ronneberger et al. 2015; Çiçek et al. 2016 in
//! 3-D), Res-U-Net, Dense-U-Net and DP-U-Net are one definition with a different block.

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::blocks::{Block, BlockKind, BlockStyle};
use super::layers::{Activation, Conv, LayerStyle, MaxPool, Norm, Spatial, UpConv};
use super::{NetworkError, SegmentationOutput, check_positive};

/// An encoder-decoder: `depth` poolings, channels doubling per level from `base_channels` up
/// to `max_channels`, skip connections by concatenation, a 1×1 head; optional 1×1 heads on the
/// coarser decoder levels for deep supervision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EncoderDecoderConfig {
    pub spatial: Spatial,
    pub in_channels: usize,
    pub classes: usize,
    /// Number of poolings (levels - 1); spatial sizes must be divisible by 2^depth.
    pub depth: usize,
    pub base_channels: usize,
    pub max_channels: usize,
    /// Set by the network's name (unet, res_unet, dense_unet, dp_unet), not by the JSON.
    #[serde(skip)]
    pub block: BlockKind,
    /// Convolutions per plain block, layers per dense block.
    pub convs_per_block: usize,
    pub kernel: usize,
    pub norm: Norm,
    pub norm_groups: usize,
    pub activation: Activation,
    /// Dropout probability after each decoder block (0 = none).
    pub dropout: f64,
    pub deep_supervision: bool,
}

impl Default for EncoderDecoderConfig {
    fn default() -> Self {
        EncoderDecoderConfig {
            spatial: Spatial::Three,
            in_channels: 1,
            classes: 2,
            depth: 4,
            base_channels: 32,
            max_channels: 320,
            block: BlockKind::Plain,
            convs_per_block: 2,
            kernel: 3,
            norm: Norm::Instance,
            norm_groups: 8,
            activation: Activation::LeakyRelu,
            dropout: 0.0,
            deep_supervision: false,
        }
    }
}

impl EncoderDecoderConfig {
    /// Channels at each level, shallowest first.
    pub fn channels(&self) -> Vec<usize> {
        (0..=self.depth).map(|level| (self.base_channels << level.min(16)).min(self.max_channels)).collect()
    }

    pub(crate) fn validate(&self, network: &str) -> Result<(), NetworkError> {
        check_positive(network, &[("in_channels", self.in_channels), ("classes", self.classes), ("base_channels", self.base_channels), ("convs_per_block", self.convs_per_block)])?;
        if self.max_channels < self.base_channels {
            return Err(NetworkError::Invalid(format!("{network}: max_channels ({}) is below base_channels ({})", self.max_channels, self.base_channels)));
        }
        if self.kernel.is_multiple_of(2) {
            return Err(NetworkError::Invalid(format!("{network}: kernel must be odd (same-size convolutions), got {}", self.kernel)));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(NetworkError::Invalid(format!("{network}: dropout must be in [0, 1), got {}", self.dropout)));
        }
        if self.depth > 8 {
            return Err(NetworkError::Invalid(format!("{network}: depth {} is more than 8 poolings", self.depth)));
        }
        Ok(())
    }

    pub(crate) fn block_style(&self, dropout: f64) -> BlockStyle {
        BlockStyle {
            kind: self.block,
            layers: LayerStyle { spatial: self.spatial, norm: self.norm, norm_groups: self.norm_groups, activation: self.activation },
            convs: self.convs_per_block,
            kernel: self.kernel,
            dropout,
        }
    }
}

#[derive(Module, Debug)]
pub struct EncoderDecoder {
    encoder: Vec<Block>,
    pool: MaxPool,
    ups: Vec<UpConv>,
    decoder: Vec<Block>,
    head: Conv,
    deep_heads: Vec<Conv>,
    #[module(skip)]
    depth: usize,
}

impl EncoderDecoder {
    pub fn new(config: &EncoderDecoderConfig, device: &Device) -> Result<EncoderDecoder, NetworkError> {
        let channels = config.channels();
        let (plain, dropped) = (config.block_style(0.0), config.block_style(config.dropout));
        let mut encoder = Vec::with_capacity(channels.len());
        let mut previous = config.in_channels;
        for &c in &channels {
            encoder.push(Block::new(&plain, previous, c, device)?);
            previous = c;
        }
        let (mut ups, mut decoder, mut deep_heads) = (Vec::new(), Vec::new(), Vec::new());
        // Decoder level l (deepest first) brings channels[l + 1] up to level l.
        for level in (0..config.depth).rev() {
            ups.push(UpConv::new(config.spatial, [channels[level + 1], channels[level]], 2, device));
            decoder.push(Block::new(&dropped, 2 * channels[level], channels[level], device)?);
            if config.deep_supervision && level > 0 {
                deep_heads.push(Conv::new(config.spatial, [channels[level], config.classes], 1, 1, true, device));
            }
        }
        Ok(EncoderDecoder {
            encoder,
            pool: MaxPool::new(config.spatial),
            ups,
            decoder,
            head: Conv::new(config.spatial, [channels[0], config.classes], 1, 1, true, device),
            deep_heads,
            depth: config.depth,
        })
    }

    /// Logits at the input's size, and (deep supervision) at 1/2, 1/4, ... of it.
    pub fn forward(&self, x: Tensor<5>) -> SegmentationOutput {
        let mut skips = Vec::with_capacity(self.depth);
        let mut x = self.encoder[0].forward(x);
        for block in &self.encoder[1..] {
            skips.push(x.clone());
            x = block.forward(self.pool.forward(x));
        }
        let mut deep = Vec::new();
        for (n, (up, block)) in self.ups.iter().zip(&self.decoder).enumerate() {
            let skip = skips.pop().expect("one skip per decoder level");
            x = block.forward(Tensor::cat(vec![skip, up.forward(x)], 1));
            if let Some(head) = self.deep_heads.get(n) {
                deep.push(head.forward(x.clone()));
            }
        }
        deep.reverse(); // finest first
        SegmentationOutput { logits: self.head.forward(x), deep }
    }

    /// The factor every spatial size must be divisible by.
    pub fn size_multiple(&self) -> usize {
        1 << self.depth
    }
}

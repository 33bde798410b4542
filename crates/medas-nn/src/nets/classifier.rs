//! Image classifiers: a U-Net-style encoder (the paper's AD vs NC case) or a Dual-Path Net
//! (Chen et al. 2017; 3-D for nodule attributes) — the same encoder with another block —
//! then global average pooling, dropout and a linear layer giving class logits.

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

use super::NetworkError;
use super::blocks::Block;
use super::layers::MaxPool;
use super::unet::EncoderDecoderConfig;

#[derive(Module, Debug)]
pub struct Classifier {
    encoder: Vec<Block>,
    pool: MaxPool,
    dropout: Option<Dropout>,
    linear: Linear,
}

impl Classifier {
    /// `config.depth` poolings between `depth + 1` encoder blocks; `config.dropout` before the
    /// linear layer.
    pub fn new(config: &EncoderDecoderConfig, device: &Device) -> Result<Classifier, NetworkError> {
        let channels = config.channels();
        let style = config.block_style(0.0);
        let mut encoder = Vec::new();
        let mut previous = config.in_channels;
        for &c in &channels {
            encoder.push(Block::new(&style, previous, c, device)?);
            previous = c;
        }
        Ok(Classifier {
            encoder,
            pool: MaxPool::new(config.spatial),
            dropout: (config.dropout > 0.0).then(|| DropoutConfig::new(config.dropout).init()),
            linear: LinearConfig::new(previous, config.classes).init(device),
        })
    }

    /// Class logits (N, classes).
    pub fn forward(&self, x: Tensor<5>) -> Tensor<2> {
        let mut x = x;
        for (n, block) in self.encoder.iter().enumerate() {
            if n > 0 {
                x = self.pool.forward(x);
            }
            x = block.forward(x);
        }
        let [batch, channels, ..] = x.dims();
        let pooled = x.reshape([batch as i64, channels as i64, -1]).mean_dim(2).reshape([batch, channels]);
        let pooled = match &self.dropout {
            Some(dropout) => dropout.forward(pooled),
            None => pooled,
        };
        self.linear.forward(pooled)
    }

    pub fn size_multiple(&self) -> usize {
        1 << (self.encoder.len() - 1)
    }
}

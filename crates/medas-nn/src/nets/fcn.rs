//! A fully convolutional network (Long et al. 2015) with skips at every level: a plain
//! convolutional encoder, a 1×1 class-score head per level, and coarse scores brought up by
//! learned 2× up-sampling (transposed convolutions) and added to the next finer level's scores
//! (FCN-8s extended to every level).

use burn::module::Module;
use burn::tensor::{Device, Tensor};

use super::SegmentationOutput;
use super::blocks::Block;
use super::layers::{Conv, MaxPool, UpConv};
use super::unet::EncoderDecoderConfig;
use super::NetworkError;

#[derive(Module, Debug)]
pub struct Fcn {
    encoder: Vec<Block>,
    pool: MaxPool,
    scores: Vec<Conv>,
    ups: Vec<UpConv>,
}

impl Fcn {
    /// Uses the encoder half of `config` (depth, channels, blocks, normalisation).
    pub fn new(config: &EncoderDecoderConfig, device: &Device) -> Result<Fcn, NetworkError> {
        let channels = config.channels();
        let style = config.block_style(config.dropout);
        let mut encoder = Vec::new();
        let mut previous = config.in_channels;
        for &c in &channels {
            encoder.push(Block::new(&style, previous, c, device)?);
            previous = c;
        }
        let scores = channels.iter().map(|&c| Conv::new(config.spatial, [c, config.classes], 1, 1, true, device)).collect();
        let ups = (0..config.depth).map(|_| UpConv::new(config.spatial, [config.classes, config.classes], 2, device)).collect();
        Ok(Fcn { encoder, pool: MaxPool::new(config.spatial), scores, ups })
    }

    pub fn forward(&self, x: Tensor<5>) -> SegmentationOutput {
        let mut features = Vec::with_capacity(self.encoder.len());
        let mut x = x;
        for (n, block) in self.encoder.iter().enumerate() {
            if n > 0 {
                x = self.pool.forward(x);
            }
            x = block.forward(x);
            features.push(x.clone());
        }
        let deepest = features.len() - 1;
        let mut score = self.scores[deepest].forward(features.pop().expect("at least one level"));
        for (up, level) in self.ups.iter().zip((0..deepest).rev()) {
            score = up.forward(score) + self.scores[level].forward(features.pop().expect("one feature map per level"));
        }
        SegmentationOutput { logits: score, deep: Vec::new() }
    }

    pub fn size_multiple(&self) -> usize {
        1 << self.ups.len()
    }
}

//! V-Net (Milletari et al. 2016): residual stages of `kernel`-sized convolutions, down-sampling
//! by strided 2×2×2 convolutions and up-sampling by transposed ones, skips by concatenation.

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::blocks::Unit;
use super::layers::{Activation, Conv, LayerStyle, Norm, Spatial, UpConv};
use super::{NetworkError, SegmentationOutput, check_positive};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VNetConfig {
    pub spatial: Spatial,
    pub in_channels: usize,
    pub classes: usize,
    /// Number of down-sampling steps; sizes must be divisible by 2^depth.
    pub depth: usize,
    pub base_channels: usize,
    /// The paper's 5; 3 is much cheaper on a CPU.
    pub kernel: usize,
    pub norm: Norm,
    pub norm_groups: usize,
    pub activation: Activation,
    pub dropout: f64,
}

impl Default for VNetConfig {
    fn default() -> Self {
        VNetConfig {
            spatial: Spatial::Three,
            in_channels: 1,
            classes: 2,
            depth: 4,
            base_channels: 16,
            kernel: 5,
            norm: Norm::Batch,
            norm_groups: 8,
            activation: Activation::Relu,
            dropout: 0.0,
        }
    }
}

/// `units` convolutions whose output is added to the (projected) input before the last
/// activation.
#[derive(Module, Debug)]
struct ResidualStage {
    units: Vec<Unit>,
    projection: Option<Conv>,
    #[module(skip)]
    activation: Activation,
}

impl ResidualStage {
    fn new(style: &LayerStyle, channels: [usize; 2], convs: usize, kernel: usize, device: &Device) -> Result<ResidualStage, NetworkError> {
        let units = (0..convs)
            .map(|n| Unit::new(style, [if n == 0 { channels[0] } else { channels[1] }, channels[1]], kernel, 1, device))
            .collect::<Result<_, _>>()?;
        let projection = (channels[0] != channels[1]).then(|| Conv::new(style.spatial, channels, 1, 1, false, device));
        Ok(ResidualStage { units, projection, activation: style.activation })
    }

    fn forward(&self, x: Tensor<5>) -> Tensor<5> {
        let shortcut = match &self.projection {
            Some(conv) => conv.forward(x.clone()),
            None => x.clone(),
        };
        self.activation.apply(self.units.iter().fold(x, |x, unit| unit.forward(x)) + shortcut)
    }
}

#[derive(Module, Debug)]
pub struct VNet {
    encoder: Vec<ResidualStage>,
    downs: Vec<Unit>,
    ups: Vec<UpConv>,
    decoder: Vec<ResidualStage>,
    head: Conv,
    dropout: Option<burn::nn::Dropout>,
}

impl VNetConfig {
    pub(crate) fn validate(&self) -> Result<(), NetworkError> {
        check_positive("vnet", &[("in_channels", self.in_channels), ("classes", self.classes), ("base_channels", self.base_channels)])?;
        if self.kernel.is_multiple_of(2) {
            return Err(NetworkError::Invalid(format!("vnet: kernel must be odd, got {}", self.kernel)));
        }
        if self.depth > 8 || !(0.0..1.0).contains(&self.dropout) {
            return Err(NetworkError::Invalid(format!("vnet: depth must be at most 8 and dropout in [0, 1), got {} and {}", self.depth, self.dropout)));
        }
        Ok(())
    }
}

impl VNet {
    /// Convolutions per stage as in the paper: 1, 2, 3, 3, ... going down, mirrored going up.
    fn convs(level: usize) -> usize {
        (level + 1).min(3)
    }

    pub fn new(config: &VNetConfig, device: &Device) -> Result<VNet, NetworkError> {
        let style = LayerStyle { spatial: config.spatial, norm: config.norm, norm_groups: config.norm_groups, activation: config.activation };
        let channels: Vec<usize> = (0..=config.depth).map(|l| config.base_channels << l).collect();
        let (mut encoder, mut downs) = (Vec::new(), Vec::new());
        for level in 0..=config.depth {
            // Level 0 maps the input; deeper levels take what the down-sampling gave.
            let from = if level == 0 { config.in_channels } else { channels[level] };
            encoder.push(ResidualStage::new(&style, [from, channels[level]], Self::convs(level), config.kernel, device)?);
            if level < config.depth {
                downs.push(Unit::new(&style, [channels[level], channels[level + 1]], 2, 2, device)?);
            }
        }
        let (mut ups, mut decoder) = (Vec::new(), Vec::new());
        for level in (0..config.depth).rev() {
            ups.push(UpConv::new(config.spatial, [channels[level + 1], channels[level]], 2, device));
            decoder.push(ResidualStage::new(&style, [2 * channels[level], channels[level]], Self::convs(level), config.kernel, device)?);
        }
        Ok(VNet {
            encoder,
            downs,
            ups,
            decoder,
            head: Conv::new(config.spatial, [channels[0], config.classes], 1, 1, true, device),
            dropout: (config.dropout > 0.0).then(|| burn::nn::DropoutConfig::new(config.dropout).init()),
        })
    }

    pub fn forward(&self, x: Tensor<5>) -> SegmentationOutput {
        let mut skips = Vec::new();
        let mut x = x;
        for (n, stage) in self.encoder.iter().enumerate() {
            x = stage.forward(x);
            if let Some(down) = self.downs.get(n) {
                skips.push(x.clone());
                x = down.forward(x);
            }
        }
        if let Some(dropout) = &self.dropout {
            x = dropout.forward(x);
        }
        for (up, stage) in self.ups.iter().zip(&self.decoder) {
            let skip = skips.pop().expect("one skip per level");
            x = stage.forward(Tensor::cat(vec![skip, up.forward(x)], 1));
        }
        SegmentationOutput { logits: self.head.forward(x), deep: Vec::new() }
    }

    pub fn size_multiple(&self) -> usize {
        1 << self.downs.len()
    }
}

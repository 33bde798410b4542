//! The 3-D operators Burn 0.22 lacks: max and average pooling and trilinear / nearest resampling
//! of NCDHW tensors, with PyTorch's conventions.
//!
//! Every operator is a backend extension ([`VolumeOps`]): its default body composes ordinary,
//! differentiable Burn operations (separable 2-D pooling, index selection), so any backend that
//! implements the trait with an empty `impl` block gets a correct path. The Flex backend (our CPU
//! backend) has direct loops over contiguous storage, parallel over batch x channel, and under
//! autodiff a hand-written backward pass. [`composed`] exposes the generic path on its own, as a
//! reference for tests and benchmarks.
//!
//! User options are checked before anything runs; invalid ones give an [`OpsError`].

mod activation;
mod extension;
mod kernels;
mod options;

pub mod composed;

use burn::backend::Dispatch;
use burn::tensor::Tensor;

pub use activation::{ActivationOps, leaky_relu};
pub use extension::VolumeOps;
pub use options::{
    AvgPool3dConfig, AxisResize, AxisTaps, Interpolate3dConfig, Interpolate3dMode, MaxPool3dConfig,
    PoolWindow, Resize3d, ResizePlan,
};

/// Why a 3-D operator refused its options.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpsError {
    #[error("{op}: {option} must be {rule}, got {value}")]
    InvalidOption {
        op: &'static str,
        option: &'static str,
        rule: String,
        value: String,
    },
    #[error("{op}: the input's spatial size {input:?} has an empty axis")]
    EmptyInput { op: &'static str, input: [usize; 3] },
    #[error("{op}: the output would be empty along axis {axis} for spatial size {input:?}")]
    EmptyOutput {
        op: &'static str,
        input: [usize; 3],
        axis: usize,
    },
}

/// The spatial size `[d, h, w]` of an NCDHW tensor.
pub fn spatial_size(x: &Tensor<5>) -> [usize; 3] {
    let dims = x.dims();
    [dims[2], dims[3], dims[4]]
}

/// 3-D max pooling (`torch.nn.functional.max_pool3d`, `ceil_mode = false`).
pub fn max_pool3d(x: Tensor<5>, config: &MaxPool3dConfig) -> Result<Tensor<5>, OpsError> {
    let window = config.window(spatial_size(&x))?;
    Ok(Tensor::from_dispatch(<Dispatch as VolumeOps>::max_pool3d(
        x.into_dispatch(),
        window,
    )))
}

/// 3-D average pooling (`torch.nn.functional.avg_pool3d`, `ceil_mode = false`).
pub fn avg_pool3d(x: Tensor<5>, config: &AvgPool3dConfig) -> Result<Tensor<5>, OpsError> {
    let window = config.window(spatial_size(&x))?;
    let include = config.count_include_pad;
    Ok(Tensor::from_dispatch(<Dispatch as VolumeOps>::avg_pool3d(
        x.into_dispatch(),
        window,
        include,
    )))
}

/// Trilinear or nearest resampling (`torch.nn.functional.interpolate` on 5-D input).
pub fn interpolate3d(x: Tensor<5>, config: &Interpolate3dConfig) -> Result<Tensor<5>, OpsError> {
    let plan = config.plan(spatial_size(&x))?;
    Ok(Tensor::from_dispatch(
        <Dispatch as VolumeOps>::interpolate3d(x.into_dispatch(), plan),
    ))
}

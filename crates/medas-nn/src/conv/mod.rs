//! Fast 2-D and 3-D convolution (groups = 1) with a hand-written backward pass.
//!
//! Burn 0.22's Flex backend computes the weight gradient as a forward convolution over
//! batch-swapped tensors, which is slow on CPU. Here the forward pass is im2col + GEMM over
//! cache-sized tiles of output rows, rayon-parallel over (batch item, tile); the input gradient is
//! a forward convolution of the output gradient with the flipped weight when the stride is 1, and
//! GEMM + col2im otherwise; the weight gradient is a GEMM of the output gradient with the im2col
//! matrix, accumulated over the batch, and the bias gradient a sum (see `kernels.rs`).
//!
//! Use [`conv2d`] / [`conv3d`] like `burn::tensor::module::conv2d` / `conv3d` (same layouts:
//! `x [batch, in, (D,) H, W]`, `weight [out, in, (kD,) kH, kW]`, `bias [out]`, the same
//! [`ConvOptions`], per-side padding allowed), or the [`FastConv2d`] / [`FastConv3d`] modules in
//! place of `burn::nn::conv::Conv2d` / `Conv3d`:
//!
//! ```text
//! #[derive(Module, Debug)]
//! struct Block { conv: FastConv3d, norm: BatchNorm }
//! let conv = FastConv3d::new(&Conv3dConfig::new([8, 16], [3, 3, 3])
//!     .with_padding(PaddingConfig3d::Explicit(1, 1, 1)), &device)?;   // same config as Burn's
//! let y = block.conv.forward(x);            // or try_forward(x) -> Result<_, ConvError>
//! ```
//!
//! Their parameters are Burn's (`weight`, `bias`), so a record saved from a Burn `Conv3d` loads
//! into a `FastConv3d`. Both entry points check shapes and return a [`ConvError`] rather than
//! panicking. The kernels run on the Flex CPU backend, with or without autodiff, for f32 and f64
//! tensors (the f64 path serves the finite-difference tests). The extension trait's default body
//! is Burn's own `conv3d`, which a backend added to its list would get.
mod backend;
mod geometry;
mod im2col;
mod kernels;
mod layers;

use burn::backend::Dispatch;
use burn::backend::flex::FlexTensor;
use burn::tensor::{DType, Tensor, ops::ConvOptions};

pub use backend::FastConvBackend;
pub use geometry::ConvParams;
pub use layers::{FastConv2d, FastConv3d};

use geometry::ConvGeometry;

/// Why a convolution could not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvError {
    #[error(
        "input has {input} channels but the weight [out, in, k...] expects {weight} input channels"
    )]
    ChannelMismatch { input: usize, weight: usize },
    #[error(
        "kernel spans {span} voxels along spatial axis {axis} (depth, height, width = 0, 1, 2) \
         but the padded input has only {padded_input}"
    )]
    KernelLargerThanInput {
        axis: usize,
        span: usize,
        padded_input: usize,
    },
    #[error("stride and dilation must be at least 1")]
    ZeroStepOrDilation,
    #[error("every dimension of the input and the weight must be at least 1")]
    EmptyTensor,
    #[error("only groups = 1 is supported, got groups = {0}")]
    GroupsUnsupported(usize),
    #[error("bias has {bias} values but the weight has {out} output channels")]
    BiasLength { bias: usize, out: usize },
    #[error(
        "fast convolution needs f32 or f64 tensors of one type, got {input} input and {weight} weight"
    )]
    UnsupportedDType { input: String, weight: String },
}

/// Element types the kernels run on.
pub trait ConvFloat:
    Copy
    + Send
    + Sync
    + 'static
    + std::fmt::Debug
    + std::ops::Add<Output = Self>
    + std::ops::AddAssign
    + burn::tensor::Element
{
    const ZERO: Self;
    const ONE: Self;
    /// The tensor's values when it holds this type and is contiguous.
    fn flex_slice(t: &FlexTensor) -> Option<&[Self]>;
}

impl ConvFloat for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    fn flex_slice(t: &FlexTensor) -> Option<&[Self]> {
        t.as_slice::<f32>()
    }
}

impl ConvFloat for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    fn flex_slice(t: &FlexTensor) -> Option<&[Self]> {
        t.as_slice::<f64>()
    }
}

/// 2-D convolution, `x [batch, in, H, W]`, `weight [out, in, kH, kW]`, `bias [out]`.
pub fn conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    options: &ConvOptions<2>,
) -> Result<Tensor<4>, ConvError> {
    let params = ConvParams {
        stride: [1, options.stride[0], options.stride[1]],
        padding: [(0, 0), options.padding[0], options.padding[1]],
        dilation: [1, options.dilation[0], options.dilation[1]],
    };
    let [n, c, h, w] = x.dims();
    let [o, i, kh, kw] = weight.dims();
    let y = conv5(
        x.reshape([n, c, 1, h, w]),
        weight.reshape([o, i, 1, kh, kw]),
        bias,
        options.groups,
        params,
    )?;
    let [n, o, _, oh, ow] = y.dims();
    Ok(y.reshape([n, o, oh, ow]))
}

/// 3-D convolution, `x [batch, in, D, H, W]`, `weight [out, in, kD, kH, kW]`, `bias [out]`.
pub fn conv3d(
    x: Tensor<5>,
    weight: Tensor<5>,
    bias: Option<Tensor<1>>,
    options: &ConvOptions<3>,
) -> Result<Tensor<5>, ConvError> {
    let params = ConvParams {
        stride: options.stride,
        padding: options.padding,
        dilation: options.dilation,
    };
    conv5(x, weight, bias, options.groups, params)
}

fn conv5(
    x: Tensor<5>,
    weight: Tensor<5>,
    bias: Option<Tensor<1>>,
    groups: usize,
    params: ConvParams,
) -> Result<Tensor<5>, ConvError> {
    if groups != 1 {
        return Err(ConvError::GroupsUnsupported(groups));
    }
    let (input_type, weight_type) = (x.dtype(), weight.dtype());
    let float = |t: DType| matches!(t, DType::F32 | DType::F64);
    if input_type != weight_type || !float(input_type) {
        return Err(ConvError::UnsupportedDType {
            input: format!("{input_type:?}"),
            weight: format!("{weight_type:?}"),
        });
    }
    let g = ConvGeometry::new(x.dims(), weight.dims(), &params)?;
    if let Some(bias) = &bias {
        let [len] = bias.dims();
        if len != g.out_channels {
            return Err(ConvError::BiasLength {
                bias: len,
                out: g.out_channels,
            });
        }
        if bias.dtype() != input_type {
            return Err(ConvError::UnsupportedDType {
                input: format!("{input_type:?}"),
                weight: format!("{:?} bias", bias.dtype()),
            });
        }
    }
    let (x, weight) = (x.into_dispatch(), weight.into_dispatch());
    let y = match bias {
        Some(bias) => {
            <Dispatch as FastConvBackend>::fast_conv3d(x, weight, bias.into_dispatch(), params)
        }
        None => <Dispatch as FastConvBackend>::fast_conv3d_unbiased(x, weight, params),
    };
    Ok(Tensor::from_dispatch(y))
}

//! The generic path: each 3-D operator written with ordinary Burn operations that every backend
//! has and that autodiff differentiates.
//!
//! Pooling is separable: a box window is the product of an `(h, w)` window and a `d` window, and
//! both the maximum and the sum factor over it (so does the count of non-padded cells, which makes
//! `count_include_pad = false` separable too). So 3-D pooling is Burn's 2-D pooling over `(h, w)`
//! on `[N, C*D, H, W]`, then over `(d, 1)` on `[N*C, 1, D, Ho*Wo]`. Resampling is separable by
//! construction: one linear (or nearest) pass per axis made of two index selections.

use burn::backend::TensorMetadata;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch};
use burn::tensor::{Shape, Tensor, TensorData};

use super::{
    AvgPool3dConfig, Interpolate3dConfig, MaxPool3dConfig, OpsError, PoolWindow, ResizePlan,
    spatial_size,
};

fn dims5(shape: &Shape) -> [usize; 5] {
    [shape[0], shape[1], shape[2], shape[3], shape[4]]
}

/// Max pooling on any backend; `window` must come from [`MaxPool3dConfig::window`].
pub fn max_pool3d_primitive<B: Backend>(x: FloatTensor<B>, window: PoolWindow) -> FloatTensor<B> {
    let [n, c, d, h, w] = dims5(&x.shape());
    let [od, oh, ow] = window.output;
    let (k, s, p, dl) = (
        window.kernel,
        window.stride,
        window.padding,
        window.dilation,
    );
    let planes = B::float_reshape(x, Shape::new([n, c * d, h, w]));
    let pooled = B::max_pool2d(
        planes,
        [k[1], k[2]],
        [s[1], s[2]],
        [p[1], p[2]],
        [dl[1], dl[2]],
        false,
    );
    let columns = B::float_reshape(pooled, Shape::new([n * c, 1, d, oh * ow]));
    let pooled = B::max_pool2d(columns, [k[0], 1], [s[0], 1], [p[0], 0], [dl[0], 1], false);
    B::float_reshape(pooled, Shape::new([n, c, od, oh, ow]))
}

/// Average pooling on any backend; `window` must come from [`AvgPool3dConfig::window`].
pub fn avg_pool3d_primitive<B: Backend>(
    x: FloatTensor<B>,
    window: PoolWindow,
    count_include_pad: bool,
) -> FloatTensor<B> {
    let [n, c, d, h, w] = dims5(&x.shape());
    let [od, oh, ow] = window.output;
    let (k, s, p) = (window.kernel, window.stride, window.padding);
    let planes = B::float_reshape(x, Shape::new([n, c * d, h, w]));
    let pooled = B::avg_pool2d(
        planes,
        [k[1], k[2]],
        [s[1], s[2]],
        [p[1], p[2]],
        count_include_pad,
        false,
    );
    let columns = B::float_reshape(pooled, Shape::new([n * c, 1, d, oh * ow]));
    let pooled = B::avg_pool2d(
        columns,
        [k[0], 1],
        [s[0], 1],
        [p[0], 0],
        count_include_pad,
        false,
    );
    B::float_reshape(pooled, Shape::new([n, c, od, oh, ow]))
}

/// Resampling on any backend; `plan` must come from [`Interpolate3dConfig::plan`].
pub fn interpolate3d_primitive<B: Backend>(x: FloatTensor<B>, plan: ResizePlan) -> FloatTensor<B> {
    plan.axes.iter().enumerate().fold(x, |x, (axis, resize)| {
        if resize.input == resize.output && resize.scale_factor.is_none_or(|f| f == 1.0) {
            return x; // PyTorch's coordinate maps are the identity here in every mode
        }
        resample_axis::<B>(x, 2 + axis, resize.taps())
    })
}

fn resample_axis<B: Backend>(
    x: FloatTensor<B>,
    dim: usize,
    taps: super::AxisTaps,
) -> FloatTensor<B> {
    let device = x.device();
    let index = |values: &[usize]| {
        let values: Vec<i64> = values.iter().map(|&v| v as i64).collect();
        let len = values.len();
        B::int_from_data(TensorData::new(values, [len]), &device)
    };
    let lower = B::float_select(x.clone(), dim, index(&taps.lower));
    if taps.weight.iter().all(|&w| w == 0.0) {
        return lower; // nearest, or linear landing exactly on source samples
    }
    let upper = B::float_select(x, dim, index(&taps.upper));
    let mut weight_shape = [1usize; 5];
    weight_shape[dim] = taps.weight.len();
    let weight = TensorData::new(taps.weight, weight_shape).convert_dtype(lower.dtype());
    let weight = B::float_expand(B::float_from_data(weight, &device), lower.shape());
    // lower + (upper - lower) * weight
    let step = B::float_mul(B::float_sub(upper, lower.clone()), weight);
    B::float_add(lower, step)
}

/// [`super::max_pool3d`] through the generic path only.
pub fn max_pool3d(x: Tensor<5>, config: &MaxPool3dConfig) -> Result<Tensor<5>, OpsError> {
    let window = config.window(spatial_size(&x))?;
    Ok(Tensor::from_dispatch(max_pool3d_primitive::<Dispatch>(
        x.into_dispatch(),
        window,
    )))
}

/// [`super::avg_pool3d`] through the generic path only.
pub fn avg_pool3d(x: Tensor<5>, config: &AvgPool3dConfig) -> Result<Tensor<5>, OpsError> {
    let window = config.window(spatial_size(&x))?;
    let include = config.count_include_pad;
    Ok(Tensor::from_dispatch(avg_pool3d_primitive::<Dispatch>(
        x.into_dispatch(),
        window,
        include,
    )))
}

/// [`super::interpolate3d`] through the generic path only.
pub fn interpolate3d(x: Tensor<5>, config: &Interpolate3dConfig) -> Result<Tensor<5>, OpsError> {
    let plan = config.plan(spatial_size(&x))?;
    Ok(Tensor::from_dispatch(interpolate3d_primitive::<Dispatch>(
        x.into_dispatch(),
        plan,
    )))
}

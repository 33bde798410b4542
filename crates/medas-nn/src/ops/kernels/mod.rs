//! Direct loops over contiguous storage for the Flex backend, parallel over the `N * C` planes
//! of an NCDHW tensor. Each kernel reads one input plane and writes one output plane, so planes
//! never share memory and no locking is needed.

pub(crate) mod pool;
pub(crate) mod resample;

use std::ops::{Add, AddAssign, Mul};

use burn::backend::flex::FlexTensor;
use burn::tensor::{DType, Element, TensorData};

/// The float types the loops are written for (the ones Flex stores natively).
pub(crate) trait Real:
    Element
    + bytemuck::Pod
    + Send
    + Sync
    + PartialOrd
    + Add<Output = Self>
    + Mul<Output = Self>
    + AddAssign
{
    const ZERO: Self;
    const NEG_INFINITY: Self;
    fn from_f64(value: f64) -> Self;
    fn is_nan(self) -> bool;
}

impl Real for f32 {
    const ZERO: Self = 0.0;
    const NEG_INFINITY: Self = f32::NEG_INFINITY;
    fn from_f64(value: f64) -> Self {
        value as f32
    }
    fn is_nan(self) -> bool {
        f32::is_nan(self)
    }
}

impl Real for f64 {
    const ZERO: Self = 0.0;
    const NEG_INFINITY: Self = f64::NEG_INFINITY;
    fn from_f64(value: f64) -> Self {
        value
    }
    fn is_nan(self) -> bool {
        f64::is_nan(self)
    }
}

/// Whether the direct loops handle this dtype (others take the composed path).
pub(crate) fn has_fast_path(dtype: DType) -> bool {
    matches!(dtype, DType::F32 | DType::F64)
}

/// Runs `body` on the tensor's elements in row-major order, copying only when the layout is not
/// already contiguous.
pub(crate) fn with_contiguous<T: Real, R>(x: &FlexTensor, body: impl FnOnce(&[T]) -> R) -> R {
    match x.layout().contiguous_offsets() {
        Some((start, end)) => body(&x.storage::<T>()[start..end]),
        None => body(x.to_contiguous().storage::<T>()),
    }
}

pub(crate) fn tensor_from_vec<T: Real>(values: Vec<T>, shape: [usize; 5]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

pub(crate) fn dims5(x: &FlexTensor) -> [usize; 5] {
    let shape = x.layout().shape();
    [shape[0], shape[1], shape[2], shape[3], shape[4]]
}

/// For every output index along one axis, the in-range input indices its window covers.
pub(crate) fn window_taps(
    input: usize,
    output: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
) -> Vec<Vec<usize>> {
    (0..output)
        .map(|o| {
            (0..kernel)
                .filter_map(|k| (o * stride + k * dilation).checked_sub(padding))
                .filter(|&i| i < input)
                .collect()
        })
        .collect()
}

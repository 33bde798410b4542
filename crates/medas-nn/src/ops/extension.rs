//! The backend extension: a generic default for every backend, direct loops for Flex, and a
//! hand-written backward pass for `Autodiff<Flex>`.

use std::sync::Arc;

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Flex, backend_extension};
use burn::tensor::DType;

use super::composed::{avg_pool3d_primitive, interpolate3d_primitive, max_pool3d_primitive};
use super::kernels::{
    Real, dims5, has_fast_path, pool, resample, tensor_from_vec, with_contiguous,
};
use super::{PoolWindow, ResizePlan};

/// The 3-D operators as a backend extension. Options arrive already checked (see
/// [`super::MaxPool3dConfig::window`] and friends); call them through [`super::max_pool3d`] etc.,
/// which check user options and return errors. Called directly with a window or plan resolved for
/// another spatial size, the Flex loops panic on the out-of-range index (a programming error).
///
/// To support another backend, add it to the `backend_extension` list and write
/// `impl VolumeOps for ThatBackend {}`: the default bodies compose differentiable operations
/// (as `Cube`, the GPU backend, does in `crate::gpu`).
#[backend_extension(Autodiff, Flex, Cube: cfg(feature = "gpu"))]
pub trait VolumeOps: Backend {
    fn max_pool3d(x: FloatTensor<Self>, window: PoolWindow) -> FloatTensor<Self> {
        max_pool3d_primitive::<Self>(x, window)
    }

    fn avg_pool3d(
        x: FloatTensor<Self>,
        window: PoolWindow,
        count_include_pad: bool,
    ) -> FloatTensor<Self> {
        avg_pool3d_primitive::<Self>(x, window, count_include_pad)
    }

    fn interpolate3d(x: FloatTensor<Self>, plan: ResizePlan) -> FloatTensor<Self> {
        interpolate3d_primitive::<Self>(x, plan)
    }
}

/// Runs a per-dtype body on f32 or f64 storage (callers check [`has_fast_path`] first).
macro_rules! per_dtype {
    ($dtype:expr, $t:ident => $body:expr) => {
        match $dtype {
            DType::F64 => {
                type $t = f64;
                $body
            }
            _ => {
                type $t = f32;
                $body
            }
        }
    };
}

/// The argmax plane offsets must fit the `u32` the forward stores, below its "no cell" mark.
fn argmax_fits(window: &PoolWindow) -> bool {
    window.input.iter().product::<usize>() < pool::NO_CELL as usize
}

fn max_forward<T: Real>(x: &FlexTensor, window: &PoolWindow) -> (FlexTensor, Vec<u32>) {
    let [n, c, ..] = dims5(x);
    let [od, oh, ow] = window.output;
    let (values, argmax) = with_contiguous::<T, _>(x, |input| pool::max_forward(input, window));
    (tensor_from_vec(values, [n, c, od, oh, ow]), argmax)
}

fn avg_forward<T: Real>(x: &FlexTensor, window: &PoolWindow, include: bool) -> FlexTensor {
    let [n, c, ..] = dims5(x);
    let [od, oh, ow] = window.output;
    let values = with_contiguous::<T, _>(x, |input| pool::avg_forward(input, window, include));
    tensor_from_vec(values, [n, c, od, oh, ow])
}

fn resize_forward<T: Real>(x: &FlexTensor, plan: &ResizePlan) -> FlexTensor {
    let [n, c, ..] = dims5(x);
    let [od, oh, ow] = plan.output();
    let values = with_contiguous::<T, _>(x, |input| resample::forward(input, plan));
    tensor_from_vec(values, [n, c, od, oh, ow])
}

impl VolumeOps for Flex {
    fn max_pool3d(x: FlexTensor, window: PoolWindow) -> FlexTensor {
        if !(has_fast_path(x.dtype()) && argmax_fits(&window)) {
            return max_pool3d_primitive::<Self>(x, window);
        }
        per_dtype!(x.dtype(), T => max_forward::<T>(&x, &window).0)
    }

    fn avg_pool3d(x: FlexTensor, window: PoolWindow, count_include_pad: bool) -> FlexTensor {
        if !has_fast_path(x.dtype()) {
            return avg_pool3d_primitive::<Self>(x, window, count_include_pad);
        }
        per_dtype!(x.dtype(), T => avg_forward::<T>(&x, &window, count_include_pad))
    }

    fn interpolate3d(x: FlexTensor, plan: ResizePlan) -> FlexTensor {
        if !has_fast_path(x.dtype()) {
            return interpolate3d_primitive::<Self>(x, plan);
        }
        per_dtype!(x.dtype(), T => resize_forward::<T>(&x, &plan))
    }
}

/// Input shape and dtype of a forward pass, for building its input gradient.
#[derive(Debug, Clone, Copy)]
struct Input {
    dims: [usize; 5],
    dtype: DType,
}

impl Input {
    fn of(x: &FlexTensor) -> Self {
        Self {
            dims: dims5(x),
            dtype: x.dtype(),
        }
    }

    /// Wraps input-gradient values in a tensor of the input's shape.
    fn gradient(self, values: Vec<impl Real>) -> FlexTensor {
        tensor_from_vec(values, self.dims)
    }
}

#[derive(Debug)]
struct MaxPool3dBackward;

impl Backward<Flex, 1> for MaxPool3dBackward {
    type State = (Input, PoolWindow, Arc<Vec<u32>>);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [parent] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let (input, window, argmax) = ops.state;
        if let Some(parent) = parent {
            let input_grad = per_dtype!(input.dtype, T => input.gradient(
                with_contiguous::<T, _>(&grad, |g| pool::max_backward(g, &argmax, &window))
            ));
            grads.register::<Flex>(parent.id, input_grad);
        }
    }
}

#[derive(Debug)]
struct AvgPool3dBackward;

impl Backward<Flex, 1> for AvgPool3dBackward {
    type State = (Input, PoolWindow, bool);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [parent] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let (input, window, include) = ops.state;
        if let Some(parent) = parent {
            let input_grad = per_dtype!(input.dtype, T => input.gradient(
                with_contiguous::<T, _>(&grad, |g| pool::avg_backward(g, &window, include))
            ));
            grads.register::<Flex>(parent.id, input_grad);
        }
    }
}

#[derive(Debug)]
struct Interpolate3dBackward;

impl Backward<Flex, 1> for Interpolate3dBackward {
    type State = (Input, ResizePlan);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [parent] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let (input, plan) = ops.state;
        if let Some(parent) = parent {
            let input_grad = per_dtype!(input.dtype, T => input.gradient(
                with_contiguous::<T, _>(&grad, |g| resample::backward(g, &plan))
            ));
            grads.register::<Flex>(parent.id, input_grad);
        }
    }
}

impl<C: CheckpointStrategy> VolumeOps for Autodiff<Flex, C> {
    fn max_pool3d(x: FloatTensor<Self>, window: PoolWindow) -> FloatTensor<Self> {
        if !(has_fast_path(x.primitive().dtype()) && argmax_fits(&window)) {
            return max_pool3d_primitive::<Self>(x, window);
        }
        match MaxPool3dBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let input = x.primitive();
                let (output, argmax) =
                    per_dtype!(input.dtype(), T => max_forward::<T>(input, &window));
                prep.finish((Input::of(input), window, Arc::new(argmax)), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::max_pool3d(x.into_primitive(), window)),
        }
    }

    fn avg_pool3d(
        x: FloatTensor<Self>,
        window: PoolWindow,
        count_include_pad: bool,
    ) -> FloatTensor<Self> {
        if !has_fast_path(x.primitive().dtype()) {
            return avg_pool3d_primitive::<Self>(x, window, count_include_pad);
        }
        match AvgPool3dBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let input = Input::of(x.primitive());
                let output = Flex::avg_pool3d(x.into_primitive(), window, count_include_pad);
                prep.finish((input, window, count_include_pad), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::avg_pool3d(
                x.into_primitive(),
                window,
                count_include_pad,
            )),
        }
    }

    fn interpolate3d(x: FloatTensor<Self>, plan: ResizePlan) -> FloatTensor<Self> {
        if !has_fast_path(x.primitive().dtype()) {
            return interpolate3d_primitive::<Self>(x, plan);
        }
        match Interpolate3dBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let input = Input::of(x.primitive());
                prep.finish((input, plan), Flex::interpolate3d(x.into_primitive(), plan))
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::interpolate3d(x.into_primitive(), plan)),
        }
    }
}

//! Leaky ReLU (ReLU at slope 0) as one parallel pass forward and one backward.
//!
//! Under autodiff, Burn 0.22 composes `leaky_relu` from a comparison, a scaled copy and a masked
//! select, each recorded for the backward pass and each a single-threaded loop on Flex: about a
//! tenth of a U-Net training step's CPU time, all of it on the main thread. Here the forward is
//! one rayon-parallel map and the backward one parallel zip, `dx = y > 0 ? dy : slope * dy`
//! (PyTorch's rule; `y > 0` exactly where `x > 0` for any slope >= 0). The output `y` is what the
//! backward keeps, and the next layer keeps it anyway, so no extra tensor stays alive.

use burn::backend::Dispatch;
use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::ActivationOps as BurnActivationOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Flex, backend_extension};
use burn::tensor::{DType, Tensor, TensorData};
use rayon::prelude::*;

use super::kernels::{Real, has_fast_path, with_contiguous};

/// Elements per rayon task: large enough that scheduling costs nothing next to the loop.
const CHUNK: usize = 1 << 15;

/// Leaky ReLU as a backend extension; the default body is Burn's own (composed) one.
#[backend_extension(Autodiff, Flex)]
pub trait ActivationOps: Backend {
    fn fast_leaky_relu(x: FloatTensor<Self>, slope: f64) -> FloatTensor<Self> {
        Self::leaky_relu(x, slope.into())
    }
}

/// `x >= 0 ? x : slope * x` (PyTorch's `leaky_relu`; `slope = 0` is `relu`).
pub fn leaky_relu<const D: usize>(x: Tensor<D>, slope: f64) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as ActivationOps>::fast_leaky_relu(x.into_dispatch(), slope))
}

fn shaped<T: Real>(values: Vec<T>, like: &FlexTensor) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, like.layout().shape().to_vec()))
}

fn forward<T: Real>(x: &FlexTensor, slope: f64) -> FlexTensor {
    let s = T::from_f64(slope);
    let values = with_contiguous::<T, _>(x, |x| {
        let mut y = vec![T::ZERO; x.len()];
        // Plain loops over chunks (no branches, no iterator adaptors) so LLVM vectorises them.
        y.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK)).for_each(move |(y, x)| {
            for (y, &v) in y.iter_mut().zip(x) {
                *y = if v >= T::ZERO { v } else { s * v };
            }
        });
        y
    });
    shaped(values, x)
}

fn backward<T: Real>(y: &FlexTensor, dy: &FlexTensor, slope: f64) -> FlexTensor {
    let s = T::from_f64(slope);
    let values = with_contiguous::<T, _>(y, |y| {
        with_contiguous::<T, _>(dy, |dy| {
            let mut dx = vec![T::ZERO; dy.len()];
            dx.par_chunks_mut(CHUNK).zip(y.par_chunks(CHUNK).zip(dy.par_chunks(CHUNK))).for_each(move |(dx, (y, dy))| {
                for ((dx, &y), &g) in dx.iter_mut().zip(y).zip(dy) {
                    *dx = if y > T::ZERO { g } else { s * g };
                }
            });
            dx
        })
    });
    shaped(values, dy)
}

impl ActivationOps for Flex {
    fn fast_leaky_relu(x: FlexTensor, slope: f64) -> FlexTensor {
        match x.dtype() {
            DType::F32 => forward::<f32>(&x, slope),
            DType::F64 => forward::<f64>(&x, slope),
            _ => <Flex as BurnActivationOps<Flex>>::leaky_relu(x, slope.into()),
        }
    }
}

#[derive(Debug)]
struct LeakyReluBackward;

impl Backward<Flex, 1> for LeakyReluBackward {
    type State = (FlexTensor, f64);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [parent] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let (y, slope) = ops.state;
        if let Some(parent) = parent {
            let dx = match y.dtype() {
                DType::F64 => backward::<f64>(&y, &dy, slope),
                _ => backward::<f32>(&y, &dy, slope),
            };
            grads.register::<Flex>(parent.id, dx);
        }
    }
}

impl<C: CheckpointStrategy> ActivationOps for Autodiff<Flex, C> {
    fn fast_leaky_relu(x: FloatTensor<Self>, slope: f64) -> FloatTensor<Self> {
        if !has_fast_path(x.primitive().dtype()) || slope < 0.0 {
            return <Self as BurnActivationOps<Self>>::leaky_relu(x, slope.into());
        }
        match LeakyReluBackward.prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let y = Flex::fast_leaky_relu(x.into_primitive(), slope);
                prep.finish((y.clone(), slope), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::fast_leaky_relu(x.into_primitive(), slope)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    /// Values and input gradients.
    type Outcome = (Vec<f64>, Vec<f64>);

    /// Values around 0 (both signs, exact 0) through the fast op and Burn's, on f64.
    fn pair(slope: f64) -> ([f64; 6], Outcome, Outcome) {
        let values = [-2.0, -0.5, 0.0, 0.25, 3.0, -1e-3];
        let device = Device::flex().autodiff();
        let make = || Tensor::<1>::from_data(TensorData::new(values.to_vec(), [6]), &device).cast(DType::F64).require_grad();
        let weights = Tensor::<1>::from_data(TensorData::new(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [6]), &device).cast(DType::F64);
        let run = |fast: bool| {
            let x = make();
            let y = if fast { leaky_relu(x.clone(), slope) } else { burn::tensor::activation::leaky_relu(x.clone(), slope) };
            let grads = (y.clone() * weights.clone()).sum().backward();
            let dx = x.grad(&grads).unwrap().into_data().convert::<f64>().try_to_vec::<f64>().unwrap();
            (y.into_data().convert::<f64>().try_to_vec::<f64>().unwrap(), dx)
        };
        (values, run(true), run(false))
    }

    #[test]
    fn leaky_relu_matches_burns_values_and_pytorchs_gradient() {
        for slope in [0.01, 0.0, 0.2] {
            let (x, (fast_y, fast_dx), (burn_y, burn_dx)) = pair(slope);
            assert_eq!(fast_y, burn_y, "slope {slope}");
            // PyTorch: dx = x > 0 ? dy : slope * dy (dy = the weights 1..6); at x = 0 Burn's
            // composed backward takes dy instead: the one place both may differ.
            for (i, &v) in x.iter().enumerate() {
                let dy = (i + 1) as f64;
                let expected = if v > 0.0 { dy } else { slope * dy };
                assert_eq!(fast_dx[i], expected, "slope {slope}, x = {v}");
                if v != 0.0 {
                    assert_eq!(fast_dx[i], burn_dx[i], "slope {slope}, x = {v}");
                }
            }
        }
    }

    #[test]
    fn leaky_relu_handles_strided_and_large_f32_inputs() {
        let device = Device::flex();
        let n = 100_000; // three chunks and a part
        let values: Vec<f32> = (0..n).map(|i| (i as f32 - n as f32 / 2.0) * 1e-3).collect();
        let x = Tensor::<2>::from_data(TensorData::new(values, [n / 5, 5]), &device).transpose();
        let expected = burn::tensor::activation::leaky_relu(x.clone(), 0.01).into_data();
        assert_eq!(leaky_relu(x, 0.01).into_data(), expected);
    }
}

//! The convolution as a Burn backend extension: a fast Flex implementation and its hand-written
//! backward under `Autodiff<Flex>`.
//!
//! The trait's default body is Burn's own `conv3d`: correct but slower, for any backend added to
//! the `backend_extension` list without a fast implementation.

use burn::backend::autodiff::{
    Autodiff,
    checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
    grads::Gradients,
    ops::{Backward, Ops, OpsKind},
};
use burn::backend::flex::FlexTensor;
use burn::backend::{Backend, Flex, backend_extension, tensor::FloatTensor};
use burn::tensor::{DType, TensorData, ops::ConvOptions};

use super::ConvFloat;
use super::geometry::{ConvGeometry, ConvParams};
use super::kernels;

/// A 3-D convolution with groups = 1 over `x [batch, in, D, H, W]` and
/// `weight [out, in, kD, kH, kW]` (2-D convolutions use depth 1).
///
/// Two methods rather than one with an optional bias: Burn 0.22.1's extension macro does not
/// convert `Option<FloatTensor>` arguments across the dispatch boundary.
#[backend_extension(Autodiff, Flex, Cube: cfg(feature = "gpu"))]
pub trait FastConvBackend: Backend {
    fn fast_conv3d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        params: ConvParams,
    ) -> FloatTensor<Self> {
        Self::conv3d(x, weight, Some(bias), burn_options(&params))
    }

    fn fast_conv3d_unbiased(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        params: ConvParams,
    ) -> FloatTensor<Self> {
        Self::conv3d(x, weight, None, burn_options(&params))
    }
}

fn burn_options(params: &ConvParams) -> ConvOptions<3> {
    ConvOptions::new_with_padding(params.stride, params.padding, params.dilation, 1)
}

impl FastConvBackend for Flex {
    fn fast_conv3d(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        params: ConvParams,
    ) -> FlexTensor {
        flex_conv(&x, &weight, Some(&bias), &params)
    }

    fn fast_conv3d_unbiased(x: FlexTensor, weight: FlexTensor, params: ConvParams) -> FlexTensor {
        flex_conv(&x, &weight, None, &params)
    }
}

fn flex_conv(
    x: &FlexTensor,
    weight: &FlexTensor,
    bias: Option<&FlexTensor>,
    params: &ConvParams,
) -> FlexTensor {
    let g = geometry(x, weight, params);
    match x.dtype() {
        DType::F32 => flex_forward::<f32>(&g, x, weight, bias),
        DType::F64 => flex_forward::<f64>(&g, x, weight, bias),
        other => panic!("fast convolution supports f32 and f64 tensors, not {other:?}"),
    }
}

fn geometry(x: &FlexTensor, weight: &FlexTensor, params: &ConvParams) -> ConvGeometry {
    let dims5 = |t: &FlexTensor| -> [usize; 5] {
        t.layout()
            .shape()
            .as_slice()
            .try_into()
            .expect("fast convolution takes 5-D tensors")
    };
    // The public API validates shapes first, so an error here is a caller bug.
    ConvGeometry::new(dims5(x), dims5(weight), params).unwrap_or_else(|e| panic!("{e}"))
}

/// Values of a tensor as a contiguous slice of `T`, copying only strided views.
fn with_values<T: ConvFloat, R>(t: &FlexTensor, f: impl FnOnce(&[T]) -> R) -> R {
    if let Some(values) = T::flex_slice(t) {
        return f(values);
    }
    let contiguous = t.to_contiguous();
    f(T::flex_slice(&contiguous).expect("contiguous tensor of the checked dtype"))
}

fn to_flex<T: ConvFloat>(values: Vec<T>, shape: Vec<usize>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

fn flex_forward<T: ConvFloat>(
    g: &ConvGeometry,
    x: &FlexTensor,
    weight: &FlexTensor,
    bias: Option<&FlexTensor>,
) -> FlexTensor {
    let y = with_values::<T, _>(x, |x| {
        with_values::<T, _>(weight, |w| match bias {
            Some(bias) => with_values::<T, _>(bias, |b| kernels::forward(g, x, w, Some(b))),
            None => kernels::forward(g, x, w, None),
        })
    });
    to_flex(y, g.output_shape().to_vec())
}

/// Which gradients a backward step needs.
struct Wanted {
    input: bool,
    weight: bool,
    bias: bool,
}

type Grads = (Option<FlexTensor>, Option<FlexTensor>, Option<FlexTensor>);

fn flex_backward(
    x: &FlexTensor,
    weight: &FlexTensor,
    dy: &FlexTensor,
    params: &ConvParams,
    wanted: Wanted,
) -> Grads {
    let g = geometry(x, weight, params);
    match x.dtype() {
        DType::F32 => typed_backward::<f32>(&g, x, weight, dy, wanted),
        DType::F64 => typed_backward::<f64>(&g, x, weight, dy, wanted),
        other => panic!("fast convolution supports f32 and f64 tensors, not {other:?}"),
    }
}

fn typed_backward<T: ConvFloat>(
    g: &ConvGeometry,
    x: &FlexTensor,
    weight: &FlexTensor,
    dy: &FlexTensor,
    wanted: Wanted,
) -> Grads {
    with_values::<T, _>(dy, |dy| {
        let dx = wanted.input.then(|| {
            let dx = with_values::<T, _>(weight, |w| kernels::backward_input(g, w, dy));
            to_flex(dx, g.input_shape().to_vec())
        });
        let (dw, db) = if wanted.weight || wanted.bias {
            let (dw, db) = with_values::<T, _>(x, |x| kernels::backward_weight_bias(g, x, dy));
            (
                wanted
                    .weight
                    .then(|| to_flex(dw, g.weight_shape().to_vec())),
                wanted.bias.then(|| to_flex(db, vec![g.out_channels])),
            )
        } else {
            (None, None)
        };
        (dx, dw, db)
    })
}

#[derive(Debug)]
struct ConvWithBias;
#[derive(Debug)]
struct ConvNoBias;

type SavedState = (FlexTensor, FlexTensor, ConvParams);

impl Backward<Flex, 3> for ConvWithBias {
    type State = SavedState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_w, node_b] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let (x, weight, params) = ops.state;
        let wanted = Wanted {
            input: node_x.is_some(),
            weight: node_w.is_some(),
            bias: node_b.is_some(),
        };
        let (dx, dw, db) = flex_backward(&x, &weight, &dy, &params, wanted);
        for (node, grad) in [(node_x, dx), (node_w, dw), (node_b, db)] {
            if let (Some(node), Some(grad)) = (node, grad) {
                grads.register::<Flex>(node.id, grad);
            }
        }
    }
}

impl Backward<Flex, 2> for ConvNoBias {
    type State = SavedState;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_w] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let (x, weight, params) = ops.state;
        let wanted = Wanted {
            input: node_x.is_some(),
            weight: node_w.is_some(),
            bias: false,
        };
        let (dx, dw, _) = flex_backward(&x, &weight, &dy, &params, wanted);
        for (node, grad) in [(node_x, dx), (node_w, dw)] {
            if let (Some(node), Some(grad)) = (node, grad) {
                grads.register::<Flex>(node.id, grad);
            }
        }
    }
}

impl<C: CheckpointStrategy> FastConvBackend for Autodiff<Flex, C> {
    fn fast_conv3d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        params: ConvParams,
    ) -> FloatTensor<Self> {
        let prepared = ConvWithBias
            .prepare::<C>([x.node(), weight.node(), bias.node()])
            .compute_bound()
            .stateful();
        let y = flex_conv(
            x.primitive(),
            weight.primitive(),
            Some(bias.primitive()),
            &params,
        );
        match prepared {
            OpsKind::Tracked(prep) => {
                prep.finish((x.into_primitive(), weight.into_primitive(), params), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }

    fn fast_conv3d_unbiased(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        params: ConvParams,
    ) -> FloatTensor<Self> {
        let prepared = ConvNoBias
            .prepare::<C>([x.node(), weight.node()])
            .compute_bound()
            .stateful();
        let y = flex_conv(x.primitive(), weight.primitive(), None, &params);
        match prepared {
            OpsKind::Tracked(prep) => {
                prep.finish((x.into_primitive(), weight.into_primitive(), params), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }
}

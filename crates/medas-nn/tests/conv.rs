//! The fast convolution against Burn's own `conv2d` / `conv3d` on the same Flex autodiff device:
//! forward output and the gradients of input, weight and bias; a hand-computed case; a central
//! finite-difference check in f64; and the errors for shapes that do not fit.

use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2dConfig;
use burn::tensor::{DType, Device, Tensor, TensorData, module, ops::ConvOptions};
use medas_nn::conv::{ConvError, conv2d, conv3d};
use medas_nn::{FastConv2d, FastConv3d};

/// Largest |ours - Burn's| allowed, relative to the largest |Burn's| value of that tensor. Both
/// sides are f32 sums of up to ~10^5 products in different orders (the weight gradient sums over
/// batch and every output voxel), so rounding differences of a few 1e-6 relative are expected.
const RELATIVE_TOLERANCE: f32 = 1e-4;

fn device() -> Device {
    Device::flex().autodiff()
}

/// Deterministic values in [-1, 1) from a small LCG, so failures reproduce.
fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn tensor<const D: usize>(shape: [usize; D], seed: u64) -> Tensor<D> {
    let data = TensorData::new(values(shape.iter().product(), seed), shape);
    Tensor::from_data(data, &device()).require_grad()
}

fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_into_vec().unwrap()
}

fn assert_close(name: &str, ours: &[f32], reference: &[f32]) {
    assert_eq!(ours.len(), reference.len(), "{name}: lengths differ");
    let scale = reference.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    let worst = ours
        .iter()
        .zip(reference)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    eprintln!(
        "{name}: max |diff| {worst:.3e}, relative {:.3e}",
        worst / scale
    );
    assert!(
        worst <= RELATIVE_TOLERANCE * scale,
        "{name}: max |diff| {worst} exceeds {RELATIVE_TOLERANCE} x {scale}"
    );
}

/// Forward output and gradients (x, weight, bias) of `loss = Σ y ⊙ r` for fixed random `r`.
type Results = [Vec<f32>; 4];

fn run<const D: usize>(
    x: &Tensor<D>,
    w: &Tensor<D>,
    b: Option<&Tensor<1>>,
    conv: impl Fn(Tensor<D>, Tensor<D>, Option<Tensor<1>>) -> Tensor<D>,
) -> Results {
    // Fresh leaves so the two runs share no graph.
    let leaf = |t: &Tensor<D>| Tensor::<D>::from_data(t.to_data(), &device()).require_grad();
    let (x, w) = (leaf(x), leaf(w));
    let b = b.map(|b| Tensor::<1>::from_data(b.to_data(), &device()).require_grad());
    let y = conv(x.clone(), w.clone(), b.clone());
    let r = Tensor::<D>::from_data(
        TensorData::new(values(y.shape().num_elements(), 99), y.shape()),
        &device(),
    );
    let grads = (y.clone() * r).sum().backward();
    let bias_grad = b
        .map(|b| to_vec(b.grad(&grads).unwrap()))
        .unwrap_or_default();
    [
        to_vec(y),
        to_vec(x.grad(&grads).unwrap()),
        to_vec(w.grad(&grads).unwrap()),
        bias_grad,
    ]
}

fn compare(name: &str, ours: Results, burn: Results) {
    for (part, (a, b)) in ["output", "dx", "dweight", "dbias"]
        .iter()
        .zip(ours.iter().zip(&burn))
    {
        assert_close(&format!("{name} {part}"), a, b);
    }
}

struct Case2d {
    batch: usize,
    channels: [usize; 2],
    size: [usize; 2],
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [(usize, usize); 2],
    dilation: [usize; 2],
    bias: bool,
}

fn check_2d(case: &Case2d, seed: u64) {
    let [c_in, c_out] = case.channels;
    let x = tensor([case.batch, c_in, case.size[0], case.size[1]], seed);
    let w = tensor([c_out, c_in, case.kernel[0], case.kernel[1]], seed + 1);
    let b = case.bias.then(|| tensor([c_out], seed + 2));
    let options = ConvOptions::new_with_padding(case.stride, case.padding, case.dilation, 1);
    let ours = run(&x, &w, b.as_ref(), |x, w, b| {
        conv2d(x, w, b, &options).unwrap()
    });
    let burn = run(&x, &w, b.as_ref(), |x, w, b| {
        module::conv2d(x, w, b, options.clone())
    });
    let name = format!(
        "2-D n{} {c_in}->{c_out} {:?} k{:?} s{:?} p{:?} d{:?}",
        case.batch, case.size, case.kernel, case.stride, case.padding, case.dilation
    );
    compare(&name, ours, burn);
}

#[test]
fn conv2d_matches_burn_forward_and_gradients() {
    let case = |batch, channels, size, kernel, stride, pad: usize, dilation, bias| Case2d {
        batch,
        channels,
        size,
        kernel,
        stride,
        padding: [(pad, pad); 2],
        dilation,
        bias,
    };
    let cases = [
        case(2, [3, 4], [9, 7], [3, 3], [1, 1], 1, [1, 1], true),
        case(3, [1, 5], [8, 8], [3, 3], [2, 2], 1, [1, 1], true),
        case(1, [16, 2], [11, 10], [3, 3], [1, 1], 2, [2, 2], true),
        case(2, [4, 3], [6, 5], [1, 1], [1, 1], 0, [1, 1], true),
        case(2, [4, 3], [7, 7], [1, 1], [2, 2], 0, [1, 1], false),
        case(2, [8, 6], [40, 37], [3, 3], [1, 1], 1, [1, 1], true),
        case(1, [3, 2], [5, 5], [5, 5], [1, 1], 0, [1, 1], false),
        // Padding wider than the kernel's reach: the input gradient takes the col2im path.
        case(2, [3, 2], [6, 5], [3, 3], [1, 1], 3, [1, 1], true),
        case(2, [2, 3], [9, 13], [3, 2], [2, 3], 0, [1, 2], true),
        Case2d {
            padding: [(2, 1), (0, 1)],
            ..case(2, [5, 4], [12, 11], [5, 3], [2, 1], 0, [1, 1], true)
        },
    ];
    for (seed, case) in cases.iter().enumerate() {
        check_2d(case, 10 * seed as u64);
    }
}

/// (batch, [in, out] channels, size, kernel, stride, padding, dilation).
type Case3d = (
    usize,
    [usize; 2],
    [usize; 3],
    [usize; 3],
    [usize; 3],
    [usize; 3],
    [usize; 3],
);

#[test]
fn conv3d_matches_burn_forward_and_gradients() {
    let cases: [Case3d; 5] = [
        (
            2,
            [3, 4],
            [6, 7, 5],
            [3, 3, 3],
            [1, 1, 1],
            [1, 1, 1],
            [1, 1, 1],
        ),
        (
            1,
            [2, 3],
            [9, 8, 7],
            [3, 3, 3],
            [2, 2, 2],
            [1, 1, 1],
            [1, 1, 1],
        ),
        (
            2,
            [4, 2],
            [7, 7, 7],
            [3, 1, 2],
            [1, 2, 1],
            [1, 0, 1],
            [2, 1, 1],
        ),
        (
            2,
            [3, 5],
            [4, 5, 6],
            [1, 1, 1],
            [1, 1, 1],
            [0, 0, 0],
            [1, 1, 1],
        ),
        (
            2,
            [8, 8],
            [16, 16, 16],
            [3, 3, 3],
            [1, 1, 1],
            [1, 1, 1],
            [1, 1, 1],
        ),
    ];
    for (seed, (batch, [c_in, c_out], size, kernel, stride, pad, dilation)) in
        cases.into_iter().enumerate()
    {
        let seed = 100 + 10 * seed as u64;
        let x = tensor([batch, c_in, size[0], size[1], size[2]], seed);
        let w = tensor([c_out, c_in, kernel[0], kernel[1], kernel[2]], seed + 1);
        let b = tensor([c_out], seed + 2);
        let options = ConvOptions::new(stride, pad, dilation, 1);
        let ours = run(&x, &w, Some(&b), |x, w, b| {
            conv3d(x, w, b, &options).unwrap()
        });
        let burn = run(&x, &w, Some(&b), |x, w, b| {
            module::conv3d(x, w, b, options.clone())
        });
        let name = format!(
            "3-D n{batch} {c_in}->{c_out} {size:?} k{kernel:?} s{stride:?} p{pad:?} d{dilation:?}"
        );
        compare(&name, ours, burn);
    }
}

#[test]
fn hand_computed_case() {
    // x = 1..9 on a 3x3 grid, weight [[1, 0], [0, -1]], bias 0.5: every output is
    // x[i][j] - x[i+1][j+1] + 0.5 = -4 + 0.5.
    let d = device();
    let x = Tensor::<4>::from_data(
        TensorData::new((1..=9).map(|v| v as f32).collect(), [1, 1, 3, 3]),
        &d,
    )
    .require_grad();
    let w = Tensor::<4>::from_data(
        TensorData::new(vec![1f32, 0.0, 0.0, -1.0], [1, 1, 2, 2]),
        &d,
    )
    .require_grad();
    let b = Tensor::<1>::from_data(TensorData::new(vec![0.5f32], [1]), &d).require_grad();
    let options = ConvOptions::new([1, 1], [0, 0], [1, 1], 1);
    let y = conv2d(x.clone(), w.clone(), Some(b.clone()), &options).unwrap();
    assert_eq!(to_vec(y.clone()), vec![-3.5; 4]);
    let grads = y.sum().backward();
    // d/dx: +1 where x is some output's top-left tap, -1 where it is a bottom-right tap.
    assert_eq!(
        to_vec(x.grad(&grads).unwrap()),
        vec![1., 1., 0., 1., 0., -1., 0., -1., -1.]
    );
    // d/dw[a][b] = Σ over the 2x2 outputs of x[i+a][j+b].
    assert_eq!(to_vec(w.grad(&grads).unwrap()), vec![12., 16., 24., 28.]);
    assert_eq!(to_vec(b.grad(&grads).unwrap()), vec![4.0]);
}

fn tensor_f64<const D: usize>(values: Vec<f64>, shape: [usize; D]) -> Tensor<D> {
    Tensor::from_data(TensorData::new(values, shape), (&device(), DType::F64))
}

/// `loss = Σ conv(x, w, b)² / 2` in f64 for perturbing one value.
fn loss_f64(x: &[f64], w: &[f64], b: &[f64], stride: usize) -> f64 {
    let options = ConvOptions::new([stride, 1, stride], [1, 0, 1], [1, 1, 2], 1);
    let y = conv3d(
        tensor_f64(x.to_vec(), [2, 2, 4, 3, 5]),
        tensor_f64(w.to_vec(), [3, 2, 2, 2, 2]),
        Some(tensor_f64(b.to_vec(), [3])),
        &options,
    )
    .unwrap();
    let y: Vec<f64> = y.into_data().try_into_vec().unwrap();
    y.iter().map(|v| v * v / 2.0).sum()
}

#[test]
fn gradients_match_central_finite_differences_in_f64() {
    // f64 runs the same kernels as f32; with step 1e-5 the central difference of this quadratic
    // loss is exact up to rounding (~1e-16 / 1e-5), so 1e-7 relative is a strict bound.
    let (x, w, b): (Vec<f64>, Vec<f64>, Vec<f64>) = (
        values(2 * 2 * 4 * 3 * 5, 7)
            .into_iter()
            .map(f64::from)
            .collect(),
        values(3 * 2 * 8, 8).into_iter().map(f64::from).collect(),
        values(3, 9).into_iter().map(f64::from).collect(),
    );
    for stride in [1, 2] {
        let options = ConvOptions::new([stride, 1, stride], [1, 0, 1], [1, 1, 2], 1);
        let leaves = (
            tensor_f64(x.clone(), [2, 2, 4, 3, 5]).require_grad(),
            tensor_f64(w.clone(), [3, 2, 2, 2, 2]).require_grad(),
            tensor_f64(b.clone(), [3]).require_grad(),
        );
        let y = conv3d(
            leaves.0.clone(),
            leaves.1.clone(),
            Some(leaves.2.clone()),
            &options,
        )
        .unwrap();
        assert_eq!(y.dtype(), DType::F64);
        let grads = (y.clone() * y).sum().div_scalar(2.0).backward();
        let analytic = |t: &Tensor<1>| -> Vec<f64> { t.to_data().try_into_vec().unwrap() };
        let gx = analytic(&leaves.0.grad(&grads).unwrap().flatten(0, 4));
        let gw = analytic(&leaves.1.grad(&grads).unwrap().flatten(0, 4));
        let gb = analytic(&leaves.2.grad(&grads).unwrap());
        let h = 1e-5;
        let numeric = |which: usize, i: usize| {
            let mut args = [x.clone(), w.clone(), b.clone()];
            args[which][i] += h;
            let up = loss_f64(&args[0], &args[1], &args[2], stride);
            args[which][i] -= 2.0 * h;
            let down = loss_f64(&args[0], &args[1], &args[2], stride);
            (up - down) / (2.0 * h)
        };
        let mut worst = 0f64;
        for (which, grad) in [&gx, &gw, &gb].into_iter().enumerate() {
            for i in (0..grad.len()).step_by(7 - 2 * which.min(2)) {
                let fd = numeric(which, i);
                worst = worst.max((fd - grad[i]).abs() / grad[i].abs().max(1.0));
            }
        }
        eprintln!("stride {stride}: worst relative finite-difference error {worst:.2e}");
        assert!(worst < 1e-7, "finite differences disagree: {worst}");
    }
}

#[test]
fn bad_shapes_give_errors() {
    let x = tensor([1, 3, 5, 5], 1);
    let options = ConvOptions::new([1, 1], [0, 0], [1, 1], 1);
    let err = conv2d(x.clone(), tensor([2, 2, 3, 3], 2), None, &options).unwrap_err();
    assert_eq!(
        err,
        ConvError::ChannelMismatch {
            input: 3,
            weight: 2
        }
    );
    assert_eq!(
        err.to_string(),
        "input has 3 channels but the weight [out, in, k...] expects 2 input channels"
    );
    let err = conv2d(x.clone(), tensor([2, 3, 7, 3], 3), None, &options).unwrap_err();
    assert_eq!(
        err.to_string(),
        "kernel spans 7 voxels along spatial axis 1 (depth, height, width = 0, 1, 2) but the \
         padded input has only 5"
    );
    let err = conv2d(
        x.clone(),
        tensor([2, 3, 3, 3], 3),
        Some(tensor([3], 4)),
        &options,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "bias has 3 values but the weight has 2 output channels"
    );
    let grouped = ConvOptions::new([1, 1], [0, 0], [1, 1], 3);
    let err = conv2d(x, tensor([3, 1, 3, 3], 5), None, &grouped).unwrap_err();
    assert_eq!(
        err.to_string(),
        "only groups = 1 is supported, got groups = 3"
    );
    let config = Conv2dConfig::new([4, 4], [3, 3]).with_groups(2);
    assert_eq!(
        FastConv2d::new(&config, &device()).unwrap_err(),
        ConvError::GroupsUnsupported(2)
    );
}

#[test]
#[should_panic(
    expected = "FastConv3d: input has 2 channels but the weight [out, in, k...] expects 3"
)]
fn layer_forward_panics_with_the_error_message() {
    let config = burn::nn::conv::Conv3dConfig::new([3, 4], [3, 3, 3]);
    let layer = FastConv3d::new(&config, &device()).unwrap();
    layer.forward(tensor([1, 2, 5, 5, 5], 3));
}

#[test]
fn layer_matches_burn_conv2d_module() {
    for padding in [PaddingConfig2d::Same, PaddingConfig2d::Explicit(1, 0, 2, 1)] {
        let config = Conv2dConfig::new([3, 5], [3, 4])
            .with_stride([2, 1])
            .with_padding(padding);
        let burn_layer = config.init(&device());
        let fast = FastConv2d::from_burn(config.init(&device())).unwrap();
        let fast = FastConv2d {
            weight: burn_layer.weight.clone(),
            bias: burn_layer.bias.clone(),
            ..fast
        };
        let x = tensor([2, 3, 9, 10], 5);
        assert_close(
            "FastConv2d vs Conv2d",
            &to_vec(fast.forward(x.clone())),
            &to_vec(burn_layer.forward(x)),
        );
    }
}

#[test]
fn plain_device_and_constant_input_work() {
    // Inference device (no autodiff): only the Flex forward runs.
    let plain = Device::flex();
    let make = |shape: [usize; 4], seed| {
        Tensor::<4>::from_data(
            TensorData::new(values(shape.iter().product(), seed), shape),
            &plain,
        )
    };
    let (x, w) = (make([2, 3, 8, 9], 41), make([4, 3, 3, 3], 42));
    let options = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
    let ours = conv2d(x.clone(), w.clone(), None, &options).unwrap();
    let burn = module::conv2d(x, w, None, options.clone());
    assert_close("inference forward", &to_vec(ours), &to_vec(burn));

    // A first layer: the input is a constant, only the weight and bias get gradients.
    let x = Tensor::<4>::from_data(
        TensorData::new(values(2 * 3 * 8 * 9, 43), [2, 3, 8, 9]),
        &device(),
    );
    let (w, b) = (tensor([4, 3, 3, 3], 44), tensor([4], 45));
    let grads = conv2d(x.clone(), w.clone(), Some(b.clone()), &options)
        .unwrap()
        .sum()
        .backward();
    let (w2, b2) = (tensor([4, 3, 3, 3], 44), tensor([4], 45));
    let burn_grads = module::conv2d(x.clone(), w2.clone(), Some(b2.clone()), options)
        .sum()
        .backward();
    assert!(x.grad(&grads).is_none());
    assert_close(
        "constant input dweight",
        &to_vec(w.grad(&grads).unwrap()),
        &to_vec(w2.grad(&burn_grads).unwrap()),
    );
    assert_close(
        "constant input dbias",
        &to_vec(b.grad(&grads).unwrap()),
        &to_vec(b2.grad(&burn_grads).unwrap()),
    );
}

#[test]
fn weights_of_a_burn_conv3d_load_into_fast_conv3d() {
    use burn::module::Module;
    let config = burn::nn::conv::Conv3dConfig::new([2, 3], [3, 3, 1]);
    let burn_layer = config.init(&device());
    let expected = to_vec(burn_layer.weight.val());
    let fast = FastConv3d::new(&config, &device()).unwrap();
    assert_ne!(to_vec(fast.weight.val()), expected, "fresh layers differ");
    let fast = fast.try_load_record(burn_layer.into_record()).unwrap();
    assert_eq!(to_vec(fast.weight.val()), expected);
}

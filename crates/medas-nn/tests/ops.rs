//! The 3-D operators of `medas_nn::ops`: hand-computed cases, the fast Flex path against the
//! generic composed path, central finite differences in f64, Burn's own 2-D operators at depth 1,
//! and the option errors.

use burn::tensor::module::{avg_pool2d, interpolate, max_pool2d};
use burn::tensor::ops::{AvgPoolOptions, InterpolateMode, InterpolateOptions, MaxPoolOptions};
use burn::tensor::{DType, Device, Tensor, TensorData};
use medas_nn::ops::{
    self, AvgPool3dConfig, Interpolate3dConfig, Interpolate3dMode, MaxPool3dConfig, OpsError,
    composed,
};

type Op = Box<dyn Fn(Tensor<5>) -> Tensor<5>>;

fn training() -> Device {
    Device::flex().autodiff()
}

fn tensor(values: Vec<f32>, shape: [usize; 5], device: &Device) -> Tensor<5> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

fn values(x: Tensor<5>) -> Vec<f32> {
    x.into_data().convert::<f32>().try_to_vec().unwrap()
}

/// Deterministic pseudo-random values in [-1, 1) (a 64-bit LCG; distinct with overwhelming odds).
fn noise(len: usize, seed: u64) -> Vec<f32> {
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

/// Output and d(sum(output * weights))/dx of `op` on the autodiff device.
fn value_and_gradient(
    op: &dyn Fn(Tensor<5>) -> Tensor<5>,
    input: &[f32],
    shape: [usize; 5],
    seed: u64,
) -> (Vec<f32>, Vec<f32>) {
    let device = training();
    let x = tensor(input.to_vec(), shape, &device).require_grad();
    let y = op(x.clone());
    let weights = tensor(noise(y.shape().num_elements(), seed), y.dims(), &device);
    let grads = (y.clone() * weights).sum().backward();
    (
        values(y),
        x.grad(&grads).unwrap().into_data().try_to_vec().unwrap(),
    )
}

fn assert_close(label: &str, actual: &[f32], expected: &[f32], tolerance: f32) {
    assert_eq!(actual.len(), expected.len(), "{label}: lengths");
    let worst = actual
        .iter()
        .zip(expected)
        .map(|(a, e)| (a - e).abs())
        .fold(0.0f32, f32::max);
    eprintln!("{label}: max |difference| {worst:.2e} (tolerance {tolerance:.0e})");
    assert!(worst <= tolerance, "{label}: {actual:?} != {expected:?}");
}

// ---------------------------------------------------------------------------------------------
// Hand-computed cases
// ---------------------------------------------------------------------------------------------

/// x(d, h, w) = 8d + 4h + w on 1x1x2x2x4. Kernel 2 (stride 2): windows w in {0,1} and {2,3} over all
/// d, h; their maxima are at d = h = 1: 8 + 4 + 1 = 13 and 8 + 4 + 3 = 15.
#[test]
fn max_pool_hand_computed_block() {
    let input: Vec<f32> = (0..16).map(|v| v as f32).collect();
    let op = |x| ops::max_pool3d(x, &MaxPool3dConfig::new([2, 2, 2])).unwrap();
    let device = training();
    let x = tensor(input, [1, 1, 2, 2, 4], &device).require_grad();
    let y = op(x.clone());
    assert_eq!(y.dims(), [1, 1, 1, 1, 2]);
    assert_eq!(values(y.clone()), vec![13.0, 15.0]);
    let gradient = values(x.grad(&y.sum().backward()).unwrap());
    let mut expected = vec![0.0; 16];
    expected[13] = 1.0;
    expected[15] = 1.0;
    assert_eq!(gradient, expected);
}

/// 3x3 plane minus 10 (all negative, so a zero padding would show): kernel [1, 3, 3], stride 1,
/// padding [0, 1, 1] takes the maximum of each 3x3 neighbourhood clipped to the plane.
///   1 5 2       5 5 5
///   0 3 4  ->   7 8 8   (all minus 10)
///   7 6 8       7 8 8
/// d(sum)/dx counts how often each cell wins: 5 three times, 7 twice, 8 four times.
#[test]
fn max_pool_hand_computed_padding_is_minus_infinity() {
    let plane = [1.0, 5.0, 2.0, 0.0, 3.0, 4.0, 7.0, 6.0, 8.0].map(|v: f32| v - 10.0);
    let config = MaxPool3dConfig::new([1, 3, 3])
        .with_stride([1, 1, 1])
        .with_padding([0, 1, 1]);
    for op in [ops::max_pool3d, composed::max_pool3d] {
        let device = training();
        let x = tensor(plane.to_vec(), [1, 1, 1, 3, 3], &device).require_grad();
        let y = op(x.clone(), &config).unwrap();
        let expected = [5.0, 5.0, 5.0, 7.0, 8.0, 8.0, 7.0, 8.0, 8.0].map(|v: f32| v - 10.0);
        assert_eq!(values(y.clone()), expected.to_vec());
        let gradient = values(x.grad(&y.sum().backward()).unwrap());
        assert_eq!(gradient, vec![0.0, 3.0, 0.0, 0.0, 0.0, 0.0, 2.0, 0.0, 4.0]);
    }
}

/// Depth 2, kernel 2 with dilation 3 and padding 1: the only depth window taps d = -1 and d = 2,
/// both outside the input, so (as in PyTorch) every output is -inf and no gradient flows.
#[test]
fn max_pool_window_of_padding_only_is_minus_infinity() {
    let config = MaxPool3dConfig::new([2, 1, 1])
        .with_padding([1, 0, 0])
        .with_dilation([3, 1, 1]);
    for op in [ops::max_pool3d, composed::max_pool3d] {
        let device = training();
        let x = tensor(noise(8, 1), [1, 1, 2, 2, 2], &device).require_grad();
        let y = op(x.clone(), &config).unwrap();
        assert_eq!(values(y.clone()), vec![f32::NEG_INFINITY; 4]);
        let gradient = values(x.grad(&y.sum().backward()).unwrap());
        assert_eq!(gradient, vec![0.0; 8]);
    }
}

/// The same plane without the offset, averaged over 3x3 neighbourhoods with padding 1.
/// count_include_pad = true divides by 9: corner (0,0) = (1+5+0+3)/9 = 1, centre = 36/9 = 4.
/// count_include_pad = false divides by the cells present: corner 9/4, edge (0,1) = 15/6.
/// d(sum)/dx with padding counted = (windows covering the cell)/9: corners 4/9, edges 6/9, centre 1.
#[test]
fn avg_pool_hand_computed_padding_counts() {
    let plane = vec![1.0, 5.0, 2.0, 0.0, 3.0, 4.0, 7.0, 6.0, 8.0];
    let config = AvgPool3dConfig::new([1, 3, 3])
        .with_stride([1, 1, 1])
        .with_padding([0, 1, 1]);
    let device = training();
    let x = tensor(plane.clone(), [1, 1, 1, 3, 3], &device).require_grad();
    let y = ops::avg_pool3d(x.clone(), &config).unwrap();
    let y = values(y.clone());
    assert_close("avg corner/centre", &[y[0], y[4]], &[1.0, 4.0], 1e-6);
    let x2 = tensor(plane, [1, 1, 1, 3, 3], &device);
    let y = values(ops::avg_pool3d(x2, &config.with_count_include_pad(false)).unwrap());
    assert_close(
        "avg without pad",
        &[y[0], y[1]],
        &[9.0 / 4.0, 15.0 / 6.0],
        1e-6,
    );
    let y = ops::avg_pool3d(x.clone(), &config).unwrap();
    let gradient = values(x.grad(&y.sum().backward()).unwrap());
    let (corner, edge) = (4.0 / 9.0, 6.0 / 9.0);
    let expected = [corner, edge, corner, edge, 1.0, edge, corner, edge, corner];
    assert_close("avg gradient", &gradient, &expected, 1e-6);
}

/// x(d, h, w) = 4d + 2h + w on 2x2x2, resized to 4x4x4 with half-pixel centres: every axis
/// samples src = clamp((dst + 0.5)/2 - 0.5, 0, 1) = 0, 0.25, 0.75, 1, and trilinear interpolation
/// reproduces the linear function there: out = 4 s(d) + 2 s(h) + s(w).
/// With align_corners = true to 3x3x3 the samples are 0, 0.5, 1.
#[test]
fn trilinear_hand_computed_linear_function() {
    let input: Vec<f32> = (0..8).map(|v| v as f32).collect();
    for (align, size, samples) in [
        (false, 4, vec![0.0, 0.25, 0.75, 1.0]),
        (true, 3, vec![0.0, 0.5, 1.0]),
    ] {
        let config = Interpolate3dConfig::size([size; 3], Interpolate3dMode::Trilinear, align);
        let y = ops::interpolate3d(tensor(input.clone(), [1, 1, 2, 2, 2], &training()), &config)
            .unwrap();
        let mut expected = Vec::new();
        for sd in &samples {
            for sh in &samples {
                for sw in &samples {
                    expected.push(4.0 * sd + 2.0 * sh + sw);
                }
            }
        }
        assert_close(
            &format!("trilinear align_corners={align}"),
            &values(y),
            &expected,
            1e-6,
        );
    }
}

/// 1-D along depth, 2 -> 4 with half-pixel centres: weights of x0 are 1, .75, .25, 0 and of x1
/// 0, .25, .75, 1, so d(sum)/dx = [2, 2]. Nearest 3 -> 5 takes floor(dst * 3/5) = 0, 0, 1, 1, 2.
#[test]
fn resize_hand_computed_gradient_and_nearest() {
    let device = training();
    let x = tensor(vec![1.0, 3.0], [1, 1, 2, 1, 1], &device).require_grad();
    let config = Interpolate3dConfig::size([4, 1, 1], Interpolate3dMode::Trilinear, false);
    let y = ops::interpolate3d(x.clone(), &config).unwrap();
    assert_eq!(values(y.clone()), vec![1.0, 1.5, 2.5, 3.0]);
    assert_eq!(values(x.grad(&y.sum().backward()).unwrap()), vec![2.0, 2.0]);
    let nearest = Interpolate3dConfig::size([5, 1, 1], Interpolate3dMode::Nearest, false);
    let y = ops::interpolate3d(
        tensor(vec![0.0, 1.0, 2.0], [1, 1, 3, 1, 1], &device),
        &nearest,
    )
    .unwrap();
    assert_eq!(values(y), vec![0.0, 0.0, 1.0, 1.0, 2.0]);
}

// ---------------------------------------------------------------------------------------------
// Fast path == composed path, forward and gradient
// ---------------------------------------------------------------------------------------------

/// (label, fast op, composed op, input shape) for a spread of shapes and options.
fn cases() -> Vec<(String, Op, Op, [usize; 5])> {
    let mut cases: Vec<(String, Op, Op, [usize; 5])> = Vec::new();
    let max_configs = [
        ([2, 8, 8, 8, 8], MaxPool3dConfig::new([2, 2, 2])),
        (
            [1, 3, 7, 5, 9],
            MaxPool3dConfig::new([3, 2, 3])
                .with_stride([2, 1, 2])
                .with_padding([1, 1, 1]),
        ),
        (
            [2, 2, 9, 6, 7],
            MaxPool3dConfig::new([3, 3, 2])
                .with_stride([1, 2, 1])
                .with_dilation([2, 1, 2]),
        ),
        (
            [1, 1, 5, 5, 5],
            MaxPool3dConfig::new([5, 1, 3])
                .with_stride([1, 1, 1])
                .with_padding([2, 0, 1]),
        ),
    ];
    for (shape, config) in max_configs {
        let label = format!("max_pool3d {shape:?} {config:?}");
        cases.push((
            label,
            Box::new(move |x| ops::max_pool3d(x, &config).unwrap()),
            Box::new(move |x| composed::max_pool3d(x, &config).unwrap()),
            shape,
        ));
    }
    let avg_configs = [
        ([2, 4, 8, 8, 8], AvgPool3dConfig::new([2, 2, 2])),
        (
            [1, 3, 7, 5, 9],
            AvgPool3dConfig::new([3, 2, 3])
                .with_stride([2, 1, 2])
                .with_padding([1, 1, 1]),
        ),
        (
            [1, 2, 6, 7, 5],
            AvgPool3dConfig::new([3, 3, 3])
                .with_stride([1, 2, 2])
                .with_padding([1, 1, 1])
                .with_count_include_pad(false),
        ),
    ];
    for (shape, config) in avg_configs {
        let label = format!("avg_pool3d {shape:?} {config:?}");
        cases.push((
            label,
            Box::new(move |x| ops::avg_pool3d(x, &config).unwrap()),
            Box::new(move |x| composed::avg_pool3d(x, &config).unwrap()),
            shape,
        ));
    }
    use Interpolate3dMode::{Nearest, Trilinear};
    let resize_configs = [
        (
            [1, 2, 4, 4, 4],
            Interpolate3dConfig::scale([2.0; 3], Trilinear, false),
        ),
        (
            [2, 1, 3, 5, 4],
            Interpolate3dConfig::size([7, 4, 9], Trilinear, true),
        ),
        (
            [1, 3, 5, 6, 7],
            Interpolate3dConfig::size([3, 9, 2], Trilinear, false),
        ),
        (
            [1, 1, 5, 3, 4],
            Interpolate3dConfig::scale([1.5, 2.5, 0.5], Trilinear, false),
        ),
        (
            [1, 2, 3, 4, 5],
            Interpolate3dConfig::size([5, 7, 3], Nearest, false),
        ),
    ];
    for (shape, config) in resize_configs {
        let label = format!("interpolate3d {shape:?} {config:?}");
        cases.push((
            label,
            Box::new(move |x| ops::interpolate3d(x, &config).unwrap()),
            Box::new(move |x| composed::interpolate3d(x, &config).unwrap()),
            shape,
        ));
    }
    cases
}

/// Forward: max pooling selects the same element (exact); sums and blends may round differently
/// in the last bit of f32 (1e-6 on values of order 1). Gradients: the same, a few roundings more.
#[test]
fn fast_path_matches_composed_path() {
    for (index, (label, fast, reference, shape)) in cases().into_iter().enumerate() {
        let input = noise(shape.iter().product(), index as u64);
        let (fast_value, fast_gradient) = value_and_gradient(&*fast, &input, shape, 99);
        let (reference_value, reference_gradient) =
            value_and_gradient(&*reference, &input, shape, 99);
        assert_close(
            &format!("{label} forward"),
            &fast_value,
            &reference_value,
            1e-6,
        );
        assert_close(
            &format!("{label} gradient"),
            &fast_gradient,
            &reference_gradient,
            1e-5,
        );
    }
}

/// A permuted (non-contiguous) input gives the same result as its contiguous copy.
#[test]
fn fast_path_reads_strided_inputs() {
    let shape = [1, 2, 4, 6, 5];
    let x = tensor(noise(240, 7), shape, &Device::flex());
    let strided = x.clone().swap_dims(3, 4);
    let contiguous = Tensor::<5>::from_data(strided.clone().into_data(), &Device::flex());
    let config = MaxPool3dConfig::new([2, 3, 2]).with_stride([1, 1, 2]);
    let a = values(ops::max_pool3d(strided, &config).unwrap());
    let b = values(ops::max_pool3d(contiguous, &config).unwrap());
    assert_eq!(a, b);
}

/// Half precision has no direct loops: it takes the composed path on Flex, with and without
/// autodiff, and agrees with f32 to f16 precision: values in [-1, 1) round to within 2^-11 = 4.9e-4
/// per operation, and the composed resampling rounds about 4 times per axis; tolerance 4e-3.
#[test]
fn half_precision_takes_the_composed_path() {
    let shape = [1, 2, 5, 6, 7];
    let input = noise(shape.iter().product(), 11);
    let config = AvgPool3dConfig::new([3, 2, 3])
        .with_stride([1, 2, 2])
        .with_padding([1, 1, 1]);
    let resize = Interpolate3dConfig::size([7, 3, 9], Interpolate3dMode::Trilinear, true);
    for device in [Device::flex(), training()] {
        let x = tensor(input.clone(), shape, &device);
        let half = x.clone().cast(DType::F16);
        let pairs = [
            (
                ops::avg_pool3d(x.clone(), &config),
                ops::avg_pool3d(half.clone(), &config),
            ),
            (
                ops::interpolate3d(x.clone(), &resize),
                ops::interpolate3d(half.clone(), &resize),
            ),
            (
                ops::max_pool3d(x.clone(), &MaxPool3dConfig::new([2, 3, 2])),
                ops::max_pool3d(half, &MaxPool3dConfig::new([2, 3, 2])),
            ),
        ];
        for (full, half) in pairs {
            let half = half.unwrap();
            assert_eq!(half.dtype(), DType::F16);
            assert_close(
                "f16 against f32",
                &values(half),
                &values(full.unwrap()),
                1e-3,
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Central finite differences in f64
// ---------------------------------------------------------------------------------------------

fn tensor64(values: Vec<f64>, shape: [usize; 5], device: &Device) -> Tensor<5> {
    Tensor::from_data(TensorData::new(values, shape), (device, DType::F64))
}

/// d(sum(op(x) * w))/dx by autodiff against (L(x + h e_i) - L(x - h e_i)) / 2h, all in f64 on the
/// fast path. The operators are piecewise linear in x, so the central difference has no
/// truncation error, only rounding: the loss is a sum of ~1e3 terms of order 1, rounding ~1e-13,
/// over 2h = 2e-6 gives ~1e-7 at worst. h = 1e-6 is far below the gaps between the random inputs
/// in any one window (~1e-4 typical), so no max-pool winner changes. Tolerance 1e-6.
#[test]
fn gradients_match_central_finite_differences_in_f64() {
    for (index, (label, fast, _, shape)) in cases().into_iter().enumerate() {
        if shape.iter().product::<usize>() > 2000 {
            continue; // the 8^3 block cases: covered by the odd shapes, and slow to difference here
        }
        let input: Vec<f64> = noise(shape.iter().product(), 100 + index as u64)
            .iter()
            .map(|&v| v as f64)
            .collect();
        let device = training();
        let x = tensor64(input.clone(), shape, &device).require_grad();
        let y = fast(x.clone());
        let weights: Vec<f64> = noise(y.shape().num_elements(), 5)
            .iter()
            .map(|&v| v as f64)
            .collect();
        let weights = tensor64(weights, y.dims(), &device);
        let analytic: Vec<f64> = x
            .grad(&(y * weights.clone()).sum().backward())
            .unwrap()
            .into_data()
            .try_to_vec()
            .unwrap();
        let loss = |values: Vec<f64>| -> f64 {
            let y = fast(tensor64(values, shape, &device));
            (y * weights.clone()).sum().into_scalar::<f64>()
        };
        let h = 1e-6;
        let mut worst = 0.0f64;
        for i in 0..input.len() {
            let (mut up, mut down) = (input.clone(), input.clone());
            up[i] += h;
            down[i] -= h;
            let numeric = (loss(up) - loss(down)) / (2.0 * h);
            worst = worst.max((numeric - analytic[i]).abs());
        }
        eprintln!(
            "{label} on {shape:?}: max |autodiff - finite difference| {worst:.1e} (tolerance 1e-6)"
        );
        assert!(worst <= 1e-6, "{label}: {worst}");
    }
}

// ---------------------------------------------------------------------------------------------
// Depth 1 agrees with Burn's own 2-D operators (an independent implementation of the conventions)
// ---------------------------------------------------------------------------------------------

fn as_4d(x: &Tensor<5>) -> Tensor<4> {
    let [n, c, _, h, w] = x.dims();
    x.clone().reshape([n, c, h, w])
}

#[test]
fn depth_one_matches_burn_2d_pooling() {
    let shape = [2, 3, 1, 9, 8];
    let x = tensor(noise(shape.iter().product(), 3), shape, &Device::flex());
    for (kernel, stride, padding) in [
        ([3, 3], [2, 2], [1, 1]),
        ([2, 3], [1, 2], [1, 0]),
        ([4, 4], [3, 2], [2, 2]),
    ] {
        let max3 = MaxPool3dConfig::new([1, kernel[0], kernel[1]])
            .with_stride([1, stride[0], stride[1]])
            .with_padding([0, padding[0], padding[1]]);
        let max2 = MaxPoolOptions::new(kernel)
            .with_stride(stride)
            .with_padding(padding);
        let ours = values(ops::max_pool3d(x.clone(), &max3).unwrap());
        let burn: Vec<f32> = max_pool2d(as_4d(&x), max2)
            .into_data()
            .try_to_vec()
            .unwrap();
        assert_close(
            &format!("max_pool2d {kernel:?} {stride:?} {padding:?}"),
            &ours,
            &burn,
            0.0,
        );
        for include in [true, false] {
            let avg3 = AvgPool3dConfig::new([1, kernel[0], kernel[1]])
                .with_stride([1, stride[0], stride[1]])
                .with_padding([0, padding[0], padding[1]])
                .with_count_include_pad(include);
            let avg2 = AvgPoolOptions::new(kernel)
                .with_stride(stride)
                .with_padding(padding)
                .with_count_include_pad(include);
            let ours = values(ops::avg_pool3d(x.clone(), &avg3).unwrap());
            let burn: Vec<f32> = avg_pool2d(as_4d(&x), avg2)
                .into_data()
                .try_to_vec()
                .unwrap();
            assert_close(
                &format!("avg_pool2d {kernel:?} include_pad={include}"),
                &ours,
                &burn,
                1e-6,
            );
        }
    }
}

#[test]
fn depth_one_matches_burn_bilinear_and_nearest() {
    let shape = [1, 2, 1, 5, 7];
    let x = tensor(noise(shape.iter().product(), 4), shape, &Device::flex());
    for (size, align) in [
        ([9, 13], true),
        ([9, 13], false),
        ([3, 4], false),
        ([8, 7], true),
        ([1, 3], true),
    ] {
        let config =
            Interpolate3dConfig::size([1, size[0], size[1]], Interpolate3dMode::Trilinear, align);
        let ours = values(ops::interpolate3d(x.clone(), &config).unwrap());
        let options = InterpolateOptions::new(InterpolateMode::Bilinear)
            .with_align_corners(align)
            .with_output_size(size);
        let burn: Vec<f32> = interpolate(as_4d(&x), options)
            .into_data()
            .try_to_vec()
            .unwrap();
        assert_close(
            &format!("bilinear {size:?} align_corners={align}"),
            &ours,
            &burn,
            1e-6,
        );
    }
    let config = Interpolate3dConfig::size([1, 10, 14], Interpolate3dMode::Nearest, false);
    let ours = values(ops::interpolate3d(x.clone(), &config).unwrap());
    let options = InterpolateOptions::new(InterpolateMode::Nearest).with_output_size([10, 14]);
    let burn: Vec<f32> = interpolate(as_4d(&x), options)
        .into_data()
        .try_to_vec()
        .unwrap();
    assert_close("nearest x2", &ours, &burn, 0.0);
}

// ---------------------------------------------------------------------------------------------
// Invalid options
// ---------------------------------------------------------------------------------------------

fn error_text(result: Result<Tensor<5>, OpsError>) -> String {
    result.map(|_| ()).unwrap_err().to_string()
}

#[test]
fn invalid_options_are_errors_not_panics() {
    let x = || tensor(vec![0.0; 2 * 4 * 4 * 4], [1, 2, 4, 4, 4], &Device::flex());
    assert_eq!(
        error_text(ops::max_pool3d(x(), &MaxPool3dConfig::new([2, 0, 2]))),
        "max_pool3d: kernel must be >= 1 on every axis, got [2, 0, 2]"
    );
    assert_eq!(
        error_text(ops::avg_pool3d(
            x(),
            &AvgPool3dConfig::new([3, 3, 3]).with_padding([1, 2, 1])
        )),
        "avg_pool3d: padding must be at most kernel / 2 = [1, 1, 1], got [1, 2, 1]"
    );
    assert_eq!(
        error_text(ops::max_pool3d(
            x(),
            &MaxPool3dConfig::new([2, 2, 2]).with_stride([1, 0, 1])
        )),
        "max_pool3d: stride must be >= 1 on every axis, got [1, 0, 1]"
    );
    assert_eq!(
        error_text(ops::max_pool3d(x(), &MaxPool3dConfig::new([5, 2, 2]))),
        "max_pool3d: the output would be empty along axis 0 for spatial size [4, 4, 4]"
    );
    assert_eq!(
        error_text(ops::interpolate3d(
            x(),
            &Interpolate3dConfig::size([4, 0, 4], Interpolate3dMode::Trilinear, false)
        )),
        "interpolate3d: the output would be empty along axis 1 for spatial size [4, 4, 4]"
    );
    assert_eq!(
        error_text(ops::interpolate3d(
            x(),
            &Interpolate3dConfig::scale([2.0, -1.0, 2.0], Interpolate3dMode::Nearest, false)
        )),
        "interpolate3d: scale_factor must be finite and > 0, got [2.0, -1.0, 2.0]"
    );
    assert_eq!(
        error_text(ops::interpolate3d(
            x(),
            &Interpolate3dConfig::size([8; 3], Interpolate3dMode::Nearest, true)
        )),
        "interpolate3d: align_corners must be false for nearest mode, got true"
    );
    let empty = tensor(vec![], [1, 1, 0, 4, 4], &Device::flex());
    assert_eq!(
        error_text(ops::avg_pool3d(empty, &AvgPool3dConfig::new([1, 1, 1]))),
        "avg_pool3d: the input's spatial size [0, 4, 4] has an empty axis"
    );
}

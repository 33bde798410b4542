//! Shape arithmetic shared by every convolution kernel.
//!
//! Everything is normalised to three spatial axes (depth, height, width): a 2-D convolution is a
//! 3-D one with depth 1, kernel depth 1, stride 1 and no depth padding, which costs nothing in the
//! kernels because the depth loop then runs once.

use super::ConvError;

/// Stride, per-side padding and dilation of a convolution over (depth, height, width).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvParams {
    /// Step between output positions, per axis (non-zero).
    pub stride: [usize; 3],
    /// Zero padding `(before, after)` per axis.
    pub padding: [(usize, usize); 3],
    /// Spacing between kernel taps, per axis (non-zero).
    pub dilation: [usize; 3],
}

/// Fully resolved sizes of one convolution: `x [batch, in, D, H, W]`,
/// `weight [out, in, kD, kH, kW]`, `output [batch, out, oD, oH, oW]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    pub batch: usize,
    pub in_channels: usize,
    pub out_channels: usize,
    pub input: [usize; 3],
    pub kernel: [usize; 3],
    pub output: [usize; 3],
    pub stride: [usize; 3],
    /// Padding before each axis; the padding after only shortens or lengthens the output.
    pub pad_before: [usize; 3],
    pub dilation: [usize; 3],
}

impl ConvGeometry {
    /// Checks the shapes of a 5-D input and weight against `params` and derives the output size.
    pub fn new(x: [usize; 5], weight: [usize; 5], params: &ConvParams) -> Result<Self, ConvError> {
        let [batch, in_channels, d, h, w] = x;
        let [out_channels, weight_in, kd, kh, kw] = weight;
        if weight_in != in_channels {
            return Err(ConvError::ChannelMismatch {
                input: in_channels,
                weight: weight_in,
            });
        }
        if params.stride.contains(&0) || params.dilation.contains(&0) {
            return Err(ConvError::ZeroStepOrDilation);
        }
        if [batch, in_channels, out_channels, d, h, w, kd, kh, kw].contains(&0) {
            return Err(ConvError::EmptyTensor);
        }
        let input = [d, h, w];
        let kernel = [kd, kh, kw];
        let mut output = [0; 3];
        for axis in 0..3 {
            let (before, after) = params.padding[axis];
            let padded = input[axis] + before + after;
            let span = params.dilation[axis] * (kernel[axis] - 1) + 1;
            if span > padded {
                return Err(ConvError::KernelLargerThanInput {
                    axis,
                    span,
                    padded_input: padded,
                });
            }
            output[axis] = (padded - span) / params.stride[axis] + 1;
        }
        Ok(Self {
            batch,
            in_channels,
            out_channels,
            input,
            kernel,
            output,
            stride: params.stride,
            pad_before: params.padding.map(|(before, _)| before),
            dilation: params.dilation,
        })
    }

    /// Voxels in one input channel.
    pub fn input_plane(&self) -> usize {
        self.input.iter().product()
    }

    /// Voxels in one output channel (the GEMM's long dimension).
    pub fn output_plane(&self) -> usize {
        self.output.iter().product()
    }

    /// Taps of one kernel channel.
    pub fn kernel_volume(&self) -> usize {
        self.kernel.iter().product()
    }

    /// Rows of the im2col matrix: one per (input channel, kernel tap).
    pub fn col_rows(&self) -> usize {
        self.in_channels * self.kernel_volume()
    }

    /// Output "rows": one per (output depth, output height); each holds `output[2]` voxels.
    pub fn output_rows(&self) -> usize {
        self.output[0] * self.output[1]
    }

    /// A 1x1x1 kernel with unit stride and no padding reads the input as its own im2col matrix.
    pub fn is_pointwise(&self) -> bool {
        self.kernel == [1, 1, 1]
            && self.stride == [1, 1, 1]
            && self.pad_before == [0, 0, 0]
            && self.input == self.output
    }

    /// Output rows per cache tile: the im2col tile (`col_rows` x tile columns) should stay
    /// around `TILE_ELEMENTS` values (128 KB of f32) so it lives in L2 while the GEMM packs and
    /// streams over it. 16K-64K measured alike on the benchmark layers (docs/benchmarks.md);
    /// 96K and more were slower in 2-D.
    pub fn rows_per_tile(&self) -> usize {
        const TILE_ELEMENTS: usize = 32 * 1024;
        let columns = (TILE_ELEMENTS / self.col_rows().max(1)).max(64);
        (columns / self.output[2].max(1)).clamp(1, self.output_rows())
    }

    pub fn output_shape(&self) -> [usize; 5] {
        let [od, oh, ow] = self.output;
        [self.batch, self.out_channels, od, oh, ow]
    }

    pub fn input_shape(&self) -> [usize; 5] {
        let [d, h, w] = self.input;
        [self.batch, self.in_channels, d, h, w]
    }

    pub fn weight_shape(&self) -> [usize; 5] {
        let [kd, kh, kw] = self.kernel;
        [self.out_channels, self.in_channels, kd, kh, kw]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(stride: usize, pad: usize, dilation: usize) -> ConvParams {
        ConvParams {
            stride: [1, stride, stride],
            padding: [(0, 0), (pad, pad), (pad, pad)],
            dilation: [1, dilation, dilation],
        }
    }

    #[test]
    fn output_size_follows_pytorch_formula() {
        // floor((7 + 2*1 - 2*(3-1) - 1) / 2) + 1 = 3
        let g = ConvGeometry::new([1, 2, 1, 7, 7], [4, 2, 1, 3, 3], &params(2, 1, 2)).unwrap();
        assert_eq!(g.output, [1, 3, 3]);
        assert_eq!(g.col_rows(), 18);
    }

    #[test]
    fn kernel_larger_than_padded_input_is_rejected() {
        let err = ConvGeometry::new([1, 1, 1, 2, 2], [1, 1, 1, 3, 3], &params(1, 0, 1));
        assert_eq!(
            err,
            Err(ConvError::KernelLargerThanInput {
                axis: 1,
                span: 3,
                padded_input: 2
            })
        );
    }

    #[test]
    fn channel_mismatch_is_rejected() {
        let err = ConvGeometry::new([1, 3, 1, 5, 5], [1, 2, 1, 3, 3], &params(1, 0, 1));
        assert_eq!(
            err,
            Err(ConvError::ChannelMismatch {
                input: 3,
                weight: 2
            })
        );
    }
}

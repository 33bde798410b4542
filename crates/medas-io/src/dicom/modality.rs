//! Stored samples → modality values: MONOCHROME1 inversion and Rescale Slope/Intercept into the
//! output type GDCM chooses (see the `dicom` module documentation), and palette colour expansion.
//! One conversion kernel serves decoded samples and native pixel bytes read straight from files.

use super::header::{Frame, Header, Palette, PixelFormat};
use super::pixels::{Samples, with_samples};
use medas_image::{ImageError, ScalarType, Voxels};
use rayon::prelude::*;

/// A stored sample type, read from little-endian bytes.
pub(crate) trait Stored: Copy + Send + Sync + Into<f64> {
    const WIDTH: usize;
    /// The sample in `bytes` (exactly `WIDTH` long) with its `unused` high bits masked
    /// (unsigned) or sign-extended (signed), as pydicom does.
    fn read_le(bytes: &[u8], unused: u32) -> Self;
}

macro_rules! stored {
    ($($t:ty),*) => {$(
        impl Stored for $t {
            const WIDTH: usize = std::mem::size_of::<$t>();
            #[inline]
            fn read_le(bytes: &[u8], unused: u32) -> Self {
                let mut b = [0u8; std::mem::size_of::<$t>()];
                b.copy_from_slice(bytes);
                let v = <$t>::from_le_bytes(b);
                if unused > 0 { v.wrapping_shl(unused).wrapping_shr(unused) } else { v }
            }
        }
    )*};
}
stored!(u8, i8, u16, i16, u32, i32);

/// Output voxel types. A plain `as` conversion is exact: the output is an integer type only
/// when slope and intercept are integers and every rescaled value fits (see [`output_type`]).
trait Output: Copy + Send + Sync + Default + medas_image::VoxelArray {
    fn from_value(x: f64) -> Self;
}

macro_rules! output {
    ($($t:ty),*) => {$(
        impl Output for $t {
            #[inline]
            fn from_value(x: f64) -> Self {
                x as $t
            }
        }
    )*};
}
output!(u8, i8, u16, i16, u32, i32, f32, f64);

/// Runs `$body` with `$O` naming the Rust type of the output scalar type `$out`.
macro_rules! with_output {
    ($out:expr, $O:ident => $body:expr) => {
        match $out {
            ScalarType::U8 => { type $O = u8; $body }
            ScalarType::I8 => { type $O = i8; $body }
            ScalarType::U16 => { type $O = u16; $body }
            ScalarType::I16 => { type $O = i16; $body }
            ScalarType::U32 => { type $O = u32; $body }
            ScalarType::I32 => { type $O = i32; $body }
            ScalarType::F64 => { type $O = f64; $body }
            _ => { type $O = f32; $body }
        }
    };
}

/// Runs `$body` with `$T` naming the Rust type of the stored samples of `$fmt`.
macro_rules! with_stored {
    ($fmt:expr, $T:ident => $body:expr) => {
        match ($fmt.bits_allocated, $fmt.signed) {
            (1 | 8, false) => { type $T = u8; $body }
            (1 | 8, true) => { type $T = i8; $body }
            (16, false) => { type $T = u16; $body }
            (16, true) => { type $T = i16; $body }
            (_, false) => { type $T = u32; $body }
            (_, true) => { type $T = i32; $body }
        }
    };
}
pub(crate) use with_stored;

/// High bits of each stored sample that are not part of its value.
pub(crate) fn unused_bits(fmt: &PixelFormat) -> u32 {
    if fmt.bits_allocated == 1 { 0 } else { fmt.bits_allocated.saturating_sub(fmt.bits_stored) as u32 }
}

/// The stored value → modality value map of one frame.
#[derive(Debug, Clone, Copy)]
struct Mapping {
    /// `Some((low, high))`, the stored range, for MONOCHROME1.
    invert: Option<(f64, f64)>,
    slope: f64,
    intercept: f64,
}

impl Mapping {
    fn new(fmt: &PixelFormat, frame: Option<&Frame>) -> Mapping {
        let invert = (fmt.photometric == "MONOCHROME1").then(|| stored_range(fmt));
        let (slope, intercept) = frame.map_or((1.0, 0.0), |f| (f.slope, f.intercept));
        Mapping { invert, slope, intercept }
    }

    #[inline]
    fn apply(self, mut x: f64) -> f64 {
        if let Some((lo, hi)) = self.invert {
            x = if lo < 0.0 { -1.0 - x } else { hi - x };
        }
        x * self.slope + self.intercept
    }
}

/// Range of values `bits_stored` bits can hold.
pub(crate) fn stored_range(fmt: &PixelFormat) -> (f64, f64) {
    let bits = fmt.bits_stored.clamp(1, 32) as i32;
    if fmt.signed { (-(2f64.powi(bits - 1)), 2f64.powi(bits - 1) - 1.0) } else { (0.0, 2f64.powi(bits) - 1.0) }
}

/// The scalar type of the stored samples of `fmt`.
pub(crate) fn stored_type(fmt: &PixelFormat) -> ScalarType {
    with_stored!(fmt, T => <T as medas_image::Scalar>::TYPE)
}

/// Output type of the modality rescale (see the module documentation of `dicom`).
pub(crate) fn output_type(fmt: &PixelFormat, frames: &[Frame]) -> ScalarType {
    if frames.iter().all(|f| f.slope == 1.0 && f.intercept == 0.0) {
        return stored_type(fmt);
    }
    let integral = |x: f64| x.fract() == 0.0 && x.abs() < 2f64.powi(31);
    if !frames.iter().all(|f| integral(f.slope) && integral(f.intercept)) {
        return ScalarType::F32;
    }
    let (lo, hi) = stored_range(fmt);
    let (min, max) = frames.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(mn, mx), f| {
        let (a, b) = (lo * f.slope + f.intercept, hi * f.slope + f.intercept);
        (mn.min(a.min(b)), mx.max(a.max(b)))
    });
    let fits = |t: ScalarType| {
        let bits = (t.size() * 8) as i32;
        let (tlo, thi) =
            if t.is_signed() { (-(2f64.powi(bits - 1)), 2f64.powi(bits - 1) - 1.0) } else { (0.0, 2f64.powi(bits) - 1.0) };
        min >= tlo && max <= thi
    };
    [ScalarType::U8, ScalarType::I8, ScalarType::U16, ScalarType::I16, ScalarType::U32, ScalarType::I32]
        .into_iter()
        .find(|t| fits(*t))
        .unwrap_or(ScalarType::F32)
}

fn map_samples<T: Stored, O: Output>(src: &[T], dst: &mut [O], mapping: Mapping) {
    dst.iter_mut().zip(src).for_each(|(d, &s)| *d = O::from_value(mapping.apply(s.into())));
}

fn map_bytes<T: Stored, O: Output>(src: &[u8], unused: u32, dst: &mut [O], mapping: Mapping) {
    let samples = src.chunks_exact(T::WIDTH);
    dst.iter_mut().zip(samples).for_each(|(d, s)| *d = O::from_value(mapping.apply(T::read_le(s, unused).into())));
}

/// MONOCHROME1 inversion then Rescale Slope/Intercept per frame, into the output type.
pub(crate) fn rescale(samples: &Samples, header: &Header, shape: &[usize]) -> Result<Voxels, ImageError> {
    let fmt = &header.pixel;
    let frame_len = (fmt.rows * fmt.columns).max(1);
    macro_rules! go {
        ($src:expr) => {
            with_output!(output_type(fmt, &header.frames), O => {
                let mut values = vec![O::default(); $src.len()];
                values.par_chunks_mut(frame_len).zip($src.par_chunks(frame_len)).enumerate().for_each(
                    |(k, (dst, src))| map_samples(src, dst, Mapping::new(fmt, header.frames.get(k))),
                );
                Voxels::from_fortran_vec(shape, values)
            })
        };
    }
    with_samples!(samples, v => go!(v))
}

/// Modality values of a stack of single-sample, native little-endian parts (one file each),
/// written straight into the volume: `frames[p]` frames come from part `p`, whose stored bytes
/// `read(p)` returns (at least the frames' size; the caller checks). No intermediate copy of
/// the volume is made.
pub(crate) fn rescale_native_stack<E: Send>(
    header: &Header,
    frames: &[usize],
    read: impl Fn(usize, &mut dyn FnMut(&[u8])) -> Result<(), E> + Sync,
) -> Result<Result<Voxels, ImageError>, E> {
    let fmt = &header.pixel;
    let frame_len = (fmt.rows * fmt.columns).max(1);
    let unused = unused_bits(fmt);
    let shape = [fmt.columns, fmt.rows, frames.iter().sum()];
    with_output!(output_type(fmt, &header.frames), O => {
        let mut values = vec![O::default(); frame_len * shape[2]];
        let mut parts = Vec::with_capacity(frames.len());
        let (mut rest, mut first) = (values.as_mut_slice(), 0);
        for &count in frames {
            let (part, tail) = rest.split_at_mut((count * frame_len).min(rest.len()));
            parts.push((first, part));
            (rest, first) = (tail, first + count);
        }
        parts.into_par_iter().enumerate().try_for_each(|(p, (first, dst))| {
            read(p, &mut |bytes| {
                with_stored!(fmt, T => {
                    let src = bytes.chunks(frame_len * T::WIDTH);
                    for (k, (dst, src)) in dst.chunks_mut(frame_len).zip(src).enumerate() {
                        map_bytes::<T, O>(src, unused, dst, Mapping::new(fmt, header.frames.get(first + k)));
                    }
                })
            })
        })?;
        Ok(Voxels::from_fortran_vec(&shape, values))
    })
}

/// Palette colour → RGB (u8 when the data or the LUT entries are 8-bit, like SimpleITK).
pub(crate) fn expand_palette(
    samples: &Samples,
    palette: &Palette,
    fmt: &PixelFormat,
    shape: &[usize],
) -> Result<Voxels, ImageError> {
    let indices: Vec<i64> = with_samples!(samples, v => v.iter().map(|&x| x as i64).collect());
    let last = palette.red.len().min(palette.green.len()).min(palette.blue.len()).saturating_sub(1) as i64;
    let entry = |v: i64| (v - palette.first).clamp(0, last) as usize;
    let eight = palette.bits == 8 || fmt.bits_allocated == 8;
    let shift = if palette.bits == 16 && eight { 8 } else { 0 };
    let rgb = |v: &i64| {
        let e = entry(*v);
        [palette.red[e] >> shift, palette.green[e] >> shift, palette.blue[e] >> shift]
    };
    if eight {
        let data: Vec<u8> = indices.par_iter().flat_map_iter(|v| rgb(v).map(|c| c as u8)).collect();
        Voxels::from_interleaved_vec(shape, 3, data)
    } else {
        let data: Vec<u16> = indices.par_iter().flat_map_iter(rgb).collect();
        Voxels::from_interleaved_vec(shape, 3, data)
    }
}

/// A one-row, two-column greyscale 16-bit format for unit tests.
#[cfg(test)]
pub(crate) fn test_format(bits_stored: u16, signed: bool) -> PixelFormat {
    PixelFormat {
        rows: 1,
        columns: 2,
        frames: 1,
        samples: 1,
        bits_allocated: 16,
        bits_stored,
        signed,
        photometric: "MONOCHROME2".into(),
        planar: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_format as format;

    fn frame(slope: f64, intercept: f64) -> Frame {
        Frame { position: None, slope, intercept }
    }

    #[test]
    fn rescale_type_follows_gdcm() {
        let ct = format(16, true);
        assert_eq!(output_type(&ct, &[frame(1.0, -1024.0)]), ScalarType::I32);
        assert_eq!(output_type(&format(12, false), &[frame(1.0, -1024.0)]), ScalarType::I16);
        assert_eq!(output_type(&format(12, false), &[frame(1.0, 0.0)]), ScalarType::U16);
        assert_eq!(output_type(&ct, &[frame(0.5, 0.0)]), ScalarType::F32);
    }

    #[test]
    fn unused_bits_are_masked_or_sign_extended() {
        assert_eq!(u16::read_le(&[0xff, 0xf7], 4), 0x07ff); // 12 stored bits 0x7ff, garbage above
        assert_eq!(i16::read_le(&[0x00, 0xf8], 4), -2048); // 12-bit signed 0x800
        assert_eq!(i16::read_le(&[0xff, 0x07], 4), 2047);
    }

    /// Native bytes of two frames with their own rescale and MONOCHROME1, straight into the volume.
    #[test]
    fn native_stack_rescales_each_frame_and_inverts_monochrome1() {
        let mut fmt = format(12, false);
        fmt.photometric = "MONOCHROME1".into();
        let header = Header {
            pixel: fmt,
            transfer_syntax: "1.2.840.10008.1.2.1".into(),
            frames: vec![frame(1.0, -1024.0), frame(2.0, 0.0)],
            orientation: None,
            pixel_spacing: None,
            slice_spacing: None,
            palette: None,
            metadata: Default::default(),
        };
        // Stored 0x000, 0x0ff (garbage high bits) in part 0; 0x001, 0xfff in part 1.
        let parts: [&[u8]; 2] = [&[0x00, 0x00, 0xff, 0xf0], &[0x01, 0x00, 0xff, 0x0f]];
        let voxels = rescale_native_stack::<()>(&header, &[1, 1], |p, sink| {
            sink(parts[p]);
            Ok(())
        })
        .unwrap()
        .unwrap();
        // Inverted (4095 − v), then slope/intercept of the part's frame; output i16 (range −1024..8190).
        let expected: Vec<i16> = vec![4095 - 1024, 4095 - 255 - 1024, 2 * 4094, 0];
        let Voxels::I16(array) = voxels else { panic!("expected i16, got {:?}", voxels.scalar_type()) };
        assert_eq!(array.shape(), &[2, 1, 2]);
        assert_eq!(array.t().iter().copied().collect::<Vec<_>>(), expected);
    }
}

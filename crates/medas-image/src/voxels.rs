use crate::{ImageError, PixelType, Scalar, ScalarType};
use ndarray::{ArcArray, ArrayD, IxDyn, ShapeBuilder};
use rayon::prelude::*;

/// The voxel array of an image, one variant per component type.
///
/// Arrays are reference-counted: clones share memory until one of them is written.
#[derive(Debug, Clone, PartialEq)]
pub enum Voxels {
    U8(ArcArray<u8, IxDyn>),
    I8(ArcArray<i8, IxDyn>),
    U16(ArcArray<u16, IxDyn>),
    I16(ArcArray<i16, IxDyn>),
    U32(ArcArray<u32, IxDyn>),
    I32(ArcArray<i32, IxDyn>),
    U64(ArcArray<u64, IxDyn>),
    I64(ArcArray<i64, IxDyn>),
    F32(ArcArray<f32, IxDyn>),
    F64(ArcArray<f64, IxDyn>),
}

/// Minimum, maximum and mean over all finite voxels (NaN and ±inf are counted, not averaged).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VoxelStats {
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    pub count: usize,
    pub non_finite: usize,
}

/// Typed conversion between a Rust scalar array and [`Voxels`].
pub trait VoxelArray: Scalar {
    fn wrap(array: ArcArray<Self, IxDyn>) -> Voxels;
    fn unwrap_ref(voxels: &Voxels) -> Option<&ArcArray<Self, IxDyn>>;
}

macro_rules! voxel_array {
    ($t:ty, $variant:ident) => {
        impl VoxelArray for $t {
            fn wrap(array: ArcArray<Self, IxDyn>) -> Voxels {
                Voxels::$variant(array)
            }
            fn unwrap_ref(voxels: &Voxels) -> Option<&ArcArray<Self, IxDyn>> {
                match voxels {
                    Voxels::$variant(a) => Some(a),
                    _ => None,
                }
            }
        }
        impl From<ArrayD<$t>> for Voxels {
            fn from(array: ArrayD<$t>) -> Self {
                Voxels::$variant(array.into_shared())
            }
        }
        impl From<ArcArray<$t, IxDyn>> for Voxels {
            fn from(array: ArcArray<$t, IxDyn>) -> Self {
                Voxels::$variant(array)
            }
        }
    };
}
voxel_array!(u8, U8);
voxel_array!(i8, I8);
voxel_array!(u16, U16);
voxel_array!(i16, I16);
voxel_array!(u32, U32);
voxel_array!(i32, I32);
voxel_array!(u64, U64);
voxel_array!(i64, I64);
voxel_array!(f32, F32);
voxel_array!(f64, F64);

impl Voxels {
    /// Wraps a flat buffer stored with the first axis fastest (Fortran order), which is how
    /// NIfTI, DICOM, MetaImage and NRRD store voxels. No copy is made.
    pub fn from_fortran_vec<T: VoxelArray>(shape: &[usize], data: Vec<T>) -> Result<Self, ImageError> {
        let expected: usize = shape.iter().product();
        if data.len() != expected {
            return Err(ImageError::BufferSize { got: data.len(), expected, shape: shape.to_vec() });
        }
        let array = ArrayD::from_shape_vec(IxDyn(shape).f(), data).expect("length checked above");
        Ok(T::wrap(array.into_shared()))
    }

    /// Wraps an interleaved multi-component buffer (component fastest, then the first spatial
    /// axis, ...) as an array of shape `spatial ++ [components]` without copying.
    pub fn from_interleaved_vec<T: VoxelArray>(
        spatial: &[usize],
        components: usize,
        data: Vec<T>,
    ) -> Result<Self, ImageError> {
        let mut shape = spatial.to_vec();
        shape.push(components);
        let expected: usize = shape.iter().product();
        if data.len() != expected {
            return Err(ImageError::BufferSize { got: data.len(), expected, shape });
        }
        let mut strides = Vec::with_capacity(shape.len());
        let mut stride = components;
        for &n in spatial {
            strides.push(stride);
            stride *= n;
        }
        strides.push(1);
        let array = ArrayD::from_shape_vec(IxDyn(&shape).strides(IxDyn(&strides)), data)
            .expect("length and strides checked above");
        Ok(T::wrap(array.into_shared()))
    }

    pub fn scalar_type(&self) -> ScalarType {
        crate::with_voxels!(self, a => element_type(a))
    }

    pub fn shape(&self) -> &[usize] {
        crate::with_voxels!(self, a => a.shape())
    }

    pub fn len(&self) -> usize {
        crate::with_voxels!(self, a => a.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Borrows the typed array when the voxels are of type `T`.
    pub fn as_array<T: VoxelArray>(&self) -> Option<&ArcArray<T, IxDyn>> {
        T::unwrap_ref(self)
    }

    /// Converts every voxel to `T` (rounding and saturating for integers). Copies unless the
    /// type already matches, in which case the shared array is returned.
    pub fn cast<T: VoxelArray>(&self) -> ArcArray<T, IxDyn> {
        if let Some(same) = T::unwrap_ref(self) {
            return same.clone();
        }
        crate::with_voxels!(self, a => convert_array(a))
    }

    /// The same voxels as another component type.
    pub fn cast_to(&self, scalar: ScalarType) -> Voxels {
        match scalar {
            ScalarType::U8 => Voxels::U8(self.cast()),
            ScalarType::I8 => Voxels::I8(self.cast()),
            ScalarType::U16 => Voxels::U16(self.cast()),
            ScalarType::I16 => Voxels::I16(self.cast()),
            ScalarType::U32 => Voxels::U32(self.cast()),
            ScalarType::I32 => Voxels::I32(self.cast()),
            ScalarType::U64 => Voxels::U64(self.cast()),
            ScalarType::I64 => Voxels::I64(self.cast()),
            ScalarType::F32 => Voxels::F32(self.cast()),
            ScalarType::F64 => Voxels::F64(self.cast()),
        }
    }

    /// Range and mean of the values, computed in parallel.
    pub fn stats(&self) -> VoxelStats {
        crate::with_voxels!(self, a => compute_stats(a))
    }

    /// The pixel type for a given number of components.
    pub fn pixel_type(&self, components: usize) -> PixelType {
        PixelType { scalar: self.scalar_type(), components }
    }
}

fn element_type<T: Scalar>(_: &ArcArray<T, IxDyn>) -> ScalarType {
    T::TYPE
}

fn convert_array<S: Scalar, T: Scalar>(source: &ArcArray<S, IxDyn>) -> ArcArray<T, IxDyn> {
    // Keep the memory order of the source (Fortran for most medical files) so that the
    // result is as cheap to traverse as the input.
    let fortran = source.ndim() > 1 && source.view().reversed_axes().is_standard_layout();
    let shape = source.shape().to_vec();
    let values: Vec<T> = if fortran {
        let t = source.view().reversed_axes();
        t.as_slice().expect("checked contiguous").par_iter().map(|v| T::from_f64(v.to_f64())).collect()
    } else {
        source.iter().map(|v| T::from_f64(v.to_f64())).collect()
    };
    let array = if fortran {
        ArrayD::from_shape_vec(IxDyn(&shape).f(), values)
    } else {
        ArrayD::from_shape_vec(IxDyn(&shape), values)
    };
    array.expect("same element count").into_shared()
}

fn compute_stats<T: Scalar>(array: &ArcArray<T, IxDyn>) -> VoxelStats {
    #[derive(Clone, Copy)]
    struct Acc {
        min: f64,
        max: f64,
        sum: f64,
        count: usize,
        non_finite: usize,
    }
    let empty = Acc { min: f64::INFINITY, max: f64::NEG_INFINITY, sum: 0.0, count: 0, non_finite: 0 };
    let add = |mut acc: Acc, v: &T| {
        let x = v.to_f64();
        if x.is_finite() {
            acc.min = acc.min.min(x);
            acc.max = acc.max.max(x);
            acc.sum += x;
            acc.count += 1;
        } else {
            acc.non_finite += 1;
        }
        acc
    };
    let merge = |a: Acc, b: Acc| Acc {
        min: a.min.min(b.min),
        max: a.max.max(b.max),
        sum: a.sum + b.sum,
        count: a.count + b.count,
        non_finite: a.non_finite + b.non_finite,
    };
    let acc = match array.as_slice_memory_order() {
        Some(slice) => slice.par_chunks(1 << 16).map(|c| c.iter().fold(empty, add)).reduce(|| empty, merge),
        None => array.iter().fold(empty, add),
    };
    VoxelStats {
        min: if acc.count > 0 { acc.min } else { f64::NAN },
        max: if acc.count > 0 { acc.max } else { f64::NAN },
        mean: if acc.count > 0 { acc.sum / acc.count as f64 } else { f64::NAN },
        count: acc.count,
        non_finite: acc.non_finite,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fortran_buffer_keeps_x_fastest() {
        let v = Voxels::from_fortran_vec(&[2, 3], vec![0u8, 1, 2, 3, 4, 5]).unwrap();
        let a = v.as_array::<u8>().unwrap();
        assert_eq!(a[[1, 0]], 1);
        assert_eq!(a[[0, 1]], 2);
        assert_eq!(a[[1, 2]], 5);
    }

    #[test]
    fn interleaved_rgb_is_a_view() {
        let data: Vec<u8> = (0..12).collect(); // 2x2 RGB
        let v = Voxels::from_interleaved_vec(&[2, 2], 3, data).unwrap();
        let a = v.as_array::<u8>().unwrap();
        assert_eq!(a.shape(), &[2, 2, 3]);
        assert_eq!(a[[1, 0, 0]], 3);
        assert_eq!(a[[0, 1, 2]], 8);
    }

    #[test]
    fn cast_and_stats() {
        let v = Voxels::from_fortran_vec(&[2, 2], vec![-1.4f32, 2.6, f32::NAN, 300.0]).unwrap();
        let u = v.cast_to(ScalarType::U8);
        assert_eq!(u.as_array::<u8>().unwrap().as_slice_memory_order().unwrap(), &[0, 3, 0, 255]);
        let s = v.stats();
        assert_eq!((s.min, s.max, s.count, s.non_finite), (-1.399999976158142, 300.0, 3, 1));
    }

    #[test]
    fn buffer_size_is_checked() {
        assert!(Voxels::from_fortran_vec(&[2, 2], vec![0u8; 3]).is_err());
    }
}

//! The MEDAS image model.
//!
//! An [`Image`] is an N-d array of voxels (2-D to 4-D, scalar or multi-component such as RGB)
//! plus the [`Geometry`] that places every voxel in physical space and a [`Metadata`] map.
//!
//! Conventions used everywhere in MEDAS:
//! - Array axis `k` is the image's `k`-th index axis (`i, j, k, t`), as in nibabel and SimpleITK's
//!   `GetSize()` order; a multi-component image has one extra, last axis for the components.
//! - Physical space is DICOM/ITK **LPS** in millimetres (x to the patient's left, y to posterior,
//!   z to superior). NIfTI's RAS affines are converted on read and write.
//! - Arrays are shared (`ArcArray`): cloning an image or taking a view never copies the voxels.

mod error;
mod geometry;
mod image;
mod metadata;
mod pixel;
mod voxels;

pub use error::ImageError;
pub use geometry::Geometry;
pub use image::Image;
pub use metadata::{Metadata, WindowPreset, keys};
pub use pixel::{PixelType, Scalar, ScalarType};
pub use voxels::{VoxelArray, VoxelStats, Voxels};

/// Applies `$body` to the typed array inside a [`Voxels`], binding it to `$arr`.
#[macro_export]
macro_rules! with_voxels {
    ($voxels:expr, $arr:ident => $body:expr) => {
        match $voxels {
            $crate::Voxels::U8($arr) => $body,
            $crate::Voxels::I8($arr) => $body,
            $crate::Voxels::U16($arr) => $body,
            $crate::Voxels::I16($arr) => $body,
            $crate::Voxels::U32($arr) => $body,
            $crate::Voxels::I32($arr) => $body,
            $crate::Voxels::U64($arr) => $body,
            $crate::Voxels::I64($arr) => $body,
            $crate::Voxels::F32($arr) => $body,
            $crate::Voxels::F64($arr) => $body,
        }
    };
}

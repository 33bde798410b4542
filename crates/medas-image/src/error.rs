use thiserror::Error;

/// What can be wrong with an image's parts when they are put together.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum ImageError {
    #[error("geometry has {geometry} dimensions but the voxel array has {array} spatial axes")]
    DimensionMismatch { geometry: usize, array: usize },
    #[error("images have 1 to 4 spatial dimensions, not {0}")]
    UnsupportedDimension(usize),
    #[error("spacing must be finite and positive, got {0:?}")]
    BadSpacing(Vec<f64>),
    #[error("origin must be finite, got {0:?}")]
    BadOrigin(Vec<f64>),
    #[error("direction must be a finite, invertible {n}x{n} matrix, got {values:?}")]
    BadDirection { n: usize, values: Vec<f64> },
    #[error("a {components}-component image needs a last array axis of length {components}, got shape {shape:?}")]
    ComponentMismatch { components: usize, shape: Vec<usize> },
    #[error("voxel buffer of {got} elements does not fill shape {shape:?} ({expected} elements)")]
    BufferSize { got: usize, expected: usize, shape: Vec<usize> },
}

use crate::{Geometry, ImageError, Metadata, PixelType, ScalarType, Voxels};

/// A medical image: voxels, their placement in physical space, and metadata.
///
/// Invariant: the voxel array has `geometry.dimension()` spatial axes, plus one trailing
/// component axis when `components > 1`.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    voxels: Voxels,
    components: usize,
    geometry: Geometry,
    pub metadata: Metadata,
}

impl Image {
    /// A scalar (one component per voxel) image.
    pub fn new(voxels: Voxels, geometry: Geometry) -> Result<Self, ImageError> {
        Self::with_components(voxels, 1, geometry)
    }

    /// An image with `components` values per voxel (3 for RGB, 4 for RGBA).
    pub fn with_components(voxels: Voxels, components: usize, geometry: Geometry) -> Result<Self, ImageError> {
        let shape = voxels.shape();
        let spatial_axes = if components > 1 {
            if shape.last() != Some(&components) {
                return Err(ImageError::ComponentMismatch { components, shape: shape.to_vec() });
            }
            shape.len() - 1
        } else {
            shape.len()
        };
        if spatial_axes != geometry.dimension() {
            return Err(ImageError::DimensionMismatch { geometry: geometry.dimension(), array: spatial_axes });
        }
        Ok(Self { voxels, components: components.max(1), geometry, metadata: Metadata::new() })
    }

    /// A scalar image with unit spacing, zero origin and identity direction.
    pub fn from_voxels(voxels: Voxels) -> Result<Self, ImageError> {
        let n = voxels.shape().len();
        if !(1..=4).contains(&n) {
            return Err(ImageError::UnsupportedDimension(n));
        }
        Self::new(voxels, Geometry::identity(n))
    }

    pub fn voxels(&self) -> &Voxels {
        &self.voxels
    }
    pub fn into_voxels(self) -> Voxels {
        self.voxels
    }
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }
    /// Replaces the geometry; it must have the same number of dimensions.
    pub fn set_geometry(&mut self, geometry: Geometry) -> Result<(), ImageError> {
        if geometry.dimension() != self.geometry.dimension() {
            return Err(ImageError::DimensionMismatch {
                geometry: geometry.dimension(),
                array: self.geometry.dimension(),
            });
        }
        self.geometry = geometry;
        Ok(())
    }
    pub fn components(&self) -> usize {
        self.components
    }
    pub fn dimension(&self) -> usize {
        self.geometry.dimension()
    }
    /// Number of voxels along each index axis (without the component axis).
    pub fn size(&self) -> &[usize] {
        &self.voxels.shape()[..self.dimension()]
    }
    pub fn pixel_type(&self) -> PixelType {
        self.voxels.pixel_type(self.components)
    }
    pub fn scalar_type(&self) -> ScalarType {
        self.voxels.scalar_type()
    }

    /// The same image with voxels converted to another component type.
    pub fn cast(&self, scalar: ScalarType) -> Image {
        Image {
            voxels: self.voxels.cast_to(scalar),
            components: self.components,
            geometry: self.geometry.clone(),
            metadata: self.metadata.clone(),
        }
    }

    /// Replaces the voxels, keeping geometry and metadata; the shape must not change.
    pub fn with_voxels(&self, voxels: Voxels) -> Result<Image, ImageError> {
        let mut out = Image::with_components(voxels, self.components, self.geometry.clone())?;
        if out.voxels.shape() != self.voxels.shape() {
            return Err(ImageError::BufferSize {
                got: out.voxels.len(),
                expected: self.voxels.len(),
                shape: self.voxels.shape().to_vec(),
            });
        }
        out.metadata = self.metadata.clone();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_axes_against_geometry() {
        let v = Voxels::from_fortran_vec(&[2, 3, 4], vec![0i16; 24]).unwrap();
        assert!(Image::new(v.clone(), Geometry::identity(2)).is_err());
        let img = Image::new(v, Geometry::identity(3)).unwrap();
        assert_eq!(img.size(), &[2, 3, 4]);
        assert_eq!(img.pixel_type().to_string(), "int16");
    }

    #[test]
    fn rgb_has_a_component_axis() {
        let v = Voxels::from_interleaved_vec(&[4, 5], 3, vec![0u8; 60]).unwrap();
        let img = Image::with_components(v.clone(), 3, Geometry::identity(2)).unwrap();
        assert_eq!(img.size(), &[4, 5]);
        assert_eq!(img.pixel_type().to_string(), "rgb<uint8>");
        assert!(Image::with_components(v, 4, Geometry::identity(2)).is_err());
    }

    #[test]
    fn clone_shares_voxels() {
        let v = Voxels::from_fortran_vec(&[64, 64], vec![1.0f32; 4096]).unwrap();
        let img = Image::from_voxels(v).unwrap();
        let copy = img.clone();
        let (a, b) = (img.voxels().as_array::<f32>().unwrap(), copy.voxels().as_array::<f32>().unwrap());
        assert_eq!(a.as_ptr(), b.as_ptr());
    }
}

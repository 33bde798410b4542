use serde::{Deserialize, Serialize};
use std::fmt;

/// The numeric type of one voxel component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScalarType {
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F32,
    F64,
}

impl ScalarType {
    /// Size of one component in bytes.
    pub fn size(self) -> usize {
        match self {
            Self::U8 | Self::I8 => 1,
            Self::U16 | Self::I16 => 2,
            Self::U32 | Self::I32 | Self::F32 => 4,
            Self::U64 | Self::I64 | Self::F64 => 8,
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, Self::F32 | Self::F64)
    }

    pub fn is_signed(self) -> bool {
        matches!(self, Self::I8 | Self::I16 | Self::I32 | Self::I64 | Self::F32 | Self::F64)
    }

    /// numpy-style name (`uint8`, `int16`, `float32`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::U8 => "uint8",
            Self::I8 => "int8",
            Self::U16 => "uint16",
            Self::I16 => "int16",
            Self::U32 => "uint32",
            Self::I32 => "int32",
            Self::U64 => "uint64",
            Self::I64 => "int64",
            Self::F32 => "float32",
            Self::F64 => "float64",
        }
    }

    /// Parses the numpy-style name or the short Rust one (`u8`, `f32`, ...).
    pub fn parse(name: &str) -> Option<Self> {
        let all = [
            Self::U8,
            Self::I8,
            Self::U16,
            Self::I16,
            Self::U32,
            Self::I32,
            Self::U64,
            Self::I64,
            Self::F32,
            Self::F64,
        ];
        let lower = name.to_ascii_lowercase();
        all.into_iter().find(|t| t.name() == lower || format!("{t:?}").to_ascii_lowercase() == lower)
    }
}

impl fmt::Display for ScalarType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Scalar type plus number of components (1 for grey, 3 for RGB, 4 for RGBA).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PixelType {
    pub scalar: ScalarType,
    pub components: usize,
}

impl fmt::Display for PixelType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.components {
            1 => write!(f, "{}", self.scalar),
            3 => write!(f, "rgb<{}>", self.scalar),
            4 => write!(f, "rgba<{}>", self.scalar),
            n => write!(f, "vector<{}, {n}>", self.scalar),
        }
    }
}

/// Rust types that can be voxel components.
pub trait Scalar:
    Copy + Send + Sync + PartialOrd + Default + fmt::Debug + 'static
{
    const TYPE: ScalarType;
    fn to_f64(self) -> f64;
    /// Converts with rounding and saturation for integers (NaN becomes 0).
    fn from_f64(value: f64) -> Self;
}

macro_rules! int_scalar {
    ($t:ty, $variant:ident) => {
        impl Scalar for $t {
            const TYPE: ScalarType = ScalarType::$variant;
            #[inline]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline]
            fn from_f64(value: f64) -> Self {
                // `as` saturates and maps NaN to 0, which is what a cast to an integer type should do.
                value.round() as $t
            }
        }
    };
}
int_scalar!(u8, U8);
int_scalar!(i8, I8);
int_scalar!(u16, U16);
int_scalar!(i16, I16);
int_scalar!(u32, U32);
int_scalar!(i32, I32);
int_scalar!(u64, U64);
int_scalar!(i64, I64);

impl Scalar for f32 {
    const TYPE: ScalarType = ScalarType::F32;
    #[inline]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline]
    fn from_f64(value: f64) -> Self {
        value as f32
    }
}

impl Scalar for f64 {
    const TYPE: ScalarType = ScalarType::F64;
    #[inline]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline]
    fn from_f64(value: f64) -> Self {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_names() {
        assert_eq!(ScalarType::parse("int16"), Some(ScalarType::I16));
        assert_eq!(ScalarType::parse("F32"), Some(ScalarType::F32));
        assert_eq!(ScalarType::parse("complex"), None);
    }

    #[test]
    fn integer_conversion_rounds_and_saturates() {
        assert_eq!(u8::from_f64(300.0), 255);
        assert_eq!(u8::from_f64(-4.0), 0);
        assert_eq!(i16::from_f64(-1.6), -2);
        assert_eq!(i32::from_f64(f64::NAN), 0);
    }
}

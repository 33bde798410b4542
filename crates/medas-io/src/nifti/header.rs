//! NIfTI-1 (348-byte) and NIfTI-2 (540-byte) headers: parsing and serialising the fields
//! MEDAS uses. Both versions are mapped onto one [`Header`] with 64-bit fields.

use crate::raw::ByteOrder;

/// The header fields that matter for reading and writing voxels and geometry.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub version: Version,
    pub order: ByteOrder,
    /// `dim[0..8]`: `dim[0]` is the number of dimensions.
    pub dim: [i64; 8],
    pub datatype: i16,
    pub bitpix: i16,
    /// `pixdim[0]` is qfac; `pixdim[1..=3]` are voxel sizes, `pixdim[4]` the time step.
    pub pixdim: [f64; 8],
    pub vox_offset: f64,
    pub scl_slope: f64,
    pub scl_inter: f64,
    pub cal_min: f64,
    pub cal_max: f64,
    pub toffset: f64,
    pub xyzt_units: u8,
    pub intent_code: i32,
    pub descrip: String,
    pub qform_code: i32,
    pub sform_code: i32,
    /// quatern_b, c, d and qoffset_x, y, z.
    pub quatern: [f64; 3],
    pub qoffset: [f64; 3],
    /// srow_x, srow_y, srow_z (RAS).
    pub srow: [[f64; 4]; 3],
    /// True for a single `.nii` file (`n+1`/`n+2`), false for a `.hdr`/`.img` pair (`ni1`/`ni2`).
    pub single_file: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Nifti1,
    Nifti2,
}

impl Version {
    pub fn header_size(self) -> usize {
        match self {
            Version::Nifti1 => 348,
            Version::Nifti2 => 540,
        }
    }
}

/// Why a header could not be parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum HeaderError {
    TooShort(usize),
    NotNifti,
    /// Analyze 7.5 header (no NIfTI magic): geometry conventions differ; not supported.
    Analyze,
}

struct Fields<'a> {
    bytes: &'a [u8],
    order: ByteOrder,
}

impl Fields<'_> {
    fn take<const N: usize>(&self, offset: usize) -> [u8; N] {
        let mut b = [0u8; N];
        b.copy_from_slice(&self.bytes[offset..offset + N]);
        if self.order != ByteOrder::NATIVE {
            b.reverse();
        }
        b
    }
    fn i16(&self, offset: usize) -> i16 {
        i16::from_ne_bytes(self.take(offset))
    }
    fn i32(&self, offset: usize) -> i32 {
        i32::from_ne_bytes(self.take(offset))
    }
    fn i64(&self, offset: usize) -> i64 {
        i64::from_ne_bytes(self.take(offset))
    }
    fn f32(&self, offset: usize) -> f64 {
        f32::from_ne_bytes(self.take(offset)) as f64
    }
    fn f64(&self, offset: usize) -> f64 {
        f64::from_ne_bytes(self.take(offset))
    }
    fn text(&self, offset: usize, len: usize) -> String {
        let raw = &self.bytes[offset..offset + len];
        let end = raw.iter().position(|&b| b == 0).unwrap_or(len);
        String::from_utf8_lossy(&raw[..end]).trim().to_string()
    }
}

/// Tells the version and byte order from `sizeof_hdr` (348 or 540, either byte order).
pub fn sniff(bytes: &[u8]) -> Result<(Version, ByteOrder), HeaderError> {
    if bytes.len() < 4 {
        return Err(HeaderError::TooShort(bytes.len()));
    }
    let le = i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let be = i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let (version, order) = match (le, be) {
        (348, _) => (Version::Nifti1, ByteOrder::Little),
        (_, 348) => (Version::Nifti1, ByteOrder::Big),
        (540, _) => (Version::Nifti2, ByteOrder::Little),
        (_, 540) => (Version::Nifti2, ByteOrder::Big),
        _ => return Err(HeaderError::NotNifti),
    };
    if bytes.len() < version.header_size() {
        return Err(HeaderError::TooShort(bytes.len()));
    }
    Ok((version, order))
}

/// Parses a header from its first bytes (at least 348 or 540 of them).
pub fn parse(bytes: &[u8]) -> Result<Header, HeaderError> {
    let (version, order) = sniff(bytes)?;
    let f = Fields { bytes, order };
    match version {
        Version::Nifti1 => parse_v1(&f),
        Version::Nifti2 => parse_v2(&f),
    }
}

fn parse_v1(f: &Fields) -> Result<Header, HeaderError> {
    let magic = &f.bytes[344..348];
    let single_file = match magic {
        b"n+1\0" => true,
        b"ni1\0" => false,
        _ => return Err(HeaderError::Analyze),
    };
    let mut dim = [0i64; 8];
    let mut pixdim = [0f64; 8];
    for k in 0..8 {
        dim[k] = f.i16(40 + 2 * k) as i64;
        pixdim[k] = f.f32(76 + 4 * k);
    }
    let mut srow = [[0f64; 4]; 3];
    for (r, row) in srow.iter_mut().enumerate() {
        for (c, v) in row.iter_mut().enumerate() {
            *v = f.f32(280 + 16 * r + 4 * c);
        }
    }
    Ok(Header {
        version: Version::Nifti1,
        order: f.order,
        dim,
        datatype: f.i16(70),
        bitpix: f.i16(72),
        pixdim,
        vox_offset: f.f32(108),
        scl_slope: f.f32(112),
        scl_inter: f.f32(116),
        cal_max: f.f32(124),
        cal_min: f.f32(128),
        toffset: f.f32(136),
        xyzt_units: f.bytes[123],
        intent_code: f.i16(68) as i32,
        descrip: f.text(148, 80),
        qform_code: f.i16(252) as i32,
        sform_code: f.i16(254) as i32,
        quatern: [f.f32(256), f.f32(260), f.f32(264)],
        qoffset: [f.f32(268), f.f32(272), f.f32(276)],
        srow,
        single_file,
    })
}

fn parse_v2(f: &Fields) -> Result<Header, HeaderError> {
    let single_file = match &f.bytes[4..8] {
        b"n+2\0" => true,
        b"ni2\0" => false,
        _ => return Err(HeaderError::NotNifti),
    };
    let mut dim = [0i64; 8];
    let mut pixdim = [0f64; 8];
    for k in 0..8 {
        dim[k] = f.i64(16 + 8 * k);
        pixdim[k] = f.f64(104 + 8 * k);
    }
    let mut srow = [[0f64; 4]; 3];
    for (r, row) in srow.iter_mut().enumerate() {
        for (c, v) in row.iter_mut().enumerate() {
            *v = f.f64(400 + 32 * r + 8 * c);
        }
    }
    Ok(Header {
        version: Version::Nifti2,
        order: f.order,
        dim,
        datatype: f.i16(12),
        bitpix: f.i16(14),
        pixdim,
        vox_offset: f.i64(168) as f64,
        scl_slope: f.f64(176),
        scl_inter: f.f64(184),
        cal_max: f.f64(192),
        cal_min: f.f64(200),
        toffset: f.f64(216),
        xyzt_units: f.i32(500) as u8,
        intent_code: f.i32(504),
        descrip: f.text(240, 80),
        qform_code: f.i32(344),
        sform_code: f.i32(348),
        quatern: [f.f64(352), f.f64(360), f.f64(368)],
        qoffset: [f.f64(376), f.f64(384), f.f64(392)],
        srow,
        single_file,
    })
}

/// Serialises a header in native byte order (what every modern tool writes).
pub fn serialize(h: &Header) -> Vec<u8> {
    match h.version {
        Version::Nifti1 => serialize_v1(h),
        Version::Nifti2 => serialize_v2(h),
    }
}

struct Writer(Vec<u8>);

impl Writer {
    fn put(&mut self, offset: usize, bytes: &[u8]) {
        self.0[offset..offset + bytes.len()].copy_from_slice(bytes);
    }
    fn text(&mut self, offset: usize, len: usize, text: &str) {
        let bytes = text.as_bytes();
        let n = bytes.len().min(len - 1);
        self.put(offset, &bytes[..n]);
    }
}

fn serialize_v1(h: &Header) -> Vec<u8> {
    let mut w = Writer(vec![0u8; 348]);
    w.put(0, &348i32.to_ne_bytes());
    w.put(38, b"r");
    for k in 0..8 {
        w.put(40 + 2 * k, &(h.dim[k] as i16).to_ne_bytes());
        w.put(76 + 4 * k, &(h.pixdim[k] as f32).to_ne_bytes());
    }
    w.put(68, &(h.intent_code as i16).to_ne_bytes());
    w.put(70, &h.datatype.to_ne_bytes());
    w.put(72, &h.bitpix.to_ne_bytes());
    w.put(108, &(h.vox_offset as f32).to_ne_bytes());
    w.put(112, &(h.scl_slope as f32).to_ne_bytes());
    w.put(116, &(h.scl_inter as f32).to_ne_bytes());
    w.put(123, &[h.xyzt_units]);
    w.put(124, &(h.cal_max as f32).to_ne_bytes());
    w.put(128, &(h.cal_min as f32).to_ne_bytes());
    w.put(136, &(h.toffset as f32).to_ne_bytes());
    w.text(148, 80, &h.descrip);
    w.put(252, &(h.qform_code as i16).to_ne_bytes());
    w.put(254, &(h.sform_code as i16).to_ne_bytes());
    for k in 0..3 {
        w.put(256 + 4 * k, &(h.quatern[k] as f32).to_ne_bytes());
        w.put(268 + 4 * k, &(h.qoffset[k] as f32).to_ne_bytes());
    }
    for r in 0..3 {
        for c in 0..4 {
            w.put(280 + 16 * r + 4 * c, &(h.srow[r][c] as f32).to_ne_bytes());
        }
    }
    w.put(344, if h.single_file { b"n+1\0" } else { b"ni1\0" });
    w.0
}

fn serialize_v2(h: &Header) -> Vec<u8> {
    let mut w = Writer(vec![0u8; 540]);
    w.put(0, &540i32.to_ne_bytes());
    w.put(4, if h.single_file { b"n+2\0\r\n\x1a\n" } else { b"ni2\0\r\n\x1a\n" });
    w.put(12, &h.datatype.to_ne_bytes());
    w.put(14, &h.bitpix.to_ne_bytes());
    for k in 0..8 {
        w.put(16 + 8 * k, &h.dim[k].to_ne_bytes());
        w.put(104 + 8 * k, &h.pixdim[k].to_ne_bytes());
    }
    w.put(168, &(h.vox_offset as i64).to_ne_bytes());
    w.put(176, &h.scl_slope.to_ne_bytes());
    w.put(184, &h.scl_inter.to_ne_bytes());
    w.put(192, &h.cal_max.to_ne_bytes());
    w.put(200, &h.cal_min.to_ne_bytes());
    w.put(216, &h.toffset.to_ne_bytes());
    w.text(240, 80, &h.descrip);
    w.put(344, &h.qform_code.to_ne_bytes());
    w.put(348, &h.sform_code.to_ne_bytes());
    for k in 0..3 {
        w.put(352 + 8 * k, &h.quatern[k].to_ne_bytes());
        w.put(376 + 8 * k, &h.qoffset[k].to_ne_bytes());
    }
    for r in 0..3 {
        for c in 0..4 {
            w.put(400 + 32 * r + 8 * c, &h.srow[r][c].to_ne_bytes());
        }
    }
    w.put(500, &(h.xyzt_units as i32).to_ne_bytes());
    w.put(504, &h.intent_code.to_ne_bytes());
    w.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(version: Version) -> Header {
        Header {
            version,
            order: ByteOrder::NATIVE,
            dim: [3, 4, 5, 6, 1, 1, 1, 1],
            datatype: 4,
            bitpix: 16,
            pixdim: [-1.0, 0.5, 0.75, 2.5, 1.0, 1.0, 1.0, 1.0],
            vox_offset: 352.0,
            scl_slope: 2.0,
            scl_inter: -1.0,
            cal_min: 0.0,
            cal_max: 100.0,
            toffset: 0.0,
            xyzt_units: 10,
            intent_code: 0,
            descrip: "unit test".into(),
            qform_code: 1,
            sform_code: 2,
            quatern: [0.0, 0.0, 1.0],
            qoffset: [1.0, 2.0, 3.0],
            srow: [[-0.5, 0.0, 0.0, 1.0], [0.0, -0.75, 0.0, 2.0], [0.0, 0.0, 2.5, 3.0]],
            single_file: true,
        }
    }

    #[test]
    fn round_trip_both_versions() {
        for v in [Version::Nifti1, Version::Nifti2] {
            let h = sample(v);
            let bytes = serialize(&h);
            assert_eq!(bytes.len(), v.header_size());
            assert_eq!(parse(&bytes).unwrap(), h);
        }
    }

    #[test]
    fn byte_swapped_header_is_read() {
        let h = sample(Version::Nifti1);
        let mut bytes = serialize(&h);
        // Swap every multi-byte field by hand for a few fields and the sizeof_hdr.
        bytes[0..4].reverse();
        for k in 0..8 {
            bytes[40 + 2 * k..42 + 2 * k].reverse();
        }
        let (_, order) = sniff(&bytes).unwrap();
        assert_ne!(order, ByteOrder::NATIVE);
        assert_eq!(parse(&bytes).unwrap().dim, h.dim);
    }

    #[test]
    fn rejects_non_nifti() {
        assert_eq!(parse(&[0u8; 3]), Err(HeaderError::TooShort(3)));
        let full = serialize(&sample(Version::Nifti1));
        assert_eq!(parse(&full[..100]), Err(HeaderError::TooShort(100)));
        assert_eq!(parse(&[7u8; 600]), Err(HeaderError::NotNifti));
        let mut analyze = serialize(&sample(Version::Nifti1));
        analyze[344..348].copy_from_slice(&[0; 4]);
        assert_eq!(parse(&analyze), Err(HeaderError::Analyze));
    }
}

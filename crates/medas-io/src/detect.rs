use crate::{IoError, Result};
use std::io::Read;
use std::path::Path;

/// The file formats MEDAS reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// NIfTI-1/NIfTI-2 (`.nii`, `.nii.gz`, `.hdr`/`.img`), also plain Analyze 7.5.
    Nifti,
    /// One DICOM file (possibly multi-frame).
    Dicom,
    /// A folder of DICOM files forming one or more series.
    DicomSeries,
    /// MetaImage (`.mha`, `.mhd` + raw).
    MetaImage,
    /// NRRD (`.nrrd`, `.nhdr` + raw).
    Nrrd,
    Npy,
    Npz,
    Png,
    Jpeg,
    Tiff,
    /// A folder of PNG files, one slice each, sorted by name.
    PngStack,
    /// A pyramidal whole-slide image (Aperio `.svs`, tiled pyramidal TIFF).
    WholeSlide,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Nifti => "nifti",
            Format::Dicom => "dicom",
            Format::DicomSeries => "dicom-series",
            Format::MetaImage => "metaimage",
            Format::Nrrd => "nrrd",
            Format::Npy => "npy",
            Format::Npz => "npz",
            Format::Png => "png",
            Format::Jpeg => "jpeg",
            Format::Tiff => "tiff",
            Format::PngStack => "png-stack",
            Format::WholeSlide => "whole-slide",
        }
    }

    pub fn parse(name: &str) -> Option<Format> {
        ALL.iter().copied().find(|f| f.name() == name.to_ascii_lowercase())
    }
}

const ALL: [Format; 12] = [
    Format::Nifti,
    Format::Dicom,
    Format::DicomSeries,
    Format::MetaImage,
    Format::Nrrd,
    Format::Npy,
    Format::Npz,
    Format::Png,
    Format::Jpeg,
    Format::Tiff,
    Format::PngStack,
    Format::WholeSlide,
];

/// Lower-cased file name, used for extension checks (`.nii.gz` has two dots).
fn lower_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().to_ascii_lowercase()).unwrap_or_default()
}

fn by_extension(name: &str) -> Option<Format> {
    let ends = |s: &str| name.ends_with(s);
    Some(if ends(".nii") || ends(".nii.gz") || ends(".hdr") || ends(".img") || ends(".hdr.gz") || ends(".img.gz") {
        Format::Nifti
    } else if ends(".dcm") || ends(".dicom") || ends(".ima") {
        Format::Dicom
    } else if ends(".mha") || ends(".mhd") {
        Format::MetaImage
    } else if ends(".nrrd") || ends(".nhdr") {
        Format::Nrrd
    } else if ends(".npy") {
        Format::Npy
    } else if ends(".npz") {
        Format::Npz
    } else if ends(".png") {
        Format::Png
    } else if ends(".jpg") || ends(".jpeg") {
        Format::Jpeg
    } else if ends(".svs") {
        Format::WholeSlide
    } else if ends(".tif") || ends(".tiff") {
        Format::Tiff
    } else {
        return None;
    })
}

/// Tells the format of an existing file or folder, from its first bytes first and its
/// extension second (so a mis-named file is still read correctly).
pub fn detect(path: &Path) -> Result<Format> {
    let meta = std::fs::metadata(path).map_err(|e| IoError::io(path, e))?;
    if meta.is_dir() {
        return detect_folder(path);
    }
    let mut head = Vec::with_capacity(560);
    std::fs::File::open(path)
        .and_then(|f| f.take(560).read_to_end(&mut head))
        .map_err(|e| IoError::io(path, e))?;
    let name = lower_name(path);
    if let Some(format) = by_magic(&head, &name) {
        return Ok(format);
    }
    by_extension(&name).ok_or_else(|| IoError::UnknownFormat { path: path.to_path_buf() })
}

fn by_magic(head: &[u8], name: &str) -> Option<Format> {
    let at = |offset: usize, magic: &[u8]| head.len() >= offset + magic.len() && &head[offset..offset + magic.len()] == magic;
    if at(128, b"DICM") {
        return Some(Format::Dicom);
    }
    if at(0, b"NRRD000") {
        return Some(Format::Nrrd);
    }
    if at(0, b"\x93NUMPY") {
        return Some(Format::Npy);
    }
    if at(0, b"PK\x03\x04") && name.ends_with(".npz") {
        return Some(Format::Npz);
    }
    if at(0, b"\x89PNG\r\n\x1a\n") {
        return Some(Format::Png);
    }
    if at(0, &[0xff, 0xd8, 0xff]) {
        return Some(Format::Jpeg);
    }
    if at(0, b"II*\0") || at(0, b"MM\0*") || at(0, b"II+\0") || at(0, b"MM\0+") {
        return Some(if name.ends_with(".svs") { Format::WholeSlide } else { Format::Tiff });
    }
    if at(344, b"n+1\0") || at(344, b"ni1\0") || at(4, b"n+2\0") || at(4, b"ni2\0") {
        return Some(Format::Nifti);
    }
    if at(0, &[0x1f, 0x8b]) {
        // Compressed: trust the extension (.nii.gz, .hdr.gz, ...).
        return by_extension(name);
    }
    let text = String::from_utf8_lossy(&head[..head.len().min(256)]);
    let first = text.trim_start();
    let metaimage_keys = ["ObjectType", "NDims", "ObjectSubType", "Comment", "TransformType"];
    if metaimage_keys.iter().any(|k| first.starts_with(k)) && text.contains('=') {
        return Some(Format::MetaImage);
    }
    // Analyze/NIfTI header without a magic string: sizeof_hdr = 348 in either byte order.
    if (at(0, &348i32.to_le_bytes()) || at(0, &348i32.to_be_bytes())) && (name.ends_with(".hdr") || name.ends_with(".img")) {
        return Some(Format::Nifti);
    }
    None
}

fn detect_folder(path: &Path) -> Result<Format> {
    let entries = std::fs::read_dir(path).map_err(|e| IoError::io(path, e))?;
    let mut pngs = 0usize;
    let mut others = 0usize;
    for entry in entries.flatten().take(4096) {
        let file = entry.path();
        if !file.is_file() {
            continue;
        }
        let name = lower_name(&file);
        if name.ends_with(".png") {
            pngs += 1;
            continue;
        }
        if matches!(detect(&file), Ok(Format::Dicom)) {
            return Ok(Format::DicomSeries);
        }
        others += 1;
    }
    if pngs > 0 {
        return Ok(Format::PngStack);
    }
    let _ = others;
    Err(IoError::UnknownFormat { path: path.to_path_buf() })
}

/// The format to write for an output path: by extension; a folder (existing, or a path ending
/// in `/` or without an extension) becomes a DICOM series.
pub fn format_for_output(path: &Path) -> Result<Format> {
    let name = lower_name(path);
    if let Some(format) = by_extension(&name) {
        return Ok(format);
    }
    let text = path.to_string_lossy();
    if path.is_dir() || text.ends_with('/') || !name.contains('.') {
        return Ok(Format::DicomSeries);
    }
    Err(IoError::UnknownFormat { path: path.to_path_buf() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_beats_extension() {
        let mut dicom = vec![0u8; 132];
        dicom[128..132].copy_from_slice(b"DICM");
        assert_eq!(by_magic(&dicom, "scan.png"), Some(Format::Dicom));
        assert_eq!(by_magic(b"NRRD0004\n", "x.bin"), Some(Format::Nrrd));
        assert_eq!(by_magic(b"ObjectType = Image\nNDims = 3\n", "x"), Some(Format::MetaImage));
        assert_eq!(by_magic(&[0x1f, 0x8b, 8, 0], "brain.nii.gz"), Some(Format::Nifti));
        assert_eq!(by_magic(b"random bytes", "x"), None);
    }

    #[test]
    fn output_format_from_path() {
        assert_eq!(format_for_output(Path::new("out/ct.nii.gz")).unwrap(), Format::Nifti);
        assert_eq!(format_for_output(Path::new("out/ct.MHA")).unwrap(), Format::MetaImage);
        assert_eq!(format_for_output(Path::new("out/series/")).unwrap(), Format::DicomSeries);
        assert!(format_for_output(Path::new("out/ct.xyz")).is_err());
    }
}

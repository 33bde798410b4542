//! MetaImage reader and writer against SimpleITK (the reader of record) on real data.
//!
//! Tolerances: voxels exact, geometry 1e-5 relative (floor 1 mm / 1 unit), as in
//! `medas_testkit::assert_geometry`.

use medas_io::{IoError, metaimage};
use medas_testkit::{expect_error, mutate_and_parse, python, assert_geometry, assert_voxels, reference};
use std::path::Path;

const GEOMETRY_TOLERANCE: f64 = 1e-5;

fn check_against_sitk(path: &Path) {
    let image = metaimage::read(path).unwrap_or_else(|e| panic!("{e}"));
    let r = reference("sitk", path, &[]);
    assert_voxels(&image, &r, 0.0);
    assert_geometry(&image, &r, GEOMETRY_TOLERANCE);
    assert_eq!(image.components() as u64, r.meta["components"].as_u64().unwrap(), "{}", path.display());
    assert_eq!(image.scalar_type().name(), r.dtype(), "{}", path.display());
}

#[test]
fn our_writer_is_read_by_simpleitk_and_by_us() {
    let Some(path) = medas_testkit::file("pyradiomics/lung1_image.nrrd") else { return };
    let lung = medas_io::read(&path).unwrap();
    let root = medas_testkit::scratch_dir("mha-writer");
    let cases = [("z/lung.mha", true), ("raw/lung.mha", false), ("zraw/lung.mhd", true), ("rawfile/lung.mhd", false)];
    for (name, compress) in cases {
        let out = root.join(name);
        std::fs::create_dir_all(out.parent().unwrap()).unwrap();
        metaimage::write_with(&lung, &out, &metaimage::WriteOptions { compress }).unwrap();
        check_against_sitk(&out);
        let back = medas_io::read(&out).unwrap();
        assert_eq!(back.voxels(), lung.voxels(), "{name}");
        assert!(back.geometry().approx_eq(lung.geometry(), 1e-12), "{name}");
    }
    // The default writer compresses, and a .mhd gets a .zraw beside it.
    let out = root.join("default/lung.mhd");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    medas_io::write(&lung, &out).unwrap();
    assert!(root.join("default/lung.zraw").exists());
    assert_eq!(metaimage::data_files(&out).unwrap(), vec![root.join("default/lung.zraw")]);
}

/// Files written by SimpleITK, and hand-written headers for what SimpleITK cannot write
/// (big-endian data, slice lists, patterns, HeaderSize, aliases); all read by SimpleITK too.
const MAKE_FILES: &str = r#"
import sys, os, zlib, numpy as np, SimpleITK as sitk
d, lung_path = sys.argv[1], sys.argv[2]
def sub(name):
    os.makedirs(os.path.join(d, name), exist_ok=True); return os.path.join(d, name)
lung = sitk.ReadImage(lung_path)[200:300, 220:300, 10:22]
a, b = 0.4, 0.25
rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
lung.SetDirection((rz @ rx).flatten().tolist()); lung.SetOrigin([-120.5, 33.25, -400.0])
sitk.WriteImage(lung, sub("oblique") + "/ct.mha")
sitk.WriteImage(lung, sub("oblique-z") + "/ct.mha", useCompression=True)
sitk.WriteImage(lung, sub("oblique-zraw") + "/ct.mhd", useCompression=True)
sitk.WriteImage(lung, sub("oblique-raw") + "/ct.mhd")
for t, name in [(sitk.sitkFloat64, "f64"), (sitk.sitkUInt16, "u16"), (sitk.sitkInt8, "i8"), (sitk.sitkUInt64, "u64")]:
    sitk.WriteImage(sitk.Cast(lung, t), sub(name) + "/ct.mha", useCompression=True)
rgb = sitk.GetImageFromArray(np.arange(5*7*3, dtype=np.uint8).reshape(5, 7, 3), isVector=True)
rgb.SetSpacing([0.3, 0.4]); rgb.SetOrigin([-2, 7]); rgb.SetDirection([0, -1, 1, 0])
sitk.WriteImage(rgb, sub("rgb2d") + "/rgb.mha")
f4 = sitk.GetImageFromArray(np.random.default_rng(2).normal(size=(3, 4, 5, 6)).astype(np.float32))
f4.SetSpacing([1, 2, 3, 4]); f4.SetOrigin([1, 2, 3, 4])
sitk.WriteImage(f4, sub("f4d") + "/f4.mha", useCompression=True)
arr = np.arange(4 * 3 * 2, dtype=np.int16).reshape(2, 3, 4) * 37 - 300  # z, y, x
def mha(name, lines, data, fname="h.mha"):
    with open(os.path.join(sub(name), fname), "wb") as f:
        f.write(("".join(k + " = " + v + "\n" for k, v in lines)).encode() + data)
base = [("ObjectType", "Image"), ("NDims", "3"), ("DimSize", "4 3 2"), ("ElementType", "MET_SHORT")]
geo = [("ElementSpacing", "0.5 0.25 4"), ("Offset", "1 2 3"), ("TransformMatrix", "0 1 0 -1 0 0 0 0 1")]
mha("big", base + geo + [("BinaryDataByteOrderMSB", "True"), ("ElementDataFile", "LOCAL")], arr.astype(">i2").tobytes())
z = zlib.compress(arr.astype(">i2").tobytes())  # MetaIO needs CompressedDataSize to inflate LOCAL data
mha("big-z", base + geo + [("ElementByteOrderMSB", "True"), ("CompressedData", "True"), ("CompressedDataSize", str(len(z))), ("ElementDataFile", "LOCAL")], z)
mha("aliases", base + [("ElementSize", "0.5 0.25 4"), ("Position", "1 2 3"), ("Orientation", "0 1 0 -1 0 0 0 0 1"), ("ElementDataFile", "LOCAL")], arr.astype("<i2").tobytes())
mha("header-end", base + geo + [("HeaderSize", "-1"), ("ElementDataFile", "data.raw")], b"", "h.mhd")
open(os.path.join(d, "header-end", "data.raw"), "wb").write(b"some junk" + arr.astype("<i2").tobytes())
mha("header-skip", base + geo + [("HeaderSize", "5"), ("ElementDataFile", "data.raw")], b"", "h.mhd")
open(os.path.join(d, "header-skip", "data.raw"), "wb").write(b"12345" + arr.astype("<i2").tobytes())
for z in range(2):
    open(os.path.join(sub("slices"), "s%02d.raw" % z), "wb").write(arr[z].astype("<i2").tobytes())
mha("slices", base + geo + [("ElementDataFile", "LIST")], b"s00.raw\ns01.raw\n", "list.mhd")
mha("slices", base + geo + [("ElementDataFile", "s%02d.raw 0 1 1")], b"", "pattern.mhd")
"#;

#[test]
fn files_written_by_simpleitk_and_by_hand_match_simpleitk() {
    let Some(lung) = medas_testkit::file("pyradiomics/lung1_image.nrrd") else { return };
    let root = medas_testkit::scratch_dir("mha-sitk-files");
    python(MAKE_FILES, &[&root, &lung]);
    let mut headers = Vec::new();
    for entry in std::fs::read_dir(&root).unwrap() {
        for file in std::fs::read_dir(entry.unwrap().path()).unwrap() {
            let file = file.unwrap().path();
            if file.extension().is_some_and(|e| e == "mha" || e == "mhd") {
                headers.push(file);
            }
        }
    }
    headers.sort();
    assert_eq!(headers.len(), 17, "{headers:?}");
    for header in &headers {
        check_against_sitk(header);
    }
    let rgb = metaimage::read(&root.join("rgb2d/rgb.mha")).unwrap();
    assert_eq!((rgb.size(), rgb.components()), (&[7usize, 5][..], 3));
}

#[test]
fn components_and_4d_survive_our_writer() {
    let Some(lung) = medas_testkit::file("pyradiomics/lung1_image.nrrd") else { return };
    let root = medas_testkit::scratch_dir("mha-writer-shapes");
    python(MAKE_FILES, &[&root, &lung]);
    for source in ["rgb2d/rgb.mha", "f4d/f4.mha", "oblique/ct.mha", "big/h.mha"] {
        let image = metaimage::read(&root.join(source)).unwrap();
        let dir = root.join(format!("ours-{}", source.replace('/', "-")));
        std::fs::create_dir_all(&dir).unwrap();
        for name in ["x.mha", "x.mhd"] {
            metaimage::write(&image, &dir.join(name)).unwrap();
        }
        check_against_sitk(&dir.join("x.mha"));
        check_against_sitk(&dir.join("x.mhd"));
    }
}

#[test]
fn damaged_and_hostile_files_give_errors() {
    let Some(lung) = medas_testkit::file("pyradiomics/lung1_image.nrrd") else { return };
    let image = medas_io::read(&lung).unwrap();
    let dir = medas_testkit::scratch_dir("mha-negative");
    for compress in [true, false] {
        let whole = dir.join("whole.mha");
        metaimage::write_with(&image, &whole, &metaimage::WriteOptions { compress }).unwrap();
        let bytes = std::fs::read(&whole).unwrap();
        let cut = dir.join("cut.mha");
        std::fs::write(&cut, &bytes[..bytes.len() - 1000]).unwrap();
        let e = expect_error(metaimage::read(&cut), "truncated");
        assert!(e.to_string().contains("cut.mha"), "error names the file: {e}");
    }
    let p = Path::new("h.mha");
    let huge = b"NDims = 3\nDimSize = 100000 100000 100000\nElementType = MET_DOUBLE\nCompressedData = True\nElementDataFile = LOCAL\nx\x9c";
    expect_error(metaimage::read_bytes(huge, p), "huge");
    let overflow =
        b"NDims = 4\nDimSize = 4294967296 4294967296 4294967296 9\nElementType = MET_DOUBLE\nElementDataFile = LOCAL\n";
    expect_error(metaimage::read_bytes(overflow, p), "overflow");
    let bad = b"NDims = 2\nDimSize = 2 2\nElementType = MET_FLOAT_MATRIX\nElementDataFile = LOCAL\n0000000000000000";
    assert!(matches!(expect_error(metaimage::read_bytes(bad, p), "type"), IoError::Unsupported { .. }));
    expect_error(
        metaimage::read_bytes(b"NDims = 9\nDimSize = 2\nElementType = MET_UCHAR\nElementDataFile = LOCAL\n", p),
        "ndims",
    );
    // Data files outside the header's folder are refused, even when they exist.
    let secret = dir.join("secret.raw");
    std::fs::write(&secret, [0u8; 4]).unwrap();
    let inner = dir.join("inner");
    std::fs::create_dir_all(&inner).unwrap();
    let head = "NDims = 2\nDimSize = 2 2\nElementType = MET_UCHAR\n";
    let cases = [
        "ElementDataFile = ../secret.raw\n".to_string(),
        format!("ElementDataFile = {}\n", secret.display()),
        "ElementDataFile = LIST\nok.raw\n../secret.raw\n".to_string(),
        "ElementDataFile = ../secre%01d.raw 0 1 1\n".to_string(),
    ];
    std::fs::write(inner.join("ok.raw"), [0u8; 2]).unwrap();
    for case in cases {
        let header = inner.join("escape.mhd");
        std::fs::write(&header, format!("{head}{case}")).unwrap();
        let e = expect_error(metaimage::read(&header), &case);
        assert!(e.to_string().contains("outside"), "{e}");
    }
    let e = expect_error(metaimage::read_bytes(format!("{head}ElementDataFile = x.raw\n").as_bytes(), p), "bytes");
    assert!(e.to_string().contains("separate"), "{e}");
    // Random bytes, and every prefix of a small valid file, never panic.
    let mut state = 0x2545F4914F6CDD1Du64;
    let random: Vec<u8> = (0..4096)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    expect_error(metaimage::read_bytes(&random, p), "random");
    let mut small = format!("{head}CompressedData = True\nElementDataFile = LOCAL\n").into_bytes();
    small.extend(medas_io::raw::zlib(&[5u8; 4]));
    assert!(metaimage::read_bytes(&small, p).is_ok());
    for n in 0..small.len() {
        assert!(metaimage::read_bytes(&small[..n], p).is_err(), "prefix {n}");
    }
    mutate_and_parse(&small, |b| drop(metaimage::read_bytes(b, p)));
    let text = b"NDims = 2\nDimSize = 3 2\nElementSpacing = 0.5 2\nOffset = 1 2\nTransformMatrix = 0 1 1 0\nElementNumberOfChannels = 1\nBinaryData = False\nElementType = MET_FLOAT\nElementDataFile = LOCAL\n1 2 3 4 5 6\n";
    assert!(metaimage::read_bytes(text, p).is_ok());
    mutate_and_parse(text, |b| drop(metaimage::read_bytes(b, p)));
}

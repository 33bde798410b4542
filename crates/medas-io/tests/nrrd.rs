//! NRRD reader and writer against SimpleITK (the reader of record) on real files.
//!
//! Tolerances: voxels exact (integers and floats alike: no arithmetic touches them),
//! geometry 1e-5 relative (floor 1 mm / 1 unit), as in `medas_testkit::assert_geometry`.

use medas_io::{IoError, nrrd};
use medas_testkit::{expect_error, mutate_and_parse, python, assert_geometry, assert_voxels, image_voxels, reference};
use std::path::Path;

const GEOMETRY_TOLERANCE: f64 = 1e-5;

fn check_against_sitk(path: &Path) {
    let image = nrrd::read(path).unwrap_or_else(|e| panic!("{e}"));
    let r = reference("sitk", path, &[]);
    assert_voxels(&image, &r, 0.0);
    assert_geometry(&image, &r, GEOMETRY_TOLERANCE);
    assert_eq!(image.components() as u64, r.meta["components"].as_u64().unwrap(), "{}", path.display());
    assert_eq!(image.scalar_type().name(), r.dtype(), "{}", path.display());
}

#[test]
fn pyradiomics_volumes_match_simpleitk() {
    for name in ["lung1_image.nrrd", "lung1_label.nrrd", "brain1_image.nrrd", "brain1_label.nrrd"] {
        let Some(path) = medas_testkit::file(&format!("pyradiomics/{name}")) else { return };
        let image = nrrd::read(&path).unwrap();
        let r = reference("sitk", &path, &[]);
        assert_voxels(&image, &r, 0.0);
        assert_geometry(&image, &r, GEOMETRY_TOLERANCE);
        assert_eq!(image.scalar_type().name(), r.dtype());
        // Through the dispatcher too (content detection).
        assert_eq!(medas_io::read(&path).unwrap().voxels(), image.voxels());
    }
}

#[test]
fn our_writer_is_read_by_simpleitk_and_by_us() {
    let Some(path) = medas_testkit::file("pyradiomics/lung1_image.nrrd") else { return };
    let lung = nrrd::read(&path).unwrap();
    let root = medas_testkit::scratch_dir("nrrd-writer");
    let cases: [(&str, bool); 4] =
        [("gzip/lung.nrrd", true), ("raw/lung.nrrd", false), ("nhdr/lung.nhdr", true), ("nhdr-raw/lung.nhdr", false)];
    for (name, compress) in cases {
        let out = root.join(name);
        std::fs::create_dir_all(out.parent().unwrap()).unwrap();
        nrrd::write_with(&lung, &out, &nrrd::WriteOptions { compress }).unwrap();
        check_against_sitk(&out);
        let back = nrrd::read(&out).unwrap();
        assert_eq!(back.voxels(), lung.voxels(), "{name}");
        assert!(back.geometry().approx_eq(lung.geometry(), 1e-12), "{name}");
    }
}

#[test]
fn writer_keeps_components_and_2d_4d() {
    let Some(_) = medas_testkit::file("pyradiomics/lung1_image.nrrd") else { return };
    let root = medas_testkit::scratch_dir("nrrd-writer-shapes");
    // SimpleITK writes an RGB 2-D, a 3-component 3-D and a 4-D image; we read each, write it
    // again and SimpleITK must read our copy exactly as the original.
    python(MAKE_SHAPES, &[&root]);
    for name in ["rgb2d.nrrd", "vec3d.nrrd", "f4d.nrrd"] {
        let image = nrrd::read(&root.join(name)).unwrap();
        let dir = root.join(format!("ours-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join(name);
        nrrd::write(&image, &out).unwrap();
        check_against_sitk(&out);
    }
}

const MAKE_SHAPES: &str = r#"
import sys, numpy as np, SimpleITK as sitk
d = sys.argv[1]
rgb = sitk.GetImageFromArray(np.arange(5*7*3, dtype=np.uint8).reshape(5, 7, 3), isVector=True)
rgb.SetSpacing([0.3, 0.4]); rgb.SetOrigin([-2, 7])
sitk.WriteImage(rgb, d + "/rgb2d.nrrd")
vec = sitk.GetImageFromArray(np.random.default_rng(1).normal(size=(4, 5, 6, 3)).astype(np.float32), isVector=True)
vec.SetSpacing([1.5, 0.5, 2.0]); vec.SetOrigin([10, -20, 30])
sitk.WriteImage(vec, d + "/vec3d.nrrd", useCompression=True)
f4 = sitk.GetImageFromArray(np.random.default_rng(2).normal(size=(3, 4, 5, 6)).astype(np.float64))
f4.SetSpacing([1, 2, 3, 4]); f4.SetOrigin([1, 2, 3, 4])
sitk.WriteImage(f4, d + "/f4d.nrrd")
"#;

/// Files written by SimpleITK itself, and hand-written headers exercising the corners of the
/// format; each is read by us and compared with what SimpleITK reads from it.
const MAKE_FILES: &str = r#"
import sys, os, gzip, numpy as np, SimpleITK as sitk
d, lung_path = sys.argv[1], sys.argv[2]
def sub(name):
    os.makedirs(os.path.join(d, name), exist_ok=True); return os.path.join(d, name)
lung = sitk.ReadImage(lung_path)[200:300, 220:300, 10:22]
a, b = 0.4, 0.25
rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
lung.SetDirection((rz @ rx).flatten().tolist()); lung.SetOrigin([-120.5, 33.25, -400.0])
sitk.WriteImage(lung, sub("oblique-gz") + "/ct.nrrd", useCompression=True)
sitk.WriteImage(lung, sub("oblique-raw") + "/ct.nrrd")
sitk.WriteImage(lung, sub("oblique-nhdr") + "/ct.nhdr", useCompression=True)
sitk.WriteImage(sitk.Cast(lung, sitk.sitkFloat32) * 0.5, sub("float") + "/ct.nrrd", useCompression=True)
sitk.WriteImage(sitk.Cast(lung, sitk.sitkUInt8), sub("u8") + "/ct.nrrd")
sitk.WriteImage(sitk.Cast(lung, sitk.sitkInt64), sub("i64") + "/ct.nrrd")
arr = np.arange(4 * 3 * 2, dtype=np.int16).reshape(2, 3, 4) * 37 - 300  # z, y, x
def nrrd(name, fields, data, fname="h.nrrd"):
    with open(os.path.join(sub(name), fname), "wb") as f:
        f.write(("NRRD0004\n# test\n" + "".join(k + ": " + v + "\n" for k, v in fields) + "\n").encode() + data)
base = [("type", "short"), ("dimension", "3"), ("sizes", "4 3 2")]
geo = [("space directions", "(0.6,0.8,0) (-1.6,1.2,0) (0,0,3)"), ("space origin", "(1.5,-2,3)")]
nrrd("ras", base + [("space", "right-anterior-superior")] + geo + [("endian", "little"), ("encoding", "raw")], arr.astype("<i2").tobytes())
nrrd("las", base + [("space", "LAS")] + geo + [("endian", "little"), ("encoding", "raw")], arr.astype("<i2").tobytes())
nrrd("big", [("type", "int16_t"), ("dimension", "3"), ("sizes", "4 3 2"), ("space", "left-posterior-superior")] + geo + [("endian", "big"), ("encoding", "gzip")], gzip.compress(arr.astype(">i2").tobytes()))
nrrd("text", [("type", "signed short int"), ("dimension", "3"), ("sizes", "4 3 2"), ("spacings", "0.5 0.25 4"), ("encoding", "ascii")], " ".join(map(str, arr.flatten())).encode() + b"\n")
nrrd("mins", base + [("spacings", "0.5 0.25 4"), ("axis mins", "10 20 30"), ("endian", "little"), ("encoding", "raw")], arr.astype("<i2").tobytes())
nrrd("list-mid", [("type", "float"), ("dimension", "3"), ("sizes", "4 3 2"), ("kinds", "domain list domain"), ("endian", "little"), ("encoding", "raw")], arr.astype("<f4").tobytes())
nrrd("rgb-first", [("type", "uchar"), ("dimension", "3"), ("sizes", "3 4 2"), ("kinds", "RGB-color space space"), ("space dimension", "2"), ("space directions", "none (0.5,0) (0,0.7)"), ("space origin", "(3,4)"), ("encoding", "raw")], (arr.flatten() % 256).astype(np.uint8).tobytes())
nrrd("skip-end", base + [("endian", "little"), ("encoding", "raw"), ("byte skip", "-1")], b"padding!" + arr.astype("<i2").tobytes())
nrrd("line-skip", base + [("endian", "little"), ("encoding", "raw"), ("line skip", "2"), ("byte skip", "3")], b"one\ntwo\nabc" + arr.astype("<i2").tobytes())
x = sub("detached")
for z in range(2):
    open(os.path.join(x, "slice%03d.raw" % (z + 1)), "wb").write(arr[z].astype("<i2").tobytes())
nrrd("detached", base + [("endian", "little"), ("encoding", "raw"), ("data file", "slice%03d.raw 1 2 1 2")], b"", "pattern.nhdr")
with open(os.path.join(x, "list.nhdr"), "w") as f:
    f.write("NRRD0004\ntype: short\ndimension: 3\nsizes: 4 3 2\nendian: little\nencoding: raw\ndata file: LIST 2\nslice001.raw\nslice002.raw\n")
"#;

#[test]
fn files_written_by_simpleitk_and_by_hand_match_simpleitk() {
    let Some(lung) = medas_testkit::file("pyradiomics/lung1_image.nrrd") else { return };
    let root = medas_testkit::scratch_dir("nrrd-sitk-files");
    python(MAKE_FILES, &[&root, &lung]);
    let mut headers = Vec::new();
    for entry in std::fs::read_dir(&root).unwrap() {
        for file in std::fs::read_dir(entry.unwrap().path()).unwrap() {
            let file = file.unwrap().path();
            if file.extension().is_some_and(|e| e == "nrrd" || e == "nhdr") {
                headers.push(file);
            }
        }
    }
    headers.sort();
    assert_eq!(headers.len(), 17, "{headers:?}");
    for header in &headers {
        check_against_sitk(header);
    }
}

#[test]
fn rgb_and_list_axes_become_components() {
    let Some(lung) = medas_testkit::file("pyradiomics/lung1_image.nrrd") else { return };
    let root = medas_testkit::scratch_dir("nrrd-components");
    python(MAKE_FILES, &[&root, &lung]);
    let rgb = nrrd::read(&root.join("rgb-first/h.nrrd")).unwrap();
    assert_eq!((rgb.size(), rgb.components()), (&[4usize, 2][..], 3));
    let list = nrrd::read(&root.join("list-mid/h.nrrd")).unwrap();
    assert_eq!((list.size(), list.components()), (&[4usize, 2][..], 3));
}

#[test]
fn damaged_and_hostile_files_give_errors() {
    let Some(lung) = medas_testkit::file("pyradiomics/lung1_image.nrrd") else { return };
    let bytes = std::fs::read(&lung).unwrap();
    let dir = medas_testkit::scratch_dir("nrrd-negative");
    // Truncated gzip stream.
    let cut = dir.join("cut.nrrd");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = expect_error(nrrd::read(&cut), "truncated");
    assert!(e.to_string().contains("cut.nrrd"), "error names the file: {e}");
    // Truncated raw data.
    let raw = b"NRRD0004\ntype: short\ndimension: 2\nsizes: 10 10\nencoding: raw\n\n\x01\x02";
    expect_error(nrrd::read_bytes(raw, Path::new("raw.nrrd")), "truncated raw");
    // A header claiming 10^15 voxels must not allocate them.
    let huge = b"NRRD0004\ntype: double\ndimension: 3\nsizes: 100000 100000 100000\nencoding: gzip\n\n\x1f\x8b\x08\x00";
    expect_error(nrrd::read_bytes(huge, Path::new("huge.nrrd")), "huge");
    let overflow =
        b"NRRD0004\ntype: double\ndimension: 4\nsizes: 4294967296 4294967296 4294967296 9\nencoding: raw\n\n";
    expect_error(nrrd::read_bytes(overflow, Path::new("overflow.nrrd")), "overflow");
    let bad_type = b"NRRD0004\ntype: quaternion\ndimension: 1\nsizes: 2\nencoding: raw\n\n\x01\x02";
    assert!(matches!(
        expect_error(nrrd::read_bytes(bad_type, Path::new("t.nrrd")), "type"),
        IoError::Unsupported { .. }
    ));
    let bz = b"NRRD0004\ntype: uchar\ndimension: 1\nsizes: 2\nencoding: bzip2\n\nBZh9";
    let e = expect_error(nrrd::read_bytes(bz, Path::new("bz.nrrd")), "bzip2");
    assert!(e.to_string().contains("bzip2"), "{e}");
    // Detached data files outside the header's folder are refused, even when they exist.
    let secret = dir.join("secret.raw");
    std::fs::write(&secret, [0u8; 4]).unwrap();
    let inner = dir.join("inner");
    std::fs::create_dir_all(&inner).unwrap();
    for target in ["../secret.raw", secret.to_str().unwrap(), "sub/../../secret.raw"] {
        let header = inner.join("escape.nhdr");
        let text = format!("NRRD0004\ntype: uchar\ndimension: 1\nsizes: 4\nencoding: raw\ndata file: {target}\n");
        std::fs::write(&header, text).unwrap();
        let e = expect_error(nrrd::read(&header), target);
        assert!(e.to_string().contains("outside"), "{e}");
    }
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(&secret, inner.join("link.raw")).unwrap();
        let header = inner.join("link.nhdr");
        std::fs::write(&header, "NRRD0004\ntype: uchar\ndimension: 1\nsizes: 4\nencoding: raw\ndata file: link.raw\n")
            .unwrap();
        expect_error(nrrd::read(&header), "symlink out of the folder");
    }
    // A detached header given as bytes says the data is elsewhere.
    let e = expect_error(
        nrrd::read_bytes(b"NRRD0004\ntype: uchar\ndimension: 1\nsizes: 4\ndata file: x.raw\n", Path::new("x.nhdr")),
        "bytes",
    );
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
    expect_error(nrrd::read_bytes(&random, Path::new("random.nrrd")), "random");
    let mut small = b"NRRD0004\ntype: short\ndimension: 2\nsizes: 3 2\nendian: big\nencoding: gzip\n\n".to_vec();
    small.extend(medas_io::raw::gzip(&[1u8; 12]));
    assert!(nrrd::read_bytes(&small, Path::new("ok.nrrd")).is_ok());
    for n in 0..small.len() {
        assert!(nrrd::read_bytes(&small[..n], Path::new("prefix.nrrd")).is_err(), "prefix {n}");
    }
    mutate_and_parse(&small, |b| drop(nrrd::read_bytes(b, Path::new("mutant.nrrd"))));
    let text = b"NRRD0004\ntype: float\ndimension: 3\nsizes: 3 2 1\nkinds: vector domain domain\nspace dimension: 2\nspace directions: none (1,0.5) (0,2)\nspace origin: (1,2)\nencoding: ascii\n\n1 2 3 4 5 6\n";
    assert!(nrrd::read_bytes(text, Path::new("ok.nrrd")).is_ok());
    mutate_and_parse(text, |b| drop(nrrd::read_bytes(b, Path::new("mutant.nrrd"))));
}

#[test]
fn written_header_is_what_slicer_expects() {
    let Some(path) = medas_testkit::file("pyradiomics/brain1_label.nrrd") else { return };
    let image = nrrd::read(&path).unwrap();
    let out = medas_testkit::scratch_dir("nrrd-header").join("label.nrrd");
    nrrd::write(&image, &out).unwrap();
    let bytes = std::fs::read(&out).unwrap();
    let text = String::from_utf8_lossy(&bytes[..400]);
    for field in ["space: left-posterior-superior", "encoding: gzip", "space origin: (", "kinds: domain domain domain"]
    {
        assert!(text.contains(field), "{field} missing from\n{text}");
    }
    assert_eq!(image_voxels(nrrd::read(&out).unwrap().voxels()), image_voxels(image.voxels()));
}

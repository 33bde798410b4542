//! Content hashes: equal content gives equal hashes whatever the memory layout; any change
//! of voxels, geometry, metadata or type changes them.

use medas_image::{Geometry, Image, Voxels};
use medas_pipeline::data_hash;
use medas_tools::Data;
use ndarray::{ArrayD, IxDyn, ShapeBuilder};

fn image(values: Vec<i16>, fortran: bool) -> Image {
    let shape = IxDyn(&[3, 4, 5]);
    let array = if fortran { ArrayD::from_shape_vec(shape.f(), values) } else { ArrayD::from_shape_vec(shape, values) };
    let geometry = Geometry::new(vec![0.7, 0.7, 2.5], vec![-10.0, 4.0, 3.0], vec![1., 0., 0., 0., 1., 0., 0., 0., 1.]).unwrap();
    Image::new(Voxels::I16(array.unwrap().into_shared()), geometry).unwrap()
}

#[test]
fn hashes_follow_content_not_layout() {
    let values: Vec<i16> = (0..60).collect();
    let fortran = image(values.clone(), true);
    // The same logical image stored in C order.
    let c_order: Vec<i16> = {
        let a = fortran.voxels().as_array::<i16>().unwrap();
        a.as_standard_layout().iter().copied().collect()
    };
    let same = image(c_order, false);
    assert_eq!(fortran, same);
    let hash = data_hash(&Data::Image(fortran.clone()));
    assert_eq!(hash, data_hash(&Data::Image(same)));
    assert_eq!(hash.len(), 64);

    let mut changed_voxel = values.clone();
    changed_voxel[59] += 1;
    assert_ne!(hash, data_hash(&Data::Image(image(changed_voxel, true))));
    let mut moved = fortran.clone();
    let g = moved.geometry().clone();
    moved.set_geometry(Geometry::new(g.spacing().to_vec(), vec![-10.0, 4.0, 3.5], g.direction().to_vec()).unwrap()).unwrap();
    assert_ne!(hash, data_hash(&Data::Image(moved)));
    let mut described = fortran.clone();
    described.metadata.set_text("Modality", "CT");
    assert_ne!(hash, data_hash(&Data::Image(described)));
    assert_ne!(hash, data_hash(&Data::Image(fortran.cast(medas_image::ScalarType::I32))));
    assert_ne!(data_hash(&Data::Scalar(1.0)), data_hash(&Data::Scalar(1.0 + f64::EPSILON)));
}

/// What the cache stores is what comes back, bit for bit: voxels, geometry with awkward
/// floating-point values, metadata, multi-component images.
#[test]
fn stored_artifacts_read_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let angle = 0.3f64;
    let direction = vec![angle.cos(), -angle.sin(), 0.0, angle.sin(), angle.cos(), 0.0, 0.0, 0.0, 1.0];
    let geometry = Geometry::new(vec![0.1 + 0.2, 1.0 / 3.0, 2.5e-7], vec![-123.456789012345, 1e-300, 7.0], direction).unwrap();
    let values: Vec<f32> = (0..60).map(|v| v as f32 / 7.0).collect();
    let mut scalar = Image::new(Voxels::from_fortran_vec(&[3, 4, 5], values).unwrap(), geometry.clone()).unwrap();
    scalar.metadata.set_text("Modality", "MR");
    scalar.metadata.set("windows", serde_json::json!([{"center": 40.5, "width": 400.25}]));
    let rgb: Vec<u8> = (0..36).map(|v| (v * 7 % 256) as u8).collect();
    let colour = Image::with_components(Voxels::from_interleaved_vec(&[3, 4], 3, rgb).unwrap(), 3, Geometry::identity(2)).unwrap();
    for (port, image) in [("scalar", scalar), ("colour", colour)] {
        let data = Data::Image(image.clone());
        let record = medas_pipeline::write_artifact(dir.path(), port, &data, data_hash(&data)).unwrap();
        let Data::Image(back) = medas_pipeline::read_artifact(dir.path(), &record).unwrap() else { panic!("an image") };
        assert_eq!(back, image, "{port}");
        assert_eq!(data_hash(&Data::Image(back)), record.hash, "{port}");
    }
    let missing = medas_pipeline::ArtifactRecord { kind: "image".into(), hash: String::new(), file: Some("gone.mha".into()), path: None, value: None, members: Vec::new() };
    let error = medas_pipeline::read_artifact(dir.path(), &missing).unwrap_err().to_string();
    assert!(error.contains("gone.mha"), "{error}");
}

/// Image sets (names, order, each member's geometry) and tables (number and text columns,
/// NaN) come back from the store as they went in, and hash the same.
#[test]
fn image_sets_and_tables_round_trip_through_the_store() {
    use medas_tools::{Column, NamedImage, Table};
    let dir = tempfile::tempdir().unwrap();
    let member = |name: &str, x0: f64, value: u8| {
        let geometry = Geometry::new(vec![0.25, 0.25], vec![x0, 0.5], vec![1.0, 0.0, 0.0, 1.0]).unwrap();
        let voxels = Voxels::from_interleaved_vec(&[2, 3], 3, vec![value; 18]).unwrap();
        NamedImage { name: name.into(), image: Image::with_components(voxels, 3, geometry).unwrap() }
    };
    let set = Data::ImageSet(vec![member("tile_b", 1.0 / 3.0, 7), member("tile_a", 0.0, 9)]);
    let record = medas_pipeline::write_artifact(dir.path(), "tiles", &set, data_hash(&set)).unwrap();
    assert_eq!(record.stored_files().len(), 5, "{:?}", record.stored_files());
    let Data::ImageSet(back) = medas_pipeline::read_artifact(dir.path(), &record).unwrap() else { panic!("an image set") };
    let Data::ImageSet(sent) = &set else { unreachable!() };
    assert_eq!(back.iter().map(|m| &m.name).collect::<Vec<_>>(), ["tile_b", "tile_a"]);
    for (a, b) in back.iter().zip(sent) {
        assert_eq!(a.image, b.image, "{}", a.name);
    }
    assert_eq!(data_hash(&Data::ImageSet(back)), record.hash);

    let table = Table::new()
        .with_numbers("x", vec![0.1 + 0.2, f64::NAN, -3.0])
        .and_then(|t| t.with_column("name", Column::Text(vec!["a".into(), "b,c".into(), String::new()])))
        .unwrap();
    let data = Data::Table(table.clone());
    let record = medas_pipeline::write_artifact(dir.path(), "coordinates", &data, data_hash(&data)).unwrap();
    let Data::Table(back) = medas_pipeline::read_artifact(dir.path(), &record).unwrap() else { panic!("a table") };
    assert_eq!(back.column("name"), table.column("name"));
    let x = back.numbers("x").unwrap();
    assert_eq!((x[0], x[2]), (0.1 + 0.2, -3.0));
    assert!(x[1].is_nan());
    assert_eq!(data_hash(&Data::Table(back)), record.hash);
    assert_ne!(data_hash(&Data::Table(table.with_numbers("y", vec![0.0; 3]).unwrap())), record.hash);
}

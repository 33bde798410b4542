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
    let missing = medas_pipeline::ArtifactRecord { kind: "image".into(), hash: String::new(), file: Some("gone.mha".into()), path: None, value: None };
    let error = medas_pipeline::read_artifact(dir.path(), &missing).unwrap_err().to_string();
    assert!(error.contains("gone.mha"), "{error}");
}

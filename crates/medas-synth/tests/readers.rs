//! The files read the same in the readers of record: SimpleITK for NIfTI and MetaImage
//! (voxels exactly, geometry to 1e-5 relative), tifffile for the tiles and masks (voxels
//! exactly). This is what makes the geometry written trustworthy for any importer.

mod support;

use medas_synth::Kind;
use medas_testkit::{assert_geometry, assert_voxels, reference};
use support::{generated, read};

fn compare(folder: &std::path::Path, relative: &str, reader: &str) {
    let ours = read(folder, relative);
    let theirs = reference(reader, &folder.join(relative), &[]);
    assert_voxels(&ours, &theirs, 0.0);
    if reader == "sitk" {
        assert_geometry(&ours, &theirs, 1e-5);
    }
    eprintln!("{relative}: voxels identical to {reader}; spacing {:?}, origin {:?}", ours.geometry().spacing(), ours.geometry().origin());
}

#[test]
fn volumes_and_tiles_read_the_same_in_simpleitk_and_tifffile() {
    if !medas_testkit::ensure_data() {
        return;
    }
    let (liver, _) = generated(Kind::Liver, 1, 2, 64);
    compare(liver.path(), "imagesTr/liver_000_0000.nii.gz", "sitk");
    compare(liver.path(), "labelsTr/liver_000.nii.gz", "sitk");
    let (nodules, summary) = generated(Kind::LungNodules, 1, 2, 64);
    for file in summary.files.iter().filter(|f| f.extension().is_some_and(|e| e == "mhd")) {
        compare(nodules.path(), file.to_str().unwrap(), "sitk");
    }
    let (brain, _) = generated(Kind::BrainClasses, 1, 2, 64);
    compare(brain.path(), "images/brain_000.nii.gz", "sitk");
    let direction = read(brain.path(), "images/brain_000.nii.gz").geometry().direction().to_vec();
    assert!((0..3).any(|r| (direction[r * 4] - 1.0).abs() > 1e-4), "brain scans are oblique: {direction:?}");
    let (nuclei, _) = generated(Kind::Nuclei, 1, 2, 64);
    compare(nuclei.path(), "Tissue Images/nuclei_000.tif", "tifffile");
    compare(nuclei.path(), "Masks/nuclei_000.tif", "tifffile");
}

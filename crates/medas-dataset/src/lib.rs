//! Datasets for MEDAS: cases (images per channel, label, class, patient, table row), importers
//! for the folder layouts researchers have (MSD, nnU-Net v2 raw, LUNA16, MoNuSeg, CSV manifest,
//! DICOM study folders, generic pairs; auto-detected), immutable versions whose manifests carry a blake3 hash per
//! file, seeded, reproducible splits saved with a version, and an nnU-Net-style fingerprint.
//!
//! ```text
//! folder ──import──► Dataset (paths) ──store::register──► {data}/datasets/NAME/vN/manifest.json
//!                                                          └─split::save──► vN/splits/S.json
//! ```

pub mod error;
pub mod fingerprint;
pub mod hash;
pub mod import;
pub mod model;
pub mod split;
pub mod store;

pub use error::{DatasetError, Result};
pub use import::{SeriesPick, detect, import, import_with};
pub use model::{Case, Dataset, Imported, LabelName, Layout, Subset};
pub use store::{Manifest, Registered, data_dir, register};

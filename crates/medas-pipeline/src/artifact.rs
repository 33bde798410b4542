//! Node outputs on disk and their content hashes. An image is stored as an uncompressed
//! MetaImage (`.mha`, opens in 3D Slicer and ITK-SNAP) with a JSON sidecar holding its exact
//! geometry and metadata; a scalar lives in the record itself; a file is copied. An image set
//! is one such image per member (`PORT.00000.mha`, ...) and a manifest of the members' names
//! (`PORT.set.json`); a table is its JSON form (`PORT.table.json`).

use medas_image::{Geometry, Image, Metadata};
use medas_io::raw::{ByteOrder, for_each_block};
use medas_tools::{Data, NamedImage, Table};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What is known of one output without loading it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArtifactRecord {
    /// `image`, `scalar`, `file`, `image_set` or `table`.
    pub kind: String,
    /// Content hash (BLAKE3, hex).
    pub hash: String,
    /// The stored file, relative to the folder holding the record (absent for scalars and
    /// for files a tool wrote outside the store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// A file written by a tool (e.g. `io.write_image`) at its own path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// The members' image files of an image set, in order (their names are in `file`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<String>,
}

impl ArtifactRecord {
    /// The files that make up the artifact inside its folder.
    pub fn stored_files(&self) -> Vec<String> {
        match (&self.file, self.kind.as_str()) {
            (Some(file), "image") => vec![file.clone(), sidecar_name(file)],
            (Some(file), "image_set") => {
                std::iter::once(file.clone()).chain(self.members.iter().flat_map(|m| [m.clone(), sidecar_name(m)])).collect()
            }
            (Some(file), _) => vec![file.clone()],
            (None, _) => Vec::new(),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Sidecar {
    geometry: Geometry,
    metadata: Metadata,
}

fn sidecar_name(file: &str) -> String {
    format!("{}.json", file.trim_end_matches(".mha"))
}

#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("cannot store {}: {source}", .path.display())]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot store {}: {source}", .path.display())]
    Image { path: PathBuf, source: medas_io::IoError },
    #[error("stored output {} is unreadable: {reason}", .path.display())]
    Read { path: PathBuf, reason: String },
}

/// The content hash of a value: voxels in file order plus type, shape, geometry and metadata
/// for images; the bit pattern for scalars; a fingerprint (size, modification time) for files.
pub fn data_hash(data: &Data) -> String {
    let mut hasher = blake3::Hasher::new();
    match data {
        Data::Image(image) => hash_image(&mut hasher, image),
        Data::ImageSet(members) => {
            hasher.update(b"image_set\0");
            for member in members {
                hasher.update(member.name.as_bytes()).update(b"\0");
                hash_image(&mut hasher, &member.image);
            }
        }
        Data::Table(table) => {
            hasher.update(b"table\0").update(table.to_json().to_string().as_bytes());
        }
        Data::Scalar(value) => {
            hasher.update(b"scalar\0").update(&value.to_bits().to_le_bytes());
        }
        Data::File(path) => {
            hasher.update(b"file\0").update(fingerprint(path).as_bytes());
        }
    }
    hasher.finalize().to_hex().to_string()
}

fn hash_image(hasher: &mut blake3::Hasher, image: &Image) {
    let header = serde_json::json!({
        "type": image.scalar_type().name(),
        "shape": image.voxels().shape(),
        "components": image.components(),
        "geometry": image.geometry(),
        "metadata": image.metadata,
    });
    hasher.update(b"image\0").update(header.to_string().as_bytes());
    for_each_block(image.voxels(), image.components(), ByteOrder::Little, |block| {
        hasher.update(block);
    });
}

/// Identifies the state of a file or folder cheaply: path, size and modification time of
/// it and (for a folder, recursively) of everything inside. Changing, adding or removing a
/// file changes it; reading does not.
pub fn fingerprint(path: &Path) -> String {
    let mut lines = Vec::new();
    fingerprint_into(path, path, &mut lines, 0);
    lines.sort();
    let mut hasher = blake3::Hasher::new();
    hasher.update(path.to_string_lossy().as_bytes());
    for line in lines {
        hasher.update(line.as_bytes()).update(b"\n");
    }
    hasher.finalize().to_hex().to_string()
}

fn fingerprint_into(root: &Path, path: &Path, lines: &mut Vec<String>, depth: usize) {
    let relative = path.strip_prefix(root).unwrap_or(path).to_string_lossy().into_owned();
    let Ok(meta) = std::fs::metadata(path) else {
        lines.push(format!("{relative}\tmissing"));
        return;
    };
    let modified = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
    lines.push(format!("{relative}\t{}\t{}", meta.len(), modified.map_or(0, |d| d.as_nanos())));
    // Deep trees are not DICOM folders; the depth bound keeps a symlink loop finite.
    if meta.is_dir() && depth < 8 {
        for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
            fingerprint_into(root, &entry.path(), lines, depth + 1);
        }
    }
}

/// Saves `data` of output `port` into `dir` and returns its record.
pub fn write(dir: &Path, port: &str, data: &Data, hash: String) -> Result<ArtifactRecord, ArtifactError> {
    let mut record =
        ArtifactRecord { kind: data.kind_name().into(), hash, file: None, path: None, value: None, members: Vec::new() };
    match data {
        Data::Image(image) => record.file = Some(write_image(dir, &format!("{port}.mha"), image)?),
        Data::ImageSet(members) => {
            for (index, member) in members.iter().enumerate() {
                record.members.push(write_image(dir, &format!("{port}.{index:05}.mha"), &member.image)?);
            }
            let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
            record.file = Some(write_json(dir, &format!("{port}.set.json"), &serde_json::json!(names))?);
        }
        Data::Table(table) => record.file = Some(write_json(dir, &format!("{port}.table.json"), &table.to_json())?),
        Data::Scalar(value) => record.value = Some(*value),
        Data::File(path) => record.path = Some(path.clone()),
    }
    Ok(record)
}

/// Writes `image` as `dir/name` with its sidecar; returns `name`.
fn write_image(dir: &Path, name: &str, image: &Image) -> Result<String, ArtifactError> {
    let path = dir.join(name);
    let options = medas_io::metaimage::WriteOptions { compress: false };
    medas_io::metaimage::write_with(image, &path, &options).map_err(|source| ArtifactError::Image { path: path.clone(), source })?;
    let sidecar = Sidecar { geometry: image.geometry().clone(), metadata: image.metadata.clone() };
    write_json(dir, &sidecar_name(name), &sidecar)?;
    Ok(name.to_string())
}

fn write_json(dir: &Path, name: &str, value: &impl Serialize) -> Result<String, ArtifactError> {
    let path = dir.join(name);
    let text = serde_json::to_vec_pretty(value).expect("geometry, metadata, names and tables serialise");
    std::fs::write(&path, text).map_err(|source| ArtifactError::Write { path, source })?;
    Ok(name.to_string())
}

fn read_image_file(dir: &Path, file: &str) -> Result<Image, ArtifactError> {
    let unreadable = |path: &Path, reason: String| ArtifactError::Read { path: path.to_path_buf(), reason };
    let path = dir.join(file);
    let mut image = medas_io::metaimage::read(&path).map_err(|e| unreadable(&path, e.to_string()))?;
    let side_path = dir.join(sidecar_name(file));
    let text = std::fs::read(&side_path).map_err(|e| unreadable(&side_path, e.to_string()))?;
    let sidecar: Sidecar = serde_json::from_slice(&text).map_err(|e| unreadable(&side_path, e.to_string()))?;
    image.set_geometry(sidecar.geometry).map_err(|e| unreadable(&side_path, e.to_string()))?;
    image.metadata = sidecar.metadata;
    Ok(image)
}

fn read_image_set(dir: &Path, manifest: &str, members: &[String]) -> Result<Vec<NamedImage>, ArtifactError> {
    let path = dir.join(manifest);
    let unreadable = |reason: String| ArtifactError::Read { path: path.clone(), reason };
    let text = std::fs::read(&path).map_err(|e| unreadable(e.to_string()))?;
    let names: Vec<String> = serde_json::from_slice(&text).map_err(|e| unreadable(e.to_string()))?;
    if names.len() != members.len() {
        return Err(unreadable(format!("names {} members, the record {}", names.len(), members.len())));
    }
    names.into_iter().zip(members).map(|(name, file)| Ok(NamedImage { name, image: read_image_file(dir, file)? })).collect()
}

/// Loads an artifact stored by [`write`] in `dir`.
pub fn read(dir: &Path, record: &ArtifactRecord) -> Result<Data, ArtifactError> {
    let unreadable = |path: &Path, reason: String| ArtifactError::Read { path: path.to_path_buf(), reason };
    match (record.kind.as_str(), &record.file, record.value, &record.path) {
        ("image", Some(file), _, _) => read_image_file(dir, file).map(Data::Image),
        ("image_set", Some(file), _, _) => read_image_set(dir, file, &record.members).map(Data::ImageSet),
        ("table", Some(file), _, _) => {
            let path = dir.join(file);
            let text = std::fs::read_to_string(&path).map_err(|e| unreadable(&path, e.to_string()))?;
            Table::from_json(&text).map(Data::Table).map_err(|reason| unreadable(&path, reason))
        }
        ("scalar", _, Some(value), _) => Ok(Data::Scalar(value)),
        ("file", _, _, Some(path)) => Ok(Data::File(path.clone())),
        _ => Err(unreadable(dir, format!("record of kind {:?} is incomplete", record.kind))),
    }
}

/// Puts the stored files of `record` from `from` into `to`: a hard link where the two share
/// a file system (no copy of the volume), a copy otherwise.
pub fn link(from: &Path, to: &Path, record: &ArtifactRecord) -> Result<(), ArtifactError> {
    for name in record.stored_files() {
        let (source, target) = (from.join(&name), to.join(&name));
        let _ = std::fs::remove_file(&target);
        if std::fs::hard_link(&source, &target).is_err() {
            std::fs::copy(&source, &target).map_err(|source| ArtifactError::Write { path: target.clone(), source })?;
        }
    }
    Ok(())
}

/// The image of a stored record, for callers that only need to open it (tests, reports).
pub fn read_image(dir: &Path, record: &ArtifactRecord) -> Result<Image, ArtifactError> {
    match read(dir, record)? {
        Data::Image(image) => Ok(image),
        other => Err(ArtifactError::Read { path: dir.to_path_buf(), reason: format!("holds a {}, not an image", other.kind_name()) }),
    }
}

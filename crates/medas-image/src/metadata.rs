use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Well-known metadata keys, shared by every reader and writer.
pub mod keys {
    /// DICOM modality (`CT`, `MR`, `SM`, ...).
    pub const MODALITY: &str = "modality";
    pub const PATIENT_ID: &str = "patient_id";
    pub const STUDY_UID: &str = "study_instance_uid";
    pub const SERIES_UID: &str = "series_instance_uid";
    pub const SERIES_DESCRIPTION: &str = "series_description";
    /// List of `{center, width, name}` window presets (display units, e.g. HU).
    pub const WINDOWS: &str = "windows";
    /// Physical unit of the voxel values after rescaling (`HU`, ...).
    pub const VALUE_UNIT: &str = "value_unit";
    /// Format the image was read from (`nifti`, `dicom`, ...).
    pub const SOURCE_FORMAT: &str = "source_format";
    /// Free text description from the file (NIfTI `descrip`, ...).
    pub const DESCRIPTION: &str = "description";
}

/// A display window: centre and width in the image's value unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowPreset {
    pub center: f64,
    pub width: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Key/value facts about an image that are not voxels or geometry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Metadata(BTreeMap<String, Value>);

impl Metadata {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }
    pub fn text(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(Value::as_str)
    }
    pub fn number(&self, key: &str) -> Option<f64> {
        self.0.get(key).and_then(Value::as_f64)
    }
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<Value>) {
        self.0.insert(key.into(), value.into());
    }
    /// Sets a text value unless it is empty after trimming (DICOM pads strings with spaces).
    pub fn set_text(&mut self, key: impl Into<String>, value: &str) {
        let trimmed = value.trim_matches(|c: char| c.is_whitespace() || c == '\0');
        if !trimmed.is_empty() {
            self.0.insert(key.into(), Value::String(trimmed.to_string()));
        }
    }
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        self.0.remove(key)
    }
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.0.iter()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn windows(&self) -> Vec<WindowPreset> {
        self.0
            .get(keys::WINDOWS)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default()
    }
    pub fn set_windows(&mut self, windows: &[WindowPreset]) {
        if !windows.is_empty() {
            self.0.insert(keys::WINDOWS.into(), serde_json::to_value(windows).expect("plain data"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_trimmed_and_windows_round_trip() {
        let mut m = Metadata::new();
        m.set_text(keys::MODALITY, "CT ");
        m.set_text(keys::PATIENT_ID, "  \0");
        assert_eq!(m.text(keys::MODALITY), Some("CT"));
        assert_eq!(m.text(keys::PATIENT_ID), None);
        let w = vec![WindowPreset { center: 40.0, width: 400.0, name: Some("mediastinum".into()) }];
        m.set_windows(&w);
        assert_eq!(m.windows(), w);
    }
}

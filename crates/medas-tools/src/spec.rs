//! The declarative description of a tool: what it is, its typed parameters and its ports.

use medas_image::ScalarType;
use serde::Serialize;
use serde_json::Value;

/// Where a tool sits in the pipeline (the paper's layers); the web palette groups by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Io,
    Preprocess,
    /// Slide and stain tools for digital pathology.
    Pathology,
    /// Converting annotations (polygons, point lists, label maps) into training targets.
    Annotation,
    Augment,
    Dataset,
    Network,
    Postprocess,
    Metric,
    Visualize,
}

/// The kind of data that flows through a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PortType {
    Image,
    /// An image whose voxels are integer labels (masks, segmentations).
    LabelImage,
    ImageSet,
    Split,
    Model,
    Table,
    Plot,
    Scalar,
    File,
}

impl PortType {
    /// Whether an output of type `from` may feed an input of this type: equal types, or a label
    /// image into an image port (a mask is an image; the converse is not true).
    pub fn accepts(self, from: PortType) -> bool {
        self == from || (self == PortType::Image && from == PortType::LabelImage)
    }

    pub fn name(self) -> &'static str {
        match self {
            PortType::Image => "image",
            PortType::LabelImage => "label_image",
            PortType::ImageSet => "image_set",
            PortType::Split => "split",
            PortType::Model => "model",
            PortType::Table => "table",
            PortType::Plot => "plot",
            PortType::Scalar => "scalar",
            PortType::File => "file",
        }
    }
}

/// The type of a parameter, with its constraints.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ParamKind {
    Int {
        #[serde(skip_serializing_if = "Option::is_none")]
        min: Option<i64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        max: Option<i64>,
    },
    Float {
        #[serde(skip_serializing_if = "Option::is_none")]
        min: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        max: Option<f64>,
    },
    Bool,
    Enum {
        choices: Vec<String>,
    },
    String,
    /// A file or folder path (kept as text; tools resolve it).
    Path,
    /// A list of `item`, optionally with a fixed length range.
    List {
        item: Box<ParamKind>,
        #[serde(skip_serializing_if = "Option::is_none")]
        min_len: Option<usize>,
        #[serde(skip_serializing_if = "Option::is_none")]
        max_len: Option<usize>,
    },
}

/// One parameter of a tool.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParamSpec {
    pub name: String,
    pub doc: String,
    #[serde(flatten)]
    pub kind: ParamKind,
    /// `None`: the parameter is required.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Whether hyper-parameter optimisation may tune it.
    pub tunable: bool,
}

impl ParamSpec {
    fn new(name: &str, doc: &str, kind: ParamKind) -> ParamSpec {
        ParamSpec { name: name.into(), doc: doc.into(), kind, default: None, unit: None, tunable: false }
    }

    pub fn int(name: &str, doc: &str) -> ParamSpec {
        ParamSpec::new(name, doc, ParamKind::Int { min: None, max: None })
    }

    pub fn float(name: &str, doc: &str) -> ParamSpec {
        ParamSpec::new(name, doc, ParamKind::Float { min: None, max: None })
    }

    pub fn bool(name: &str, doc: &str) -> ParamSpec {
        ParamSpec::new(name, doc, ParamKind::Bool)
    }

    pub fn choice(name: &str, doc: &str, choices: &[&str]) -> ParamSpec {
        ParamSpec::new(name, doc, ParamKind::Enum { choices: choices.iter().map(|c| c.to_string()).collect() })
    }

    pub fn string(name: &str, doc: &str) -> ParamSpec {
        ParamSpec::new(name, doc, ParamKind::String)
    }

    pub fn path(name: &str, doc: &str) -> ParamSpec {
        ParamSpec::new(name, doc, ParamKind::Path)
    }

    pub fn list(name: &str, doc: &str, item: ParamKind) -> ParamSpec {
        ParamSpec::new(name, doc, ParamKind::List { item: Box::new(item), min_len: None, max_len: None })
    }

    /// Inclusive bounds (for int, float, and list lengths).
    pub fn range(mut self, low: f64, high: f64) -> ParamSpec {
        match &mut self.kind {
            ParamKind::Int { min, max } => (*min, *max) = (Some(low as i64), Some(high as i64)),
            ParamKind::Float { min, max } => (*min, *max) = (Some(low), Some(high)),
            ParamKind::List { min_len, max_len, .. } => (*min_len, *max_len) = (Some(low as usize), Some(high as usize)),
            _ => {}
        }
        self
    }

    pub fn default(mut self, value: impl Into<Value>) -> ParamSpec {
        self.default = Some(value.into());
        self
    }

    pub fn unit(mut self, unit: &str) -> ParamSpec {
        self.unit = Some(unit.into());
        self
    }

    pub fn tunable(mut self) -> ParamSpec {
        self.tunable = true;
        self
    }
}

/// One input or output of a tool.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PortSpec {
    pub name: String,
    pub doc: String,
    #[serde(rename = "type")]
    pub port_type: PortType,
    /// An optional input may stay unconnected.
    pub optional: bool,
    /// An image input that needs this voxel type: the runner casts what arrives (the paper's
    /// constructor), so the tool never sees another type.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "voxel_type_name")]
    pub voxel_type: Option<ScalarType>,
}

fn voxel_type_name<S: serde::Serializer>(voxel_type: &Option<ScalarType>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(voxel_type.map_or("", |t| t.name()))
}

impl PortSpec {
    pub fn new(name: &str, port_type: PortType, doc: &str) -> PortSpec {
        PortSpec { name: name.into(), doc: doc.into(), port_type, optional: false, voxel_type: None }
    }

    pub fn optional(mut self) -> PortSpec {
        self.optional = true;
        self
    }

    /// Images arriving on this input are cast to `voxel_type` first.
    pub fn voxel_type(mut self, voxel_type: ScalarType) -> PortSpec {
        self.voxel_type = Some(voxel_type);
        self
    }
}

/// Everything a front end needs to know about a tool.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolSpec {
    /// Stable id, `category.name` (e.g. `preprocess.window_level`).
    pub id: String,
    pub category: Category,
    /// Short human title for palettes and menus.
    pub title: String,
    /// One paragraph: what the tool does and how it matches its reference implementation.
    pub doc: String,
    /// Bumped whenever the outputs for the same inputs change, so cached results are not reused.
    pub version: u32,
    /// False for tools whose work is a side effect (writing files): the executor runs them
    /// every time instead of reusing a cached result.
    pub cacheable: bool,
    pub params: Vec<ParamSpec>,
    pub inputs: Vec<PortSpec>,
    pub outputs: Vec<PortSpec>,
}

impl ToolSpec {
    pub fn new(id: &str, category: Category, title: &str, doc: &str) -> ToolSpec {
        ToolSpec {
            id: id.into(),
            category,
            title: title.into(),
            doc: doc.into(),
            version: 1,
            cacheable: true,
            params: Vec::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
        }
    }

    pub fn version(mut self, version: u32) -> ToolSpec {
        self.version = version;
        self
    }

    /// Marks the tool as one that writes files, so it is never served from the cache.
    pub fn writes_files(mut self) -> ToolSpec {
        self.cacheable = false;
        self
    }

    pub fn param(mut self, param: ParamSpec) -> ToolSpec {
        self.params.push(param);
        self
    }

    /// Several parameters at once (a group that several tools share).
    pub fn params(mut self, params: Vec<ParamSpec>) -> ToolSpec {
        self.params.extend(params);
        self
    }

    pub fn input(mut self, port: PortSpec) -> ToolSpec {
        self.inputs.push(port);
        self
    }

    pub fn output(mut self, port: PortSpec) -> ToolSpec {
        self.outputs.push(port);
        self
    }

    pub fn param_spec(&self, name: &str) -> Option<&ParamSpec> {
        self.params.iter().find(|p| p.name == name)
    }

    pub fn input_spec(&self, name: &str) -> Option<&PortSpec> {
        self.inputs.iter().find(|p| p.name == name)
    }

    pub fn output_spec(&self, name: &str) -> Option<&PortSpec> {
        self.outputs.iter().find(|p| p.name == name)
    }
}

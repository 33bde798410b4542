//! JSON Schema (draft 2020-12) of a tool's parameters, so that forms, the Python API and
//! pipeline validation outside Rust can check values the same way [`crate::Params`] does.

use crate::spec::{ParamKind, ToolSpec};
use serde_json::{Map, Value, json};

impl ToolSpec {
    /// The schema of the parameter object of this tool. Units and tunability travel as
    /// `x-unit` and `x-tunable`.
    pub fn params_schema(&self) -> Value {
        let mut properties = Map::new();
        for param in &self.params {
            let mut schema = kind_schema(&param.kind);
            let object = schema.as_object_mut().expect("kind schemas are objects");
            object.insert("description".into(), Value::from(param.doc.as_str()));
            if let Some(default) = &param.default {
                object.insert("default".into(), default.clone());
            }
            if let Some(unit) = &param.unit {
                object.insert("x-unit".into(), Value::from(unit.as_str()));
            }
            object.insert("x-tunable".into(), Value::from(param.tunable));
            properties.insert(param.name.clone(), schema);
        }
        let required: Vec<&str> =
            self.params.iter().filter(|p| p.default.is_none()).map(|p| p.name.as_str()).collect();
        json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": format!("medas:tool:{}:{}", self.id, self.version),
            "title": self.title,
            "description": self.doc,
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": false,
        })
    }

    /// The whole spec as JSON, with the parameter schema under `params_schema`.
    pub fn to_json(&self) -> Value {
        let mut value = serde_json::to_value(self).expect("specs serialise");
        value["params_schema"] = self.params_schema();
        value
    }
}

fn kind_schema(kind: &ParamKind) -> Value {
    let mut schema = match kind {
        ParamKind::Int { .. } => json!({"type": "integer"}),
        ParamKind::Float { .. } => json!({"type": "number"}),
        ParamKind::Bool => json!({"type": "boolean"}),
        ParamKind::Enum { choices } => json!({"type": "string", "enum": choices}),
        ParamKind::String => json!({"type": "string"}),
        ParamKind::Path => json!({"type": "string", "format": "path"}),
        ParamKind::List { item, .. } => json!({"type": "array", "items": kind_schema(item)}),
    };
    let (low, high, low_key, high_key) = match kind {
        ParamKind::Int { min, max } => (min.map(Value::from), max.map(Value::from), "minimum", "maximum"),
        ParamKind::Float { min, max } => (min.map(Value::from), max.map(Value::from), "minimum", "maximum"),
        ParamKind::List { min_len, max_len, .. } => {
            (min_len.map(Value::from), max_len.map(Value::from), "minItems", "maxItems")
        }
        _ => (None, None, "", ""),
    };
    if let Some(low) = low {
        schema[low_key] = low;
    }
    if let Some(high) = high {
        schema[high_key] = high;
    }
    schema
}

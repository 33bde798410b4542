//! Parameter values: coercion of what users type (CLI `--set`, web forms, JSON) into the typed
//! value a spec asks for, with every problem reported at once.

use crate::error::{ParamIssue, ParamProblem, ToolError};
use crate::spec::{ParamKind, ParamSpec, ToolSpec};
use serde_json::{Map, Number, Value};

/// The resolved parameters of one tool run: every declared parameter, coerced, defaults filled.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
pub struct Params {
    tool: String,
    values: Map<String, Value>,
}

impl Params {
    /// Coerces `given` against `spec`; unknown, missing and invalid parameters are all
    /// reported together.
    pub fn resolve(spec: &ToolSpec, given: &Map<String, Value>) -> Result<Params, ToolError> {
        let mut problems = Vec::new();
        let error = |param: &str, problem| ParamIssue { param: param.into(), problem };
        for name in given.keys().filter(|name| spec.param_spec(name).is_none()) {
            problems.push(error(name, ParamProblem::Unknown));
        }
        let mut values = Map::new();
        for param in &spec.params {
            let value = match (given.get(&param.name), &param.default) {
                (Some(value), _) => coerce(param, value),
                (None, Some(default)) => Ok(default.clone()),
                (None, None) => Err(ParamProblem::Missing),
            };
            match value {
                Ok(value) => _ = values.insert(param.name.clone(), value),
                Err(problem) => problems.push(error(&param.name, problem)),
            }
        }
        match problems.len() {
            0 => Ok(Params { tool: spec.id.clone(), values }),
            1 => {
                let ParamIssue { param, problem } = problems.remove(0);
                Err(ToolError::Param { tool: spec.id.clone(), param, problem })
            }
            _ => Err(ToolError::Params { tool: spec.id.clone(), problems }),
        }
    }

    /// Parses `name=value` assignments as typed on a command line; the value is kept as text
    /// and coerced by [`Params::resolve`].
    pub fn assignments<'a>(pairs: impl IntoIterator<Item = &'a str>) -> Result<Map<String, Value>, String> {
        pairs
            .into_iter()
            .map(|pair| match pair.split_once('=') {
                Some((name, value)) if !name.trim().is_empty() => Ok((name.trim().to_string(), Value::from(value))),
                _ => Err(format!("{pair:?} is not NAME=VALUE")),
            })
            .collect()
    }

    pub fn value(&self, name: &str) -> Option<&Value> {
        self.values.get(name)
    }

    pub fn values(&self) -> &Map<String, Value> {
        &self.values
    }

    fn expect<'a, T>(&'a self, name: &str, get: impl Fn(&'a Value) -> Option<T>) -> Result<T, ToolError> {
        // Resolved params always hold their declared type; a mismatch means the tool asked for
        // a parameter its spec does not declare.
        self.values.get(name).and_then(get).ok_or_else(|| ToolError::Param {
            tool: self.tool.clone(),
            param: name.into(),
            problem: ParamProblem::Unknown,
        })
    }

    pub fn float(&self, name: &str) -> Result<f64, ToolError> {
        self.expect(name, Value::as_f64)
    }

    pub fn int(&self, name: &str) -> Result<i64, ToolError> {
        self.expect(name, Value::as_i64)
    }

    pub fn bool(&self, name: &str) -> Result<bool, ToolError> {
        self.expect(name, Value::as_bool)
    }

    pub fn text(&self, name: &str) -> Result<&str, ToolError> {
        self.expect(name, Value::as_str)
    }

    /// A string parameter that may be left empty (`None` when empty).
    pub fn optional_text(&self, name: &str) -> Result<Option<&str>, ToolError> {
        self.text(name).map(|t| Some(t).filter(|t| !t.is_empty()))
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the text {s:?}"),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// Coerces one value to the parameter's kind, checking its constraints.
pub(crate) fn coerce(param: &ParamSpec, value: &Value) -> Result<Value, ParamProblem> {
    coerce_kind(&param.kind, value)
}

fn wrong(expected: &str, value: &Value) -> ParamProblem {
    ParamProblem::WrongType { expected: expected.into(), got: describe(value) }
}

fn coerce_kind(kind: &ParamKind, value: &Value) -> Result<Value, ParamProblem> {
    let text = value.as_str().map(str::trim);
    match kind {
        ParamKind::Int { min, max } => {
            let n = match (value, text) {
                (Value::Number(n), _) => n.as_i64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
                (_, Some(t)) => t.parse::<i64>().ok(),
                _ => None,
            }
            .ok_or_else(|| wrong("an integer", value))?;
            check_range(n as f64, min.map(|m| m as f64), max.map(|m| m as f64), n.to_string())?;
            Ok(Value::from(n))
        }
        ParamKind::Float { min, max } => {
            let x = match (value, text) {
                (Value::Number(n), _) => n.as_f64(),
                (_, Some(t)) => t.parse::<f64>().ok(),
                _ => None,
            }
            .filter(|x| x.is_finite())
            .ok_or_else(|| wrong("a finite number", value))?;
            check_range(x, *min, *max, x.to_string())?;
            Ok(Value::Number(Number::from_f64(x).ok_or_else(|| wrong("a finite number", value))?))
        }
        ParamKind::Bool => match (value, text.map(str::to_ascii_lowercase).as_deref()) {
            (Value::Bool(b), _) => Ok(Value::Bool(*b)),
            (_, Some("true" | "yes" | "on" | "1")) => Ok(Value::Bool(true)),
            (_, Some("false" | "no" | "off" | "0")) => Ok(Value::Bool(false)),
            _ => Err(wrong("true or false", value)),
        },
        ParamKind::Enum { choices } => match text {
            Some(t) if choices.iter().any(|c| c == t) => Ok(Value::from(t)),
            Some(t) => Err(ParamProblem::NotAChoice { value: t.into(), choices: choices.clone() }),
            None => Err(wrong("one of the choices", value)),
        },
        ParamKind::String | ParamKind::Path => match value {
            Value::String(s) => Ok(Value::from(s.as_str())),
            _ => Err(wrong("text", value)),
        },
        ParamKind::List { item, min_len, max_len } => coerce_list(item, *min_len, *max_len, value),
    }
}

fn check_range(x: f64, min: Option<f64>, max: Option<f64>, shown: String) -> Result<(), ParamProblem> {
    if min.is_some_and(|m| x < m) || max.is_some_and(|m| x > m) {
        let bound = |b: Option<f64>, none: &str| b.map_or(none.to_string(), |b| b.to_string());
        return Err(ParamProblem::OutOfRange { value: shown, min: bound(min, "-inf"), max: bound(max, "inf") });
    }
    Ok(())
}

/// Lists come as JSON arrays, or as text: `1,2,3`, `1 2 3` or `[1, 2, 3]`; a lone number is a
/// list of one (`"radius": 2`).
fn coerce_list(item: &ParamKind, min: Option<usize>, max: Option<usize>, value: &Value) -> Result<Value, ParamProblem> {
    let items: Vec<Value> = match value {
        Value::Array(items) => items.clone(),
        Value::Number(_) => vec![value.clone()],
        Value::String(s) => {
            let inner = s.trim().trim_start_matches('[').trim_end_matches(']');
            inner.split([',', ' ']).map(str::trim).filter(|t| !t.is_empty()).map(Value::from).collect()
        }
        _ => return Err(wrong("a list", value)),
    };
    let (low, high) = (min.unwrap_or(0), max.unwrap_or(usize::MAX));
    if items.len() < low || items.len() > high {
        return Err(ParamProblem::WrongLength { len: items.len(), min: low, max: high });
    }
    items
        .iter()
        .enumerate()
        .map(|(index, v)| coerce_kind(item, v).map_err(|p| ParamProblem::Item { index, problem: Box::new(p) }))
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Array)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Category, ParamSpec, ToolSpec};
    use serde_json::json;

    fn spec() -> ToolSpec {
        ToolSpec::new("test.params", Category::Preprocess, "Test", "Parameters of every kind.")
            .param(ParamSpec::float("width", "Window width").range(1.0, 4000.0).default(400.0).unit("HU"))
            .param(ParamSpec::int("radius", "Radius").range(0.0, 10.0))
            .param(ParamSpec::bool("invert", "Invert").default(false))
            .param(ParamSpec::choice("order", "Interpolation", &["nearest", "linear"]).default("linear"))
            .param(ParamSpec::list("spacing", "Spacing", ParamKind::Float { min: Some(0.0), max: None }).range(3.0, 3.0).default(json!([1.0, 1.0, 1.0])))
    }

    fn given(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn text_is_coerced_to_the_declared_types_and_defaults_fill_in() {
        let params = Params::resolve(&spec(), &given(json!({"width": "0.5e3", "radius": "3", "invert": "yes", "spacing": "0.7, 0.7,2.5"}))).unwrap();
        assert_eq!(params.float("width").unwrap(), 500.0);
        assert_eq!(params.int("radius").unwrap(), 3);
        assert!(params.bool("invert").unwrap());
        assert_eq!(params.text("order").unwrap(), "linear");
        assert_eq!(params.value("spacing"), Some(&json!([0.7, 0.7, 2.5])));
        let typed = Params::resolve(&spec(), &given(json!({"width": 20, "radius": 2.0, "spacing": [1, 2, 3]}))).unwrap();
        assert_eq!((typed.float("width").unwrap(), typed.int("radius").unwrap()), (20.0, 2));
    }

    #[test]
    fn every_problem_is_reported_at_once_naming_the_parameter() {
        let error = Params::resolve(
            &spec(),
            &given(json!({"width": "wide", "invert": "maybe", "order": "cubic", "spacing": "1,2", "colour": 3})),
        )
        .unwrap_err();
        let ToolError::Params { problems, .. } = &error else { panic!("{error}") };
        // colour unknown, width not a number, radius missing, invert not boolean, order not a choice, spacing length.
        let text = error.to_string();
        for expected in [
            "parameter \"colour\" is not a parameter",
            "parameter \"width\" expects a finite number, got the text \"wide\"",
            "parameter \"radius\" is required",
            "parameter \"invert\" expects true or false",
            "parameter \"order\" \"cubic\" is not one of [\"nearest\", \"linear\"]",
            "parameter \"spacing\" holds 2 items, expected 3 to 3",
        ] {
            assert!(text.contains(expected), "{expected:?} not in {text}");
        }
        assert_eq!(problems.len(), 6, "{error}");
        assert!(text.starts_with("test.params: 6 parameter problems: parameter"), "{text}");
    }

    #[test]
    fn ranges_are_inclusive_and_checked_after_coercion() {
        let ok = |v: Value| Params::resolve(&spec(), &given(json!({"radius": 0, "width": v}))).map(|p| p.float("width").unwrap());
        assert_eq!(ok(json!("4000")).unwrap(), 4000.0);
        assert_eq!(ok(json!(1)).unwrap(), 1.0);
        let error = ok(json!("4000.5")).unwrap_err().to_string();
        assert!(error.contains("4000.5 is outside the allowed range 1 to 4000"), "{error}");
        assert!(ok(json!("NaN")).is_err());
        let error = Params::resolve(&spec(), &given(json!({"radius": 1, "spacing": 2}))).unwrap_err().to_string();
        assert!(error.contains("parameter \"spacing\" holds 1 items, expected 3 to 3"), "{error}");
        let error = Params::resolve(&spec(), &given(json!({"radius": 1, "spacing": [1, -2, 3]}))).unwrap_err().to_string();
        assert!(error.contains("item 1 -2 is outside the allowed range 0 to inf"), "{error}");
    }

    #[test]
    fn assignments_split_on_the_first_equals_sign() {
        let map = Params::assignments(["a=1", "path=x=y.nii"]).unwrap();
        assert_eq!(map["path"], json!("x=y.nii"));
        assert!(Params::assignments(["novalue"]).is_err());
    }
}

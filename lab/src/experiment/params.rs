//! Typed experiment parameters: the schema a form or `--set` is checked against.
//!
//! Values arrive as JSON (web form, URL, results file) or as `name=value` text (CLI); both go
//! through [`ParamSpec::parse`], so every front end gives the same message, which names the
//! parameter and its allowed range or choices.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A parameter value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

impl Value {
    /// The same setting, where a whole float equals the integer: JSON written by JavaScript
    /// drops the `.0` (`2.0` comes back as `2`), so a result that went through a page must
    /// still match the CLI's.
    pub fn same_as(&self, other: &Value) -> bool {
        match (self, other) {
            (Self::Int(i), Self::Float(x)) | (Self::Float(x), Self::Int(i)) => *i as f64 == *x,
            _ => self == other,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bool(b) => write!(f, "{b}"),
            Self::Int(i) => write!(f, "{i}"),
            Self::Float(x) => write!(f, "{x}"),
            Self::Text(s) => write!(f, "{s}"),
        }
    }
}

/// The type and range of a parameter.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ParamKind {
    Int {
        min: i64,
        max: i64,
    },
    Float {
        min: f64,
        max: f64,
    },
    Choice {
        choices: Vec<&'static str>,
        /// One line per choice saying what it is (empty when the names say enough).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        details: Vec<String>,
    },
    Bool,
}

impl fmt::Display for ParamKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Int { min, max } => write!(f, "an integer from {min} to {max}"),
            Self::Float { min, max } => write!(f, "a number from {min} to {max}"),
            Self::Choice { choices, .. } => write!(f, "one of {}", choices.join(", ")),
            Self::Bool => write!(f, "true or false"),
        }
    }
}

/// One parameter of an experiment.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ParamSpec {
    pub name: &'static str,
    #[serde(flatten)]
    pub kind: ParamKind,
    pub default: Value,
    /// Unit shown beside the value ("ms", "px"), empty when none.
    pub unit: &'static str,
    pub help: &'static str,
}

/// A value that does not fit its parameter, or a parameter that does not exist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamError {
    pub param: String,
    pub message: String,
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "parameter `{}`: {}", self.param, self.message)
    }
}

impl std::error::Error for ParamError {}

impl ParamError {
    /// `name` is none of `specs`: the error lists the names there are.
    pub fn unknown(name: &str, specs: &[ParamSpec]) -> Self {
        let known: Vec<_> = specs.iter().map(|spec| spec.name).collect();
        Self {
            param: name.into(),
            message: if known.is_empty() {
                "unknown parameter; this experiment takes none".into()
            } else {
                format!("unknown parameter; known parameters are {}", known.join(", "))
            },
        }
    }
}

impl ParamSpec {
    pub fn int(name: &'static str, default: i64, min: i64, max: i64, unit: &'static str, help: &'static str) -> Self {
        Self { name, kind: ParamKind::Int { min, max }, default: Value::Int(default), unit, help }
    }

    pub fn float(name: &'static str, default: f64, min: f64, max: f64, unit: &'static str, help: &'static str) -> Self {
        Self { name, kind: ParamKind::Float { min, max }, default: Value::Float(default), unit, help }
    }

    /// The Python model's pace, `op_ns` (the same parameter in every Python experiment).
    pub fn op_ns() -> Self {
        Self::float(
            "op_ns",
            conlab_core::pymodel::DEFAULT_OP_NS,
            0.0,
            1000.0,
            "ns",
            "time each bytecode instruction of the Python model takes (`conlab calibrate-python` fits it to your CPython)",
        )
    }

    pub fn choice(name: &'static str, default: &'static str, choices: &[&'static str], help: &'static str) -> Self {
        Self {
            name,
            kind: ParamKind::Choice { choices: choices.to_vec(), details: Vec::new() },
            default: Value::Text(default.into()),
            unit: "",
            help,
        }
    }

    /// A yes/no switch.
    pub fn flag(name: &'static str, default: bool, help: &'static str) -> Self {
        Self { name, kind: ParamKind::Bool, default: Value::Bool(default), unit: "", help }
    }

    /// A choice whose options each come with a line saying what they are.
    pub fn described_choice(
        name: &'static str,
        default: &'static str,
        choices: &[(&'static str, String)],
        help: &'static str,
    ) -> Self {
        let kind = ParamKind::Choice {
            choices: choices.iter().map(|(id, _)| *id).collect(),
            details: choices.iter().map(|(_, detail)| detail.clone()).collect(),
        };
        Self { name, kind, default: Value::Text(default.into()), unit: "", help }
    }

    /// Checks and converts a raw value (JSON number, bool or text such as `"640"` from a CLI
    /// flag or URL).
    pub fn parse(&self, raw: &serde_json::Value) -> Result<Value, ParamError> {
        let text = match raw {
            serde_json::Value::String(s) => s.trim().to_string(),
            other => other.to_string(),
        };
        let invalid =
            || ParamError { param: self.name.to_string(), message: format!("expected {}, got `{text}`", self.kind) };
        match &self.kind {
            ParamKind::Int { min, max } => {
                let value: i64 = text.parse().map_err(|_| invalid())?;
                (*min..=*max).contains(&value).then_some(Value::Int(value)).ok_or_else(invalid)
            }
            ParamKind::Float { min, max } => {
                let value: f64 = text.parse().map_err(|_| invalid())?;
                (value.is_finite() && *min <= value && value <= *max).then_some(Value::Float(value)).ok_or_else(invalid)
            }
            ParamKind::Choice { choices, .. } => {
                choices.iter().find(|c| **c == text).map(|c| Value::Text((*c).to_string())).ok_or_else(invalid)
            }
            ParamKind::Bool => match text.as_str() {
                "true" | "1" | "yes" | "on" => Ok(Value::Bool(true)),
                "false" | "0" | "no" | "off" => Ok(Value::Bool(false)),
                _ => Err(invalid()),
            },
        }
    }
}

/// A complete, validated set of parameter values (defaults filled in).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Params(BTreeMap<String, Value>);

impl Params {
    /// Validates `raw` against `specs`: unknown names and out-of-range values are errors;
    /// missing names take their defaults.
    pub fn validate(specs: &[ParamSpec], raw: &BTreeMap<String, serde_json::Value>) -> Result<Self, ParamError> {
        if let Some(unknown) = raw.keys().find(|name| !specs.iter().any(|spec| spec.name == name.as_str())) {
            return Err(ParamError::unknown(unknown, specs));
        }
        let mut values = BTreeMap::new();
        for spec in specs {
            let value = match raw.get(spec.name) {
                Some(raw) => spec.parse(raw)?,
                None => spec.default.clone(),
            };
            values.insert(spec.name.to_string(), value);
        }
        Ok(Self(values))
    }

    pub fn values(&self) -> &BTreeMap<String, Value> {
        &self.0
    }

    /// Whether the experiment declared `name` (a helper shared by experiments with and
    /// without an optional group of parameters).
    pub fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    fn get(&self, name: &str) -> &Value {
        // Experiments read only the names they declared; `validate` filled every one.
        self.0.get(name).unwrap_or_else(|| panic!("experiment read undeclared parameter `{name}`"))
    }

    pub fn int(&self, name: &str) -> i64 {
        match self.get(name) {
            Value::Int(value) => *value,
            other => panic!("parameter `{name}` is {other:?}, not an integer"),
        }
    }

    /// An integer parameter as a count; the schema's minimum keeps it non-negative.
    pub fn count(&self, name: &str) -> usize {
        usize::try_from(self.int(name)).unwrap_or(0)
    }

    pub fn float(&self, name: &str) -> f64 {
        match self.get(name) {
            Value::Float(value) => *value,
            Value::Int(value) => *value as f64,
            other => panic!("parameter `{name}` is {other:?}, not a number"),
        }
    }

    pub fn flag(&self, name: &str) -> bool {
        match self.get(name) {
            Value::Bool(value) => *value,
            other => panic!("parameter `{name}` is {other:?}, not true or false"),
        }
    }

    pub fn text(&self, name: &str) -> &str {
        match self.get(name) {
            Value::Text(value) => value,
            other => panic!("parameter `{name}` is {other:?}, not text"),
        }
    }
}

/// Splits CLI `name=value` assignments into raw values.
pub fn parse_assignments<'a>(
    assignments: impl IntoIterator<Item = &'a str>,
) -> Result<BTreeMap<String, serde_json::Value>, ParamError> {
    assignments
        .into_iter()
        .map(|assignment| match assignment.split_once('=') {
            Some((name, value)) if !name.trim().is_empty() => {
                Ok((name.trim().to_string(), serde_json::Value::String(value.to_string())))
            }
            _ => Err(ParamError { param: assignment.to_string(), message: "expected name=value".into() }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn specs() -> Vec<ParamSpec> {
        vec![
            ParamSpec::int("width", 640, 16, 8192, "px", "image width"),
            ParamSpec::float("latency", 10.0, 0.0, 1000.0, "ms", "sleep per task"),
            ParamSpec::choice("shape", "square", &["square", "wide"], "aspect"),
        ]
    }

    fn raw(pairs: &[(&str, serde_json::Value)]) -> BTreeMap<String, serde_json::Value> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    #[test]
    fn defaults_fill_missing_values() {
        let params = Params::validate(&specs(), &raw(&[("width", json!(100))])).unwrap();
        assert_eq!((params.int("width"), params.float("latency"), params.text("shape")), (100, 10.0, "square"));
    }

    #[test]
    fn text_values_parse_like_numbers() {
        let params = Params::validate(&specs(), &raw(&[("width", json!(" 32 ")), ("latency", json!("2.5"))])).unwrap();
        assert_eq!((params.int("width"), params.float("latency")), (32, 2.5));
    }

    #[test]
    fn errors_name_the_parameter_and_the_range() {
        let error = Params::validate(&specs(), &raw(&[("width", json!(99999))])).unwrap_err();
        assert_eq!(error.to_string(), "parameter `width`: expected an integer from 16 to 8192, got `99999`");
        let error = Params::validate(&specs(), &raw(&[("latency", json!("fast"))])).unwrap_err();
        assert_eq!(error.to_string(), "parameter `latency`: expected a number from 0 to 1000, got `fast`");
        let error = Params::validate(&specs(), &raw(&[("shape", json!("round"))])).unwrap_err();
        assert_eq!(error.to_string(), "parameter `shape`: expected one of square, wide, got `round`");
        let error = Params::validate(&specs(), &raw(&[("latency", json!("NaN"))])).unwrap_err();
        assert_eq!(error.param, "latency");
    }

    #[test]
    fn unknown_parameters_list_the_known_ones() {
        let error = Params::validate(&specs(), &raw(&[("colour", json!(1))])).unwrap_err();
        assert_eq!(
            error.to_string(),
            "parameter `colour`: unknown parameter; known parameters are width, latency, shape"
        );
    }

    #[test]
    fn assignments_split_on_the_first_equals() {
        let parsed = parse_assignments(["width=64", "shape=a=b"]).unwrap();
        assert_eq!(parsed["width"], json!("64"));
        assert_eq!(parsed["shape"], json!("a=b"));
        assert_eq!(parse_assignments(["width"]).unwrap_err().to_string(), "parameter `width`: expected name=value");
    }
}

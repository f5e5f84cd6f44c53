//! A call's fields and MLflow's error shape. GET calls carry their fields in the query string (repeated keys
//! for lists, numbers as text), others as a JSON body; int64 fields may come as numbers or numeric strings and
//! doubles also as `"NaN"`, `"Infinity"`, `"-Infinity"` (protobuf's JSON), as MLflow's server accepts them.

use axum::Json;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

/// An error as MLflow's server answers it: the status, `error_code` and `message` its clients read.
#[derive(Debug)]
pub struct MlError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl MlError {
    pub fn new(status: StatusCode, code: &'static str, message: String) -> Self {
        MlError {
            status,
            code,
            message,
        }
    }

    /// 400 `INVALID_PARAMETER_VALUE`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "INVALID_PARAMETER_VALUE",
            message.into(),
        )
    }

    /// 400 for a required field that is missing.
    pub fn missing(field: &str) -> Self {
        Self::invalid(format!(
            "Missing value for required parameter '{field}'. See the API docs for more information about request parameters."
        ))
    }

    /// 404 `RESOURCE_DOES_NOT_EXIST`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "RESOURCE_DOES_NOT_EXIST",
            message.into(),
        )
    }

    /// 400 `RESOURCE_ALREADY_EXISTS` (MLflow's status for it is 400).
    pub fn exists(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "RESOURCE_ALREADY_EXISTS",
            message.into(),
        )
    }

    /// 501 `NOT_IMPLEMENTED`.
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_IMPLEMENTED,
            "NOT_IMPLEMENTED",
            message.into(),
        )
    }
}

impl IntoResponse for MlError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"error_code": self.code, "message": self.message})),
        )
            .into_response()
    }
}

impl From<labd_log::LogError> for MlError {
    fn from(e: labd_log::LogError) -> Self {
        let status = if e.is_io() {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        let code = if e.is_io() {
            "TEMPORARILY_UNAVAILABLE"
        } else {
            "INTERNAL_ERROR"
        };
        MlError::new(status, code, format!("labd could not record this: {e}"))
    }
}

pub type MlResult<T> = Result<T, MlError>;

/// A call's fields, and the request they came with.
#[derive(Debug)]
pub struct Fields {
    fields: Map<String, Value>,
    /// `METHOD /path`, for the events' source.
    pub request: String,
}

impl Fields {
    /// The fields of a call: a GET's query string (or its JSON body when it has no query, as MLflow's server
    /// does), another method's JSON body (empty: no fields).
    pub fn parse(method: &Method, uri: &Uri, body: &[u8]) -> MlResult<Fields> {
        let request = format!("{method} {}", uri.path());
        let query = uri.query().unwrap_or("");
        let fields = if *method == Method::GET && !query.is_empty() {
            from_query(query)?
        } else if body.iter().all(u8::is_ascii_whitespace) {
            Map::new()
        } else {
            match serde_json::from_slice::<Value>(body) {
                Ok(Value::Object(m)) => m,
                Ok(_) => return Err(MlError::invalid("the request body must be a JSON object")),
                Err(e) => {
                    return Err(MlError::new(
                        StatusCode::BAD_REQUEST,
                        "MALFORMED_REQUEST",
                        format!("the request body is not JSON: {e}"),
                    ));
                }
            }
        };
        Ok(Fields { fields, request })
    }

    /// Fields from a JSON object (tests and internal callers).
    pub fn from_map(fields: Map<String, Value>) -> Fields {
        Fields {
            fields,
            request: String::new(),
        }
    }

    /// The fields, to read.
    pub fn obj(&self) -> Obj<'_> {
        Obj(&self.fields)
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.obj().get(key)
    }
    pub fn opt_str(&self, key: &str) -> MlResult<Option<String>> {
        self.obj().opt_str(key)
    }
    pub fn str(&self, key: &str) -> MlResult<String> {
        self.obj().str(key)
    }
    pub fn opt_i64(&self, key: &str) -> MlResult<Option<i64>> {
        self.obj().opt_i64(key)
    }
    pub fn run_id(&self) -> MlResult<String> {
        self.obj().run_id()
    }
    pub fn strings(&self, key: &str) -> MlResult<Vec<String>> {
        self.obj().strings(key)
    }
    pub fn objects(&self, key: &str) -> MlResult<Vec<Obj<'_>>> {
        self.obj().objects(key)
    }
    pub fn pairs(&self, key: &str) -> MlResult<Vec<(String, String)>> {
        self.obj().pairs(key)
    }
}

/// A JSON object's fields, read as MLflow's server reads them (the call's, or one item of a list in it).
#[derive(Clone, Copy, Debug)]
pub struct Obj<'a>(pub &'a Map<String, Value>);

impl<'a> Obj<'a> {
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    /// An optional text field (numbers given for it are taken as their text).
    pub fn opt_str(&self, key: &str) -> MlResult<Option<String>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(other) => Err(MlError::invalid(format!(
                "Invalid value {other} for parameter '{key}' supplied: expected a string"
            ))),
        }
    }

    /// A required text field.
    pub fn str(&self, key: &str) -> MlResult<String> {
        self.opt_str(key)?.ok_or_else(|| MlError::missing(key))
    }

    /// An optional int64 field: a JSON number with no fraction or a numeric string.
    pub fn opt_i64(&self, key: &str) -> MlResult<Option<i64>> {
        self.get(key).map(|v| int64(v, || key.into())).transpose()
    }

    /// The run a call is about: `run_id`, or the older `run_uuid`.
    pub fn run_id(&self) -> MlResult<String> {
        match self.opt_str("run_id")?.filter(|s| !s.is_empty()) {
            Some(id) => Ok(id),
            None => self
                .opt_str("run_uuid")?
                .filter(|s| !s.is_empty())
                .ok_or_else(|| MlError::missing("run_id")),
        }
    }

    /// A list of texts (a repeated query key, a JSON array, or one value).
    pub fn strings(&self, key: &str) -> MlResult<Vec<String>> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    Value::Number(n) => Ok(n.to_string()),
                    other => Err(MlError::invalid(format!(
                        "Invalid value {other} in parameter '{key}': expected strings"
                    ))),
                })
                .collect(),
            Some(Value::String(s)) => Ok(vec![s.clone()]),
            Some(Value::Number(n)) => Ok(vec![n.to_string()]),
            Some(other) => Err(MlError::invalid(format!(
                "Invalid value {other} for parameter '{key}': expected a list of strings"
            ))),
        }
    }

    /// A list of objects (`metrics`, `params`, `tags`, `datasets`).
    pub fn objects(&self, key: &str) -> MlResult<Vec<Obj<'a>>> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_object().map(Obj).ok_or_else(|| {
                        MlError::invalid(format!("{key}[{i}] must be a JSON object"))
                    })
                })
                .collect(),
            Some(_) => Err(MlError::invalid(format!("'{key}' must be a list"))),
        }
    }

    /// `[{key, value}]` pairs (tags, params), `value` required.
    pub fn pairs(&self, key: &str) -> MlResult<Vec<(String, String)>> {
        self.objects(key)?
            .into_iter()
            .enumerate()
            .map(|(i, f)| {
                let k = f
                    .opt_str("key")?
                    .ok_or_else(|| MlError::missing(&format!("{key}[{i}].key")))?;
                let v = f
                    .opt_str("value")?
                    .ok_or_else(|| MlError::missing(&format!("{key}[{i}].value")))?;
                Ok((k, v))
            })
            .collect()
    }
}

/// The query string's fields; a key given more than once becomes a list.
fn from_query(query: &str) -> MlResult<Map<String, Value>> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
        .map_err(|e| MlError::invalid(format!("the query string does not read: {e}")))?;
    let mut out = Map::new();
    for (k, v) in pairs {
        match out.get_mut(&k) {
            None => {
                out.insert(k, Value::String(v));
            }
            Some(Value::Array(items)) => items.push(Value::String(v)),
            Some(first) => {
                let first = first.take();
                out.insert(k, Value::Array(vec![first, Value::String(v)]));
            }
        }
    }
    Ok(out)
}

/// An int64 as protobuf's JSON gives it: a number with no fraction, or its decimal text.
pub fn int64(v: &Value, key: impl Fn() -> String) -> MlResult<i64> {
    let bad = || {
        MlError::invalid(format!(
            "Invalid value {v} for parameter '{}' supplied: expected a 64-bit integer",
            key()
        ))
    };
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
                    .map(|f| f as i64)
            })
            .ok_or_else(bad),
        Value::String(s) => s.trim().parse::<i64>().map_err(|_| bad()),
        _ => Err(bad()),
    }
}

/// A double as protobuf's JSON gives it: a number, its text, or `"NaN"`, `"Infinity"`, `"-Infinity"`.
pub fn double(v: &Value, key: impl Fn() -> String) -> MlResult<f64> {
    let bad = || {
        MlError::invalid(format!(
            "Invalid value {v} for parameter '{}' supplied: expected a number",
            key()
        ))
    };
    match v {
        Value::Number(n) => n.as_f64().ok_or_else(bad),
        Value::String(s) => match s.as_str() {
            "NaN" | "nan" => Ok(f64::NAN),
            "Infinity" | "inf" => Ok(f64::INFINITY),
            "-Infinity" | "-inf" => Ok(f64::NEG_INFINITY),
            t => t.trim().parse::<f64>().map_err(|_| bad()),
        },
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(method: Method, uri: &str, body: &str) -> MlResult<Fields> {
        Fields::parse(&method, &uri.parse().expect("uri"), body.as_bytes())
    }

    #[test]
    fn get_calls_read_the_query_with_repeated_keys_as_lists() {
        let f = fields(
            Method::GET,
            "/x?run_ids=a&run_ids=b&metric_key=loss%2Fval&max_results=5",
            "",
        )
        .expect("fields");
        assert_eq!(f.strings("run_ids").expect("ids"), ["a", "b"]);
        assert_eq!(f.str("metric_key").expect("key"), "loss/val");
        assert_eq!(f.opt_i64("max_results").expect("n"), Some(5));
        assert_eq!(f.request, "GET /x");
    }

    #[test]
    fn bodies_take_numbers_as_numbers_or_text_and_doubles_as_protobuf_writes_them() {
        let f = fields(
            Method::POST,
            "/x",
            r#"{"run_uuid":"r","timestamp":"1700000000001","step":2.0,"a":"NaN","b":"-Infinity","c":1.5,"d":"0.25"}"#,
        )
        .expect("fields");
        assert_eq!(f.run_id().expect("id"), "r");
        assert_eq!(f.opt_i64("timestamp").expect("t"), Some(1_700_000_000_001));
        assert_eq!(f.opt_i64("step").expect("s"), Some(2));
        let d = |k: &str| double(f.get(k).expect(k), || k.into()).expect("double");
        assert!(d("a").is_nan());
        assert_eq!(d("b"), f64::NEG_INFINITY);
        assert_eq!(d("c"), 1.5);
        assert_eq!(d("d"), 0.25);
        assert!(double(&Value::Bool(true), || "v".into()).is_err());
        assert!(int64(&json!(1.5), || "step".into()).is_err());
    }

    #[test]
    fn bad_bodies_and_missing_fields_are_named() {
        let e = fields(Method::POST, "/x", "[1]").expect_err("array");
        assert_eq!(e.code, "INVALID_PARAMETER_VALUE");
        let e = fields(Method::POST, "/x", "{").expect_err("not json");
        assert_eq!(e.code, "MALFORMED_REQUEST");
        let f = fields(Method::POST, "/x", "{}").expect("empty");
        let e = f.str("name").expect_err("missing");
        assert!(e.message.contains("'name'"), "{}", e.message);
    }
}

//! MLflow's limits and key rules (`mlflow/utils/validation.py`), with its messages, so a client gets the error
//! an MLflow server would give it.

use super::request::{MlError, MlResult};

pub const MAX_PARAMS_TAGS_PER_BATCH: usize = 100;
pub const MAX_METRICS_PER_BATCH: usize = 1000;
pub const MAX_ENTITIES_PER_BATCH: usize = 1000;
pub const MAX_ENTITY_KEY_LENGTH: usize = 250;
pub const MAX_EXPERIMENT_NAME_LENGTH: usize = 500;
pub const MAX_EXPERIMENT_TAG_VAL_LENGTH: usize = 20000;
/// `search` pages at most this many runs (`SEARCH_MAX_RESULTS_THRESHOLD`).
pub const SEARCH_MAX_RESULTS: i64 = 50000;

/// A metric, parameter or tag key: letters, digits, `_ - . : /` and spaces, and a path that normalizes to
/// itself (no `..`, no leading `/`, no empty or `.` parts).
pub fn key(key: &str, field: impl Fn() -> String) -> MlResult<()> {
    if key.chars().count() > MAX_ENTITY_KEY_LENGTH {
        return Err(MlError::invalid(format!(
            "'{}' exceeds the maximum length of {MAX_ENTITY_KEY_LENGTH} characters",
            field()
        )));
    }
    let allowed = |c: char| c.is_alphanumeric() || matches!(c, '_' | '/' | '.' | '-' | ' ' | ':');
    if !key.chars().all(allowed) {
        return Err(MlError::invalid(format!(
            "Invalid value \"{key}\" for parameter '{}' supplied: Names may only contain alphanumerics, underscores (_), dashes (-), periods (.), spaces ( ), colon(:) and slashes (/).",
            field()
        )));
    }
    let norm = normpath(key);
    if norm != key || norm == "." || norm.starts_with("..") || norm.starts_with('/') {
        return Err(MlError::invalid(format!(
            "Invalid value \"{key}\" for parameter '{}' supplied: Names may be treated as files in certain cases, and must not resolve to other names when treated as such. This name would resolve to '{norm}'",
            field()
        )));
    }
    Ok(())
}

/// Python's `posixpath.normpath`.
fn normpath(path: &str) -> String {
    if path.is_empty() {
        return ".".into();
    }
    let initial = if path.starts_with("//") && !path.starts_with("///") {
        2
    } else if path.starts_with('/') {
        1
    } else {
        0
    };
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if initial == 0 && (parts.is_empty() || parts.last() == Some(&"..")) {
                    parts.push("..");
                } else if !parts.is_empty() {
                    parts.pop();
                }
            }
            p => parts.push(p),
        }
    }
    let out = format!("{}{}", "/".repeat(initial), parts.join("/"));
    if out.is_empty() { ".".into() } else { out }
}

/// A value no longer than `max` characters.
pub fn length(value: &str, max: usize, field: &str) -> MlResult<()> {
    if value.chars().count() > max {
        return Err(MlError::invalid(format!(
            "'{field}' exceeds the maximum length of {max} characters"
        )));
    }
    Ok(())
}

/// The sizes of a `log-batch` call. (MLflow also names a limit of 1,000,000 bytes a request, but its server
/// measures the parsed request's number of fields against it, so it never refuses one: neither does labd, whose
/// own body limit, `LABD_MAX_BODY_BYTES`, holds.)
pub fn batch(metrics: usize, params: usize, tags: usize) -> MlResult<()> {
    let over = |n: usize, what: &str, max: usize| {
        MlError::invalid(format!(
            "A batch logging request can contain at most {max} {what}. Got {n} {what}. Please split up {what} across multiple requests and try again."
        ))
    };
    if metrics > MAX_METRICS_PER_BATCH {
        return Err(over(metrics, "metrics", MAX_METRICS_PER_BATCH));
    }
    if params > MAX_PARAMS_TAGS_PER_BATCH {
        return Err(over(params, "params", MAX_PARAMS_TAGS_PER_BATCH));
    }
    if tags > MAX_PARAMS_TAGS_PER_BATCH {
        return Err(over(tags, "tags", MAX_PARAMS_TAGS_PER_BATCH));
    }
    let all = metrics + params + tags;
    if all > MAX_ENTITIES_PER_BATCH {
        return Err(over(
            all,
            "metrics, params, and tags",
            MAX_ENTITIES_PER_BATCH,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_mlflows_rules() {
        for ok in ["loss", "train/loss", "a.b-c_d e:f", "ünï", "a/c"] {
            assert!(key(ok, || "key".into()).is_ok(), "{ok}");
        }
        for bad in ["bad*key", "../x", "/abs", "a//b", "a/", ".", "", "a/./b"] {
            assert!(key(bad, || "key".into()).is_err(), "{bad}");
        }
        let e = key("../x", || "key".into()).expect_err("dots");
        assert!(
            e.message.contains("would resolve to '../x'"),
            "{}",
            e.message
        );
        assert!(key(&"k".repeat(251), || "key".into()).is_err());
    }

    #[test]
    fn normpath_is_pythons() {
        for (p, n) in [
            ("a/b/../c", "a/c"),
            ("../a", "../a"),
            ("/../a", "/a"),
            ("//a", "//a"),
            ("///a", "/a"),
            ("a/", "a"),
            ("", "."),
            ("./a", "a"),
        ] {
            assert_eq!(normpath(p), n, "{p}");
        }
    }

    #[test]
    fn batches_are_held_to_mlflows_limits() {
        assert!(batch(1000, 0, 0).is_ok());
        let e = batch(1001, 0, 0).expect_err("metrics");
        assert!(
            e.message.contains("at most 1000 metrics. Got 1001"),
            "{}",
            e.message
        );
        assert!(batch(0, 101, 0).is_err());
        assert!(batch(0, 0, 101).is_err());
        assert!(batch(900, 100, 1).is_err());
    }
}

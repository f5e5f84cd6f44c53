//! The wide runs table people paste into a spreadsheet or a notebook: one row per run, one column per flattened
//! config key, per metric (its last value) and per number in the summaries; the column names are the filter
//! language's (`optim.lr`, `metric.val/acc`, `summary.final.test_f1`). A Polars frame, so it goes out as CSV or
//! Parquet with every value exact (integers stay integer columns, doubles keep their bits).

use super::params::flatten;
use crate::views::registry::Record;
use labd_schemas::time::micros_to_rfc3339;
use polars::prelude::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// The table of `runs`.
pub fn frame(runs: &[&Record], now: i64, stale_after: i64) -> PolarsResult<DataFrame> {
    let flat: Vec<BTreeMap<String, Value>> = runs.iter().map(|r| flatten(&r.config)).collect();
    let params: BTreeSet<&String> = flat.iter().flat_map(|f| f.keys()).collect();
    let metrics: BTreeSet<&String> = runs.iter().flat_map(|r| r.metrics.keys()).collect();
    let summaries: BTreeSet<String> = runs.iter().flat_map(|r| r.summary_keys()).collect();
    let mut columns: Vec<Column> = vec![
        Column::new(
            "id".into(),
            runs.iter().map(|r| r.id.0.clone()).collect::<Vec<_>>(),
        ),
        Column::new(
            "name".into(),
            runs.iter().map(|r| r.name.clone()).collect::<Vec<_>>(),
        ),
        Column::new(
            "status".into(),
            runs.iter()
                .map(|r| r.shown_status(now, stale_after).as_str().to_string())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "host".into(),
            runs.iter().map(|r| r.host.clone()).collect::<Vec<_>>(),
        ),
        Column::new(
            "started".into(),
            runs.iter()
                .map(|r| micros_to_rfc3339(r.started))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "tags".into(),
            runs.iter().map(|r| r.tags.join(",")).collect::<Vec<_>>(),
        ),
    ];
    let taken: BTreeSet<&str> = ["id", "name", "status", "host", "started", "tags"].into();
    for key in params {
        let name = if taken.contains(key.as_str()) {
            format!("params.{key}")
        } else {
            key.clone()
        };
        columns.push(json_column(&name, flat.iter().map(|f| f.get(key))));
    }
    for key in metrics {
        let values: Vec<Option<f64>> = runs
            .iter()
            .map(|r| r.metrics.get(key).and_then(|m| m.last))
            .collect();
        columns.push(Column::new(format!("metric.{key}").into(), values));
    }
    for key in &summaries {
        let values: Vec<Option<f64>> = runs.iter().map(|r| r.summary_value(key)).collect();
        columns.push(Column::new(format!("summary.{key}").into(), values));
    }
    DataFrame::new_infer_height(columns)
}

/// A column of JSON values: integers when every value is one, else doubles when every value is a number, booleans
/// when every one is, else text (strings as they are, lists and objects as JSON).
fn json_column<'a>(name: &str, values: impl Iterator<Item = Option<&'a Value>>) -> Column {
    let values: Vec<Option<&Value>> = values.map(|v| v.filter(|v| !v.is_null())).collect();
    let present = || values.iter().flatten();
    if present().all(|v| v.is_i64()) {
        return Column::new(
            name.into(),
            values
                .iter()
                .map(|v| v.and_then(Value::as_i64))
                .collect::<Vec<_>>(),
        );
    }
    if present().all(|v| v.is_number()) {
        return Column::new(
            name.into(),
            values
                .iter()
                .map(|v| v.and_then(Value::as_f64))
                .collect::<Vec<_>>(),
        );
    }
    if present().all(|v| v.is_boolean()) {
        return Column::new(
            name.into(),
            values
                .iter()
                .map(|v| v.and_then(Value::as_bool))
                .collect::<Vec<_>>(),
        );
    }
    Column::new(
        name.into(),
        values
            .iter()
            .map(|v| {
                v.map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
            })
            .collect::<Vec<_>>(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn columns_keep_their_types() {
        let v = [json!(1), json!(2), Value::Null];
        let c = json_column("a", v.iter().map(Some));
        assert_eq!(c.dtype(), &DataType::Int64);
        let v = [json!(1), json!(2.5)];
        assert_eq!(
            json_column("b", v.iter().map(Some)).dtype(),
            &DataType::Float64
        );
        let v = [json!(true), json!(false)];
        assert_eq!(
            json_column("c", v.iter().map(Some)).dtype(),
            &DataType::Boolean
        );
        let v = [json!("adam"), json!([64, 64])];
        let c = json_column("d", v.iter().map(Some));
        assert_eq!(c.dtype(), &DataType::String);
        assert_eq!(c.str().unwrap().get(1), Some("[64,64]"));
    }
}

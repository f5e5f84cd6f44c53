//! A summary as a table: its groups sorted by a figure or a key, as a Polars frame for CSV and Parquet (key
//! columns keep integers as integers), and with the display names of keys and values.

use super::AnalyticsError;
use super::params::order;
use super::summary::{FIGURES, Figures, Group, Summary};
use polars::prelude::*;
use serde_json::Value;

/// Sorts the groups by a figure (`count`, `mean`, `std`, `sem`, `ci95_low`, `ci95_high`, `median`, `min`,
/// `max`), a further column's figure (`val/loss=min.mean`) or a grouping key; missing values last.
pub fn sort_groups(s: &mut Summary, by: &str, descending: bool) -> Result<(), AnalyticsError> {
    enum Key<'a> {
        Figure(&'a str),
        Also(&'a str, &'a str),
        Param,
    }
    let key = if FIGURES.contains(&by) {
        Key::Figure(by)
    } else if let Some((label, fig)) = by
        .rsplit_once('.')
        .filter(|(l, f)| FIGURES.contains(f) && s.also.iter().any(|a| a == l))
    {
        Key::Also(label, fig)
    } else if s.by.iter().any(|k| k == by) {
        Key::Param
    } else {
        let also: String = s.also.iter().map(|a| format!(", {a}.mean")).collect();
        return Err(AnalyticsError::BadRequest(format!(
            "cannot sort by {by:?}: use {}{also} or a grouping key ({})",
            FIGURES.join(", "),
            s.by.join(", ")
        )));
    };
    let figure = |g: &Group| -> Option<f64> {
        match key {
            Key::Figure(f) => g.figures.get(f),
            Key::Also(label, f) => g.also.get(label).and_then(|x| x.get(f)),
            Key::Param => None,
        }
    };
    s.groups.sort_by(|a, b| {
        let o = if let Key::Param = key {
            order(&a.keys[by], &b.keys[by])
        } else {
            match (figure(a), figure(b)) {
                (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal),
                (Some(_), None) => return std::cmp::Ordering::Less,
                (None, Some(_)) => return std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            }
        };
        if descending { o.reverse() } else { o }
    });
    Ok(())
}

/// The summary as a table (one row per group: key columns, figures, the runs joined by spaces, then each further
/// column's figures as `METRIC=REDUCE.figure`), for CSV and Parquet. Key columns are integers when every value is
/// an integer, doubles when every value is a number a double holds exactly, text otherwise.
pub fn frame(s: &Summary) -> Result<DataFrame, PolarsError> {
    let mut columns = Vec::new();
    for k in &s.by {
        let values: Vec<&Value> = s.groups.iter().map(|g| &g.keys[k]).collect();
        let name = k.as_str().into();
        if values.iter().all(|v| v.is_i64()) {
            columns.push(Column::new(
                name,
                values.iter().map(|v| v.as_i64()).collect::<Vec<_>>(),
            ));
        } else if values.iter().all(|v| v.is_u64()) {
            columns.push(Column::new(
                name,
                values.iter().map(|v| v.as_u64()).collect::<Vec<_>>(),
            ));
        } else if values.iter().all(|v| exact_f64(v).is_some()) {
            columns.push(Column::new(
                name,
                values.iter().map(|v| exact_f64(v)).collect::<Vec<_>>(),
            ));
        } else {
            let text: Vec<String> = values
                .iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), String::from))
                .collect();
            columns.push(Column::new(k.as_str().into(), text));
        }
    }
    let figures =
        |name: String, of: &dyn Fn(&Group) -> Option<&Figures>, columns: &mut Vec<Column>| {
            columns.push(Column::new(
                format!("{name}count").into(),
                s.groups
                    .iter()
                    .map(|g| of(g).map_or(0, |f| f.count))
                    .collect::<Vec<_>>(),
            ));
            for fig in &FIGURES[1..] {
                columns.push(Column::new(
                    format!("{name}{fig}").into(),
                    s.groups
                        .iter()
                        .map(|g| of(g).and_then(|f| f.get(fig)))
                        .collect::<Vec<_>>(),
                ));
            }
        };
    figures(String::new(), &|g| Some(&g.figures), &mut columns);
    columns.push(Column::new(
        "runs".into(),
        s.groups
            .iter()
            .map(|g| g.runs.join(" "))
            .collect::<Vec<_>>(),
    ));
    for label in &s.also {
        figures(format!("{label}."), &|g| g.also.get(label), &mut columns);
    }
    DataFrame::new_infer_height(columns)
}

/// A JSON number as a double when that double is exactly the number (integers beyond 2^53 that are not are left
/// to a text column rather than rounded).
fn exact_f64(v: &Value) -> Option<f64> {
    let n = labd_schemas::number::Num::of_json(v.as_number()?);
    let f = n.as_f64();
    (n == labd_schemas::number::Num::Float(f)).then_some(f)
}

/// Applies display names to a summary: names for its keys, shown values for each group.
pub fn with_display(mut s: Summary, display: &super::display::Display) -> Summary {
    s.names = s.by.iter().map(|k| (k.clone(), display.name(k))).collect();
    for g in &mut s.groups {
        g.display =
            s.by.iter()
                .map(|k| (k.clone(), display.value(k, &g.keys[k])))
                .collect();
    }
    s
}

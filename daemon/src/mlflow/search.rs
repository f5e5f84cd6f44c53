//! MLflow's search grammar (`mlflow/utils/search_utils.py`): filters of clauses joined by `AND` over
//! `metrics.`, `params.`, `tags.`, `attributes.` and `datasets.` (keys may be quoted with backticks or double
//! quotes), `order_by` entries `<identifier> [ASC|DESC]`, view types and page tokens. A run without the
//! metric, parameter or tag a clause names never matches it (except `IS NULL`); in an ordering, missing and NaN
//! values come last.

use super::request::{MlError, MlResult};
use super::validate::SEARCH_MAX_RESULTS;
use super::wire::RunDoc;
use crate::views::projects::Project;
use regex::Regex;
use std::cmp::Ordering;

/// What is searched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Of {
    Runs,
    Experiments,
}

/// What a clause or ordering names.
#[derive(Clone, Debug, PartialEq)]
pub enum Entity {
    Metric(String),
    Param(String),
    Tag(String),
    /// An attribute by its canonical name (`run_id`, `start_time`, `name`, ...).
    Attr(&'static str),
    /// `name`, `digest` or `context` of a run's datasets.
    Dataset(&'static str),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Like,
    ILike,
    In,
    NotIn,
    IsNull,
    IsNotNull,
}

impl Op {
    fn text(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Like => "LIKE",
            Op::ILike => "ILIKE",
            Op::In => "IN",
            Op::NotIn => "NOT IN",
            Op::IsNull => "IS NULL",
            Op::IsNotNull => "IS NOT NULL",
        }
    }
}

impl Entity {
    fn text(&self) -> String {
        match self {
            Entity::Metric(k) => format!("metric '{k}'"),
            Entity::Param(k) => format!("parameter '{k}'"),
            Entity::Tag(k) => format!("tag '{k}'"),
            Entity::Attr(a) => format!("attribute '{a}'"),
            Entity::Dataset(d) => format!("dataset field '{d}'"),
        }
    }
}

#[derive(Clone, Debug)]
enum Lit {
    Num(f64),
    Str(String),
    List(Vec<String>),
    Pattern(Regex),
    Nothing,
}

/// One clause of a filter.
#[derive(Clone, Debug)]
pub struct Clause {
    entity: Entity,
    op: Op,
    value: Lit,
}

const RUN_NUMBER_ATTRS: [&str; 2] = ["start_time", "end_time"];

fn attribute(key: &str, of: Of) -> MlResult<&'static str> {
    let canonical = match (of, key) {
        (Of::Runs, "run_id") => "run_id",
        (Of::Runs, "run_name" | "run name") => "run_name",
        (Of::Runs, "status") => "status",
        (Of::Runs, "user_id") => "user_id",
        (Of::Runs, "artifact_uri") => "artifact_uri",
        (Of::Runs, "lifecycle_stage") => "lifecycle_stage",
        (Of::Runs, "start_time" | "created" | "Created") => "start_time",
        (Of::Runs, "end_time") => "end_time",
        (Of::Experiments, "name") => "name",
        (Of::Experiments, "experiment_id") => "experiment_id",
        (Of::Experiments, "creation_time") => "creation_time",
        (Of::Experiments, "last_update_time") => "last_update_time",
        _ => {
            let valid = match of {
                Of::Runs => "run_id, run_name, status, user_id, artifact_uri, start_time, end_time",
                Of::Experiments => "name, experiment_id, creation_time, last_update_time",
            };
            return Err(MlError::invalid(format!(
                "Invalid attribute key '{key}' specified. Valid keys are {valid}"
            )));
        }
    };
    Ok(canonical)
}

fn numeric_attr(a: &str) -> bool {
    RUN_NUMBER_ATTRS.contains(&a) || matches!(a, "creation_time" | "last_update_time")
}

/// A cursor over the text of a filter or ordering.
struct Text<'a> {
    s: &'a str,
    at: usize,
}

impl<'a> Text<'a> {
    fn rest(&self) -> &'a str {
        &self.s[self.at..]
    }
    fn skip_space(&mut self) {
        let r = self.rest();
        self.at += r.len() - r.trim_start().len();
    }
    fn done(&mut self) -> bool {
        self.skip_space();
        self.at >= self.s.len()
    }
    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }
    /// The next word of letters, digits, `_` and `.`... up to a space, an operator or a quote.
    fn word(&mut self) -> &'a str {
        self.skip_space();
        let r = self.rest();
        let n = r
            .find(|c: char| c.is_whitespace() || "=!<>()'\"`,".contains(c))
            .unwrap_or(r.len());
        self.at += n;
        &r[..n]
    }
    /// Takes `kw` (case-insensitive, as a whole word) if it comes next.
    fn keyword(&mut self, kw: &str) -> bool {
        self.skip_space();
        let r = self.rest();
        let ok = r.len() >= kw.len()
            && r[..kw.len()].eq_ignore_ascii_case(kw)
            && r[kw.len()..]
                .chars()
                .next()
                .is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        if ok {
            self.at += kw.len();
        }
        ok
    }
    /// A string quoted with `q`.
    fn quoted(&mut self, q: char) -> MlResult<String> {
        let r = &self.rest()[1..];
        match r.find(q) {
            Some(end) => {
                self.at += end + 2;
                Ok(r[..end].to_string())
            }
            None => Err(MlError::invalid(format!(
                "Invalid filter: unterminated quote in '{}'",
                self.s
            ))),
        }
    }
}

/// An identifier: `<type>.<key>` (key plain or quoted) or a bare attribute.
fn identifier(t: &mut Text, of: Of) -> MlResult<Entity> {
    t.skip_space();
    let first = match t.peek() {
        Some(q @ ('`' | '"')) => t.quoted(q)?,
        _ => t.word().to_string(),
    };
    if first.is_empty() {
        return Err(MlError::invalid(format!(
            "Invalid filter '{}': expected an identifier at position {}",
            t.s, t.at
        )));
    }
    let (kind, key) = match first.split_once('.') {
        Some((kind, "")) => {
            // `tags.`key`` or `params."a b"`: the key is quoted after the dot.
            let key = match t.peek() {
                Some(q @ ('`' | '"')) => t.quoted(q)?,
                _ => t.word().to_string(),
            };
            (kind.to_string(), Some(key))
        }
        Some((kind, key)) => (kind.to_string(), Some(key.to_string())),
        None => (first.clone(), None),
    };
    let Some(key) = key else {
        return Ok(Entity::Attr(attribute(&kind, of)?));
    };
    let entity = match (kind.to_ascii_lowercase().as_str(), of) {
        ("metric" | "metrics", Of::Runs) => Entity::Metric(key),
        ("param" | "params" | "parameter" | "parameters", Of::Runs) => Entity::Param(key),
        ("tag" | "tags", _) => Entity::Tag(key),
        ("attribute" | "attributes" | "attr" | "run", _) => Entity::Attr(attribute(&key, of)?),
        ("dataset" | "datasets", Of::Runs) => Entity::Dataset(match key.as_str() {
            "name" => "name",
            "digest" => "digest",
            "context" => "context",
            other => {
                return Err(MlError::invalid(format!(
                    "Invalid dataset key '{other}'. Valid keys are name, digest, context"
                )));
            }
        }),
        (other, _) => {
            return Err(MlError::invalid(format!(
                "Invalid entity type '{other}'. Valid values are ['metric', 'parameter', 'tag', 'attribute', 'dataset']"
            )));
        }
    };
    Ok(entity)
}

fn comparator(t: &mut Text) -> MlResult<Op> {
    t.skip_space();
    for (sym, op) in [
        ("!=", Op::Ne),
        ("<=", Op::Le),
        (">=", Op::Ge),
        ("=", Op::Eq),
        ("<", Op::Lt),
        (">", Op::Gt),
    ] {
        if t.rest().starts_with(sym) {
            t.at += sym.len();
            return Ok(op);
        }
    }
    if t.keyword("ILIKE") {
        return Ok(Op::ILike);
    }
    if t.keyword("LIKE") {
        return Ok(Op::Like);
    }
    if t.keyword("IN") {
        return Ok(Op::In);
    }
    if t.keyword("NOT") {
        if t.keyword("IN") {
            return Ok(Op::NotIn);
        }
    } else if t.keyword("IS") {
        if t.keyword("NULL") {
            return Ok(Op::IsNull);
        }
        if t.keyword("NOT") && t.keyword("NULL") {
            return Ok(Op::IsNotNull);
        }
    }
    Err(MlError::invalid(format!(
        "Invalid filter '{}': expected a comparator (=, !=, <, <=, >, >=, LIKE, ILIKE, IN, NOT IN, IS NULL, IS NOT NULL) at position {}",
        t.s, t.at
    )))
}

fn value(t: &mut Text) -> MlResult<Lit> {
    t.skip_space();
    match t.peek() {
        Some(q @ ('\'' | '"')) => Ok(Lit::Str(t.quoted(q)?)),
        Some('(') => {
            t.at += 1;
            let mut items = Vec::new();
            loop {
                t.skip_space();
                match t.peek() {
                    Some(')') => {
                        t.at += 1;
                        break;
                    }
                    Some(',') => t.at += 1,
                    Some(q @ ('\'' | '"')) => items.push(t.quoted(q)?),
                    _ => {
                        return Err(MlError::invalid(format!(
                            "Invalid filter '{}': a list holds quoted strings, as ('a', 'b')",
                            t.s
                        )));
                    }
                }
            }
            Ok(Lit::List(items))
        }
        _ => {
            let w = t.word();
            w.parse::<f64>().map(Lit::Num).map_err(|_| {
                MlError::invalid(format!(
                    "Invalid filter '{}': expected a quoted string or a number, got '{w}'",
                    t.s
                ))
            })
        }
    }
}

/// `%` any run of characters, `_` one, anchored at both ends.
fn like(pattern: &str, fold: bool) -> MlResult<Regex> {
    let mut re = String::from(if fold { "(?is)^" } else { "(?s)^" });
    for c in pattern.chars() {
        match c {
            '%' => re.push_str(".*"),
            '_' => re.push('.'),
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    Regex::new(&re).map_err(|e| MlError::invalid(format!("Invalid LIKE pattern '{pattern}': {e}")))
}

fn check(entity: &Entity, op: Op, value: Lit, of: Of) -> MlResult<Lit> {
    use Op::*;
    let numeric =
        matches!(entity, Entity::Metric(_)) || matches!(entity, Entity::Attr(a) if numeric_attr(a));
    let ops_ok = match entity {
        _ if numeric => matches!(op, Eq | Ne | Lt | Le | Gt | Ge),
        Entity::Param(_) | Entity::Tag(_) => {
            matches!(op, Eq | Ne | Like | ILike | IsNull | IsNotNull)
        }
        Entity::Attr("run_id") => matches!(op, Eq | Ne | Like | ILike | In | NotIn),
        Entity::Attr(_) => matches!(op, Eq | Ne | Like | ILike),
        Entity::Dataset(_) => matches!(op, Eq | Ne | Like | ILike | In | NotIn),
        Entity::Metric(_) => false,
    };
    if !ops_ok {
        return Err(MlError::invalid(format!(
            "Invalid comparator '{}' for {}{}",
            op.text(),
            entity.text(),
            if of == Of::Experiments {
                " in an experiment search"
            } else {
                ""
            }
        )));
    }
    match (op, value) {
        (IsNull | IsNotNull, _) => Ok(Lit::Nothing),
        (_, Lit::Num(n)) if numeric => Ok(Lit::Num(n)),
        (_, Lit::Str(s)) if numeric => s.parse::<f64>().map(Lit::Num).map_err(|_| {
            MlError::invalid(format!(
                "Expected numeric value type for {}, got '{s}'",
                entity.text()
            ))
        }),
        (_, _) if numeric => Err(MlError::invalid(format!(
            "Expected numeric value type for {}",
            entity.text()
        ))),
        (In | NotIn, Lit::List(l)) => Ok(Lit::List(l)),
        (In | NotIn, _) => Err(MlError::invalid(
            "IN and NOT IN take a parenthesised list of quoted strings, as ('a', 'b')",
        )),
        (Like, Lit::Str(s)) => Ok(Lit::Pattern(like(&s, false)?)),
        (ILike, Lit::Str(s)) => Ok(Lit::Pattern(like(&s, true)?)),
        (_, Lit::Str(s)) => Ok(Lit::Str(s)),
        (_, _) => Err(MlError::invalid(format!(
            "Expected a quoted string value for {}",
            entity.text()
        ))),
    }
}

/// The clauses of `filter` (empty: everything matches).
pub fn parse_filter(filter: &str, of: Of) -> MlResult<Vec<Clause>> {
    let mut t = Text { s: filter, at: 0 };
    let mut out = Vec::new();
    if t.done() {
        return Ok(out);
    }
    loop {
        let entity = identifier(&mut t, of)?;
        let op = comparator(&mut t)?;
        let v = if matches!(op, Op::IsNull | Op::IsNotNull) {
            Lit::Nothing
        } else {
            value(&mut t)?
        };
        out.push(Clause {
            value: check(&entity, op, v, of)?,
            entity,
            op,
        });
        if t.done() {
            return Ok(out);
        }
        if t.keyword("OR") {
            return Err(MlError::invalid(format!(
                "Invalid clause(s) in filter string: 'OR' ('{filter}'): MLflow's search joins clauses with AND only"
            )));
        }
        if !t.keyword("AND") {
            return Err(MlError::invalid(format!(
                "Invalid filter '{filter}': expected AND at position {}",
                t.at
            )));
        }
    }
}

/// A value a clause or ordering reads from a run or an experiment.
#[derive(Clone, Debug, PartialEq)]
enum Got {
    Num(f64),
    Str(String),
    Many(Vec<String>),
    Missing,
}

fn run_value(r: &RunDoc, e: &Entity) -> Got {
    let s = |v: Option<&String>| v.map_or(Got::Missing, |v| Got::Str(v.clone()));
    match e {
        Entity::Metric(k) => r.latest.get(k).map_or(Got::Missing, |l| Got::Num(l.value)),
        Entity::Param(k) => s(r.params.get(k)),
        Entity::Tag(k) => s(r.tags.get(k)),
        Entity::Attr("run_id") => Got::Str(r.id.clone()),
        Entity::Attr("run_name") => Got::Str(r.name.clone()),
        Entity::Attr("status") => Got::Str(r.status.into()),
        Entity::Attr("user_id") => Got::Str(r.user.clone()),
        Entity::Attr("artifact_uri") => Got::Str(r.artifact_uri.clone()),
        Entity::Attr("lifecycle_stage") => {
            Got::Str(if r.deleted { "deleted" } else { "active" }.into())
        }
        Entity::Attr("start_time") => Got::Num(r.start as f64),
        Entity::Attr("end_time") => r.end.map_or(Got::Missing, |e| Got::Num(e as f64)),
        Entity::Attr(_) => Got::Missing,
        Entity::Dataset(field) => Got::Many(
            r.inputs
                .iter()
                .filter_map(|i| {
                    if *field == "context" {
                        i.get("tags")?
                            .as_array()?
                            .iter()
                            .find(|t| {
                                t.get("key").and_then(|k| k.as_str()) == Some("mlflow.data.context")
                            })?
                            .get("value")?
                            .as_str()
                            .map(String::from)
                    } else {
                        i.get("dataset")?.get(field)?.as_str().map(String::from)
                    }
                })
                .collect(),
        ),
    }
}

fn project_value(p: &Project, e: &Entity) -> Got {
    match e {
        Entity::Tag(k) => p.tags.get(k).map_or(Got::Missing, |v| Got::Str(v.clone())),
        Entity::Attr("name") => Got::Str(p.name.clone()),
        Entity::Attr("experiment_id") => Got::Str(p.id.clone()),
        Entity::Attr("creation_time") => Got::Num((p.created / 1000) as f64),
        Entity::Attr("last_update_time") => Got::Num((p.updated / 1000) as f64),
        _ => Got::Missing,
    }
}

impl Clause {
    fn holds(&self, got: Got) -> bool {
        let one = |s: &str| match (&self.op, &self.value) {
            (Op::Eq, Lit::Str(v)) => s == v,
            (Op::Ne, Lit::Str(v)) => s != v,
            (Op::Like | Op::ILike, Lit::Pattern(re)) => re.is_match(s),
            (Op::In, Lit::List(l)) => l.iter().any(|v| v == s),
            (Op::NotIn, Lit::List(l)) => !l.iter().any(|v| v == s),
            _ => false,
        };
        match got {
            Got::Missing => self.op == Op::IsNull,
            _ if self.op == Op::IsNull => false,
            _ if self.op == Op::IsNotNull => true,
            Got::Num(x) => match (&self.op, &self.value) {
                (Op::Eq, Lit::Num(v)) => x == *v,
                (Op::Ne, Lit::Num(v)) => x != *v,
                (Op::Lt, Lit::Num(v)) => x < *v,
                (Op::Le, Lit::Num(v)) => x <= *v,
                (Op::Gt, Lit::Num(v)) => x > *v,
                (Op::Ge, Lit::Num(v)) => x >= *v,
                _ => false,
            },
            Got::Str(s) => one(&s),
            Got::Many(items) => match self.op {
                Op::Ne | Op::NotIn => items.iter().all(|s| one(s)) && !items.is_empty(),
                _ => items.iter().any(|s| one(s)),
            },
        }
    }

    pub fn holds_for_run(&self, r: &RunDoc) -> bool {
        self.holds(run_value(r, &self.entity))
    }

    pub fn holds_for_project(&self, p: &Project) -> bool {
        self.holds(project_value(p, &self.entity))
    }
}

/// One `order_by` entry.
#[derive(Clone, Debug)]
pub struct Order {
    entity: Entity,
    ascending: bool,
}

/// The `order_by` entries.
pub fn parse_order(entries: &[String], of: Of) -> MlResult<Vec<Order>> {
    entries
        .iter()
        .map(|e| {
            let mut t = Text { s: e, at: 0 };
            let entity = identifier(&mut t, of)?;
            let ascending = !t.keyword("DESC");
            if ascending {
                t.keyword("ASC");
            }
            if !t.done() {
                return Err(MlError::invalid(format!(
                    "Invalid order_by clause '{e}': expected '<identifier> [ASC|DESC]'"
                )));
            }
            if matches!(entity, Entity::Dataset(_)) {
                return Err(MlError::invalid(format!(
                    "Invalid order_by clause '{e}': runs are not ordered by datasets"
                )));
            }
            Ok(Order { entity, ascending })
        })
        .collect()
}

/// Compares two values of one ordering: missing and NaN last whatever the direction.
fn compare(a: &Got, b: &Got, ascending: bool) -> Ordering {
    let rank = |g: &Got| match g {
        Got::Num(x) if x.is_nan() => 1,
        Got::Missing => 1,
        _ => 0,
    };
    match rank(a).cmp(&rank(b)) {
        Ordering::Equal if rank(a) == 1 => Ordering::Equal,
        Ordering::Equal => {
            let o = match (a, b) {
                (Got::Num(x), Got::Num(y)) => x.total_cmp(y),
                (Got::Str(x), Got::Str(y)) => x.cmp(y),
                _ => Ordering::Equal,
            };
            if ascending { o } else { o.reverse() }
        }
        other => other,
    }
}

/// Sorts runs by `order`, then MLflow's default: newest start first, then run id.
pub fn sort_runs(runs: &mut [RunDoc], order: &[Order]) {
    runs.sort_by(|a, b| {
        for o in order {
            let c = compare(
                &run_value(a, &o.entity),
                &run_value(b, &o.entity),
                o.ascending,
            );
            if c != Ordering::Equal {
                return c;
            }
        }
        b.start.cmp(&a.start).then_with(|| a.id.cmp(&b.id))
    });
}

/// Sorts experiments by `order`, then by latest update first and id.
pub fn sort_projects(projects: &mut [Project], order: &[Order]) {
    let id = |p: &Project| (p.id.parse::<u64>().unwrap_or(u64::MAX), p.id.clone());
    projects.sort_by(|a, b| {
        for o in order {
            let c = if o.entity == Entity::Attr("experiment_id") {
                let c = id(a).cmp(&id(b));
                if o.ascending { c } else { c.reverse() }
            } else {
                compare(
                    &project_value(a, &o.entity),
                    &project_value(b, &o.entity),
                    o.ascending,
                )
            };
            if c != Ordering::Equal {
                return c;
            }
        }
        b.updated.cmp(&a.updated).then_with(|| id(a).cmp(&id(b)))
    });
}

/// Which lifecycle a search shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ViewType {
    Active,
    Deleted,
    All,
}

impl ViewType {
    pub fn shows(self, deleted: bool) -> bool {
        match self {
            ViewType::Active => !deleted,
            ViewType::Deleted => deleted,
            ViewType::All => true,
        }
    }
}

pub fn view_type(v: Option<&str>) -> MlResult<ViewType> {
    match v {
        None | Some("ACTIVE_ONLY" | "1" | "") => Ok(ViewType::Active),
        Some("DELETED_ONLY" | "2") => Ok(ViewType::Deleted),
        Some("ALL" | "3") => Ok(ViewType::All),
        Some(other) => Err(MlError::invalid(format!(
            "Invalid view type '{other}': expected ACTIVE_ONLY, DELETED_ONLY or ALL"
        ))),
    }
}

/// `max_results`, `default` when absent, at most [`SEARCH_MAX_RESULTS`].
pub fn max_results(given: Option<i64>, default: i64) -> MlResult<usize> {
    let n = given.unwrap_or(default);
    if !(1..=SEARCH_MAX_RESULTS).contains(&n) {
        return Err(MlError::invalid(format!(
            "Invalid value {n} for parameter 'max_results' supplied. It must be at least 1 and at most {SEARCH_MAX_RESULTS}"
        )));
    }
    Ok(n as usize)
}

/// The page of `items` a token starts (the token is the offset), and the next page's token when there is more.
pub fn page<'a, T>(
    items: &'a [T],
    max: usize,
    token: Option<&str>,
) -> MlResult<(&'a [T], Option<String>)> {
    let start = match token.filter(|t| !t.is_empty()) {
        None => 0,
        Some(t) => t
            .parse::<usize>()
            .map_err(|_| MlError::invalid(format!("Invalid page token '{t}'")))?,
    };
    let start = start.min(items.len());
    let end = start.saturating_add(max).min(items.len());
    let next = (end < items.len()).then(|| end.to_string());
    Ok((&items[start..end], next))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::mlflow::Latest;
    use serde_json::json;

    fn run(id: &str, start: i64, loss: Option<f64>, lr: &str) -> RunDoc {
        RunDoc {
            id: id.into(),
            name: format!("name-{id}"),
            project: "1".into(),
            user: "ana".into(),
            status: "FINISHED",
            final_status: true,
            start,
            end: Some(start + 10),
            artifact_uri: format!("mlflow-artifacts:/1/{id}/artifacts"),
            deleted: false,
            params: [("lr".to_string(), lr.to_string())].into(),
            tags: [("mlflow.runName".to_string(), format!("name-{id}"))].into(),
            latest: loss
                .map(|v| {
                    (
                        "loss".to_string(),
                        Latest {
                            step: 1,
                            timestamp: 1,
                            value: v,
                        },
                    )
                })
                .into_iter()
                .collect(),
            inputs: vec![
                json!({"dataset": {"name": "mnist", "digest": "abc"}, "tags": [{"key": "mlflow.data.context", "value": "train"}]}),
            ],
        }
    }

    fn matching(filter: &str, runs: &[RunDoc]) -> Vec<String> {
        let clauses = parse_filter(filter, Of::Runs).expect(filter);
        runs.iter()
            .filter(|r| clauses.iter().all(|c| c.holds_for_run(r)))
            .map(|r| r.id.clone())
            .collect()
    }

    #[test]
    fn filters_follow_mlflows_grammar() {
        let runs = [
            run("a", 3, Some(0.5), "0.01"),
            run("b", 2, Some(1.5), "0.1"),
            run("c", 1, None, "0.01"),
            run("d", 0, Some(f64::NAN), "x"),
        ];
        assert_eq!(matching("", &runs), ["a", "b", "c", "d"]);
        assert_eq!(matching("metrics.loss < 1", &runs), ["a"]);
        assert_eq!(
            matching("metric.loss >= 0.5 and params.lr = '0.01'", &runs),
            ["a"]
        );
        assert_eq!(matching("params.lr = \"0.01\"", &runs), ["a", "c"]);
        assert_eq!(matching("params.lr != '0.01'", &runs), ["b", "d"]);
        assert_eq!(matching("params.lr LIKE '0.%'", &runs), ["a", "b", "c"]);
        assert_eq!(matching("params.lr ILIKE 'X'", &runs), ["d"]);
        assert_eq!(
            matching("params.missing IS NULL", &runs),
            ["a", "b", "c", "d"]
        );
        assert!(parse_filter("metrics.loss IS NOT NULL", Of::Runs).is_err());
        assert_eq!(matching("tags.`mlflow.runName` = 'name-b'", &runs), ["b"]);
        assert_eq!(matching("tags.\"mlflow.runName\" LIKE '%-c'", &runs), ["c"]);
        assert_eq!(
            matching("attributes.run_id IN ('a', 'c')", &runs),
            ["a", "c"]
        );
        assert_eq!(matching("run_name = 'name-d'", &runs), ["d"]);
        assert_eq!(
            matching("attributes.start_time > 1 AND status = 'FINISHED'", &runs),
            ["a", "b"]
        );
        assert_eq!(matching("created < 1", &runs), ["d"]);
        assert_eq!(
            matching(
                "datasets.name = 'mnist' and datasets.context = 'train'",
                &runs
            )
            .len(),
            4
        );
    }

    #[test]
    fn bad_filters_say_what_is_wrong() {
        for (f, says) in [
            ("metrics.loss < 1 OR params.lr = 'x'", "'OR'"),
            ("metrics.loss = 'x'", "numeric"),
            ("params.lr = 0.01", "quoted string"),
            ("params.lr < '1'", "comparator"),
            ("foo.bar = 'x'", "entity type"),
            ("nonsense = 'x'", "attribute key"),
            ("params.lr = 'x", "unterminated"),
            ("params.lr = 'x' params.b = 'y'", "expected AND"),
        ] {
            let e = parse_filter(f, Of::Runs).expect_err(f);
            assert_eq!(e.code, "INVALID_PARAMETER_VALUE");
            assert!(e.message.contains(says), "{f}: {}", e.message);
        }
        assert!(parse_filter("name = 'x'", Of::Experiments).is_ok());
        assert!(parse_filter("params.a = 'x'", Of::Experiments).is_err());
    }

    #[test]
    fn orderings_put_missing_and_nan_last_then_mlflows_default() {
        let mut runs = vec![
            run("a", 3, Some(0.5), "1"),
            run("b", 2, None, "2"),
            run("c", 1, Some(f64::NAN), "3"),
            run("d", 0, Some(0.1), "4"),
            run("e", 5, Some(0.5), "5"),
        ];
        let ids = |r: &[RunDoc]| r.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
        sort_runs(
            &mut runs,
            &parse_order(&["metrics.loss".into()], Of::Runs).expect("asc"),
        );
        assert_eq!(ids(&runs), ["d", "e", "a", "b", "c"]);
        sort_runs(
            &mut runs,
            &parse_order(&["metrics.loss DESC".into()], Of::Runs).expect("desc"),
        );
        assert_eq!(ids(&runs), ["e", "a", "d", "b", "c"]);
        sort_runs(&mut runs, &[]);
        assert_eq!(ids(&runs), ["e", "a", "b", "c", "d"]);
        assert!(parse_order(&["metrics.loss DESCENDING".into()], Of::Runs).is_err());
    }

    #[test]
    fn pages_follow_their_tokens() {
        let items: Vec<u32> = (0..5).collect();
        let (p, next) = page(&items, 2, None).expect("first");
        assert_eq!((p, next.as_deref()), (&[0, 1][..], Some("2")));
        let (p, next) = page(&items, 2, Some("4")).expect("last");
        assert_eq!((p, next), (&[4][..], None));
        assert!(page(&items, 2, Some("zz")).is_err());
        assert!(max_results(Some(50001), 1000).is_err());
        assert_eq!(max_results(None, 1000).expect("default"), 1000);
    }
}

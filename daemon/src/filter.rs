//! The filter expression language over runs: `optim.lr < 1e-3 and status == "completed"`,
//! `tag in ["a", "b"] or not exists summary.final.test_acc`, `name ~ "^bert-"`, `name like "mlp-*"`.
//!
//! ```text
//! expr  := and ("or" and)*            and := not ("and" not)*          not := "not" not | atom
//! atom  := "(" expr ")" | "exists" field | field op value | field ["not"] "in" "[" value, ... "]"
//!        | field "~" "regex" | field "like" "glob"
//! op    := == | = | != | < | <= | > | >=          value := number | "string" | 'string' | true | false | null
//! ```
//! Fields: `id`, `name`, `status` (`stale` included), `host`, `description`, `config_hash`, `tag` (true when any
//! tag matches), `started`, `ended`, `last_activity` (times: compare with RFC 3339 text, a date `YYYY-MM-DD`
//! or Unix seconds), `params.<path>` (or the bare path: `optim.lr`, `layers.0.units`), `summary.<group>.<path>`,
//! `metric.<key>` (last value; also `metric_min.`, `metric_max.`, `metric_points.`). Metric keys may hold `/`
//! (`metric.val/acc`); a field with other characters is written in backquotes. A field a run lacks makes every
//! comparison false (`exists` tells); `== null` is true for a missing or null value.

use crate::views::registry::Record;
use labd_schemas::number::Num;
use labd_schemas::time::parse_rfc3339_micros;
use serde_json::Value;
use std::cmp::Ordering;

/// A bad expression: where (0-based character column) and what.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("filter expression, column {col}: {message}\n  {expr}\n  {caret}^", col = .column + 1, caret = " ".repeat(*.column))]
pub struct FilterError {
    pub column: usize,
    pub message: String,
    pub expr: String,
}

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Or(Box<Filter>, Box<Filter>),
    And(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Exists(Field),
    Compare(Field, Op, Lit),
    In(Field, Vec<Lit>),
    Regex(Field, Pattern),
    Like(Field, String),
}

/// A compiled regular expression (compared by its text).
#[derive(Debug, Clone)]
pub struct Pattern(pub regex::Regex);

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A literal value.
#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    /// Integers written without a point or exponent stay integers; compared by exact value.
    Num(Num),
    Str(String),
    Bool(bool),
    Null,
}

/// What a field names.
#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    Id,
    Name,
    Status,
    Host,
    Description,
    ConfigHash,
    Tag,
    Started,
    Ended,
    LastActivity,
    Param(Vec<String>),
    Summary(String, Vec<String>),
    Metric(MetricStat, String),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MetricStat {
    Last,
    Min,
    Max,
    Points,
}

impl Field {
    fn from_path(path: &str) -> Field {
        let split = |rest: &str| rest.split('.').map(str::to_string).collect::<Vec<_>>();
        match path {
            "id" => Field::Id,
            "name" => Field::Name,
            "status" => Field::Status,
            "host" => Field::Host,
            "description" => Field::Description,
            "config_hash" => Field::ConfigHash,
            "tag" | "tags" => Field::Tag,
            "started" => Field::Started,
            "ended" => Field::Ended,
            "last_activity" => Field::LastActivity,
            _ => {
                if let Some(rest) = path.strip_prefix("params.") {
                    Field::Param(split(rest))
                } else if let Some(rest) = path.strip_prefix("summary.") {
                    let mut parts = rest.splitn(2, '.');
                    let group = parts.next().unwrap_or_default().to_string();
                    Field::Summary(group, parts.next().map(split).unwrap_or_default())
                } else if let Some(key) = path.strip_prefix("metric.") {
                    Field::Metric(MetricStat::Last, key.to_string())
                } else if let Some(key) = path.strip_prefix("metric_min.") {
                    Field::Metric(MetricStat::Min, key.to_string())
                } else if let Some(key) = path.strip_prefix("metric_max.") {
                    Field::Metric(MetricStat::Max, key.to_string())
                } else if let Some(key) = path.strip_prefix("metric_points.") {
                    Field::Metric(MetricStat::Points, key.to_string())
                } else {
                    Field::Param(split(path))
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Lexer

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(Num),
    Op(Op),
    Tilde,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    End,
}

fn lex(expr: &str) -> Result<Vec<(usize, Tok)>, (usize, String)> {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let ident_char = |c: char| c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | '/' | '@');
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let tok = match c {
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            '[' => Tok::LBracket,
            ']' => Tok::RBracket,
            ',' => Tok::Comma,
            '~' => Tok::Tilde,
            '=' | '!' | '<' | '>' => {
                let next = chars.get(i + 1).copied();
                let (op, len) = match (c, next) {
                    ('=', Some('=')) => (Op::Eq, 2),
                    ('=', _) => (Op::Eq, 1),
                    ('!', Some('=')) => (Op::Ne, 2),
                    ('<', Some('=')) => (Op::Le, 2),
                    ('<', _) => (Op::Lt, 1),
                    ('>', Some('=')) => (Op::Ge, 2),
                    ('>', _) => (Op::Gt, 1),
                    _ => return Err((i, "expected `!=`; use `not` to negate".into())),
                };
                out.push((start, Tok::Op(op)));
                i += len;
                continue;
            }
            '"' | '\'' | '`' => {
                let quote = c;
                let mut text = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err((start, format!("unterminated {quote}...{quote}"))),
                        Some('\\') if quote != '`' => {
                            match chars.get(i + 1) {
                                Some(&e) => text.push(match e {
                                    'n' => '\n',
                                    't' => '\t',
                                    other => other,
                                }),
                                None => return Err((i, "a backslash ends the expression".into())),
                            }
                            i += 2;
                        }
                        Some(&ch) if ch == quote => {
                            i += 1;
                            break;
                        }
                        Some(&ch) => {
                            text.push(ch);
                            i += 1;
                        }
                    }
                }
                out.push((
                    start,
                    if quote == '`' {
                        Tok::Ident(text)
                    } else {
                        Tok::Str(text)
                    },
                ));
                continue;
            }
            c if c.is_ascii_digit()
                || ((c == '-' || c == '+' || c == '.')
                    && chars
                        .get(i + 1)
                        .is_some_and(|n| n.is_ascii_digit() || *n == '.')) =>
            {
                let mut j = i + 1;
                while j < chars.len()
                    && (chars[j].is_ascii_alphanumeric() || matches!(chars[j], '.' | '+' | '-'))
                {
                    // a sign only right after an exponent
                    if matches!(chars[j], '+' | '-') && !matches!(chars[j - 1], 'e' | 'E') {
                        break;
                    }
                    j += 1;
                }
                let text: String = chars[i..j].iter().collect();
                let n =
                    Num::parse(&text).ok_or_else(|| (i, format!("{text:?} is not a number")))?;
                out.push((start, Tok::Num(n)));
                i = j;
                continue;
            }
            c if ident_char(c) => {
                let mut j = i;
                while j < chars.len() && ident_char(chars[j]) {
                    j += 1;
                }
                out.push((start, Tok::Ident(chars[i..j].iter().collect())));
                i = j;
                continue;
            }
            other => return Err((i, format!("unexpected character {other:?}"))),
        };
        out.push((start, tok));
        i += 1;
    }
    out.push((chars.len(), Tok::End));
    Ok(out)
}

// ---------------------------------------------------------------------------------------------------------
// Parser

struct Parser {
    toks: Vec<(usize, Tok)>,
    at: usize,
}

type PResult<T> = Result<T, (usize, String)>;

impl Parser {
    fn peek(&self) -> &Tok {
        &self.toks[self.at].1
    }

    fn pos(&self) -> usize {
        self.toks[self.at].0
    }

    fn next(&mut self) -> (usize, Tok) {
        let t = self.toks[self.at].clone();
        if self.at + 1 < self.toks.len() {
            self.at += 1;
        }
        t
    }

    fn keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Tok::Ident(w) if w.eq_ignore_ascii_case(word))
    }

    fn or(&mut self) -> PResult<Filter> {
        let mut left = self.and()?;
        while self.keyword("or") {
            self.next();
            left = Filter::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> PResult<Filter> {
        let mut left = self.not()?;
        while self.keyword("and") {
            self.next();
            left = Filter::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> PResult<Filter> {
        if self.keyword("not") {
            self.next();
            return Ok(Filter::Not(Box::new(self.not()?)));
        }
        self.atom()
    }

    fn atom(&mut self) -> PResult<Filter> {
        if *self.peek() == Tok::LParen {
            self.next();
            let inner = self.or()?;
            let (pos, t) = self.next();
            if t != Tok::RParen {
                return Err((pos, "expected `)`".into()));
            }
            return Ok(inner);
        }
        if self.keyword("exists") {
            self.next();
            return Ok(Filter::Exists(self.field()?));
        }
        let field = self.field()?;
        let (pos, t) = self.next();
        match t {
            Tok::Op(op) => Ok(Filter::Compare(field, op, self.value()?)),
            Tok::Tilde => {
                let (p, t) = self.next();
                let Tok::Str(re) = t else {
                    return Err((p, "expected a quoted regular expression after `~`".into()));
                };
                let compiled = regex::Regex::new(&re)
                    .map_err(|e| (p, format!("bad regular expression: {e}")))?;
                Ok(Filter::Regex(field, Pattern(compiled)))
            }
            Tok::Ident(w) if w.eq_ignore_ascii_case("like") => {
                let (p, t) = self.next();
                let Tok::Str(glob) = t else {
                    return Err((p, "expected a quoted pattern after `like`".into()));
                };
                Ok(Filter::Like(field, glob))
            }
            Tok::Ident(w) if w.eq_ignore_ascii_case("in") => Ok(Filter::In(field, self.list()?)),
            Tok::Ident(w) if w.eq_ignore_ascii_case("not") && self.keyword("in") => {
                self.next();
                Ok(Filter::Not(Box::new(Filter::In(field, self.list()?))))
            }
            Tok::End => Err((
                pos,
                "expected a comparison (==, !=, <, <=, >, >=, in, ~, like) after the field".into(),
            )),
            other => Err((
                pos,
                format!(
                    "expected a comparison (==, !=, <, <=, >, >=, in, ~, like), found {}",
                    describe(&other)
                ),
            )),
        }
    }

    fn field(&mut self) -> PResult<Field> {
        let (pos, t) = self.next();
        match t {
            Tok::Ident(name)
                if !matches!(
                    name.to_ascii_lowercase().as_str(),
                    "and" | "or" | "not" | "in" | "like" | "exists"
                ) =>
            {
                Ok(Field::from_path(&name))
            }
            other => Err((
                pos,
                format!(
                    "expected a field (e.g. optim.lr, status, metric.val/acc), found {}",
                    describe(&other)
                ),
            )),
        }
    }

    fn value(&mut self) -> PResult<Lit> {
        let (pos, t) = self.next();
        match t {
            Tok::Num(n) => Ok(Lit::Num(n)),
            Tok::Str(s) => Ok(Lit::Str(s)),
            Tok::Ident(w) if w == "true" => Ok(Lit::Bool(true)),
            Tok::Ident(w) if w == "false" => Ok(Lit::Bool(false)),
            Tok::Ident(w) if w == "null" || w == "None" => Ok(Lit::Null),
            Tok::Ident(w) => Err((pos, format!("expected a value; quote text: \"{w}\""))),
            other => Err((
                pos,
                format!(
                    "expected a value (number, \"text\", true, false, null), found {}",
                    describe(&other)
                ),
            )),
        }
    }

    fn list(&mut self) -> PResult<Vec<Lit>> {
        let (pos, t) = self.next();
        if t != Tok::LBracket {
            return Err((pos, "expected `[` to start the list".into()));
        }
        let mut items = Vec::new();
        if *self.peek() == Tok::RBracket {
            self.next();
            return Ok(items);
        }
        loop {
            items.push(self.value()?);
            let (pos, t) = self.next();
            match t {
                Tok::Comma => continue,
                Tok::RBracket => return Ok(items),
                _ => return Err((pos, "expected `,` or `]` in the list".into())),
            }
        }
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Ident(w) => format!("`{w}`"),
        Tok::Str(s) => format!("{s:?}"),
        Tok::Num(n) => n.to_string(),
        Tok::Op(_) => "an operator".into(),
        Tok::Tilde => "`~`".into(),
        Tok::LParen => "`(`".into(),
        Tok::RParen => "`)`".into(),
        Tok::LBracket => "`[`".into(),
        Tok::RBracket => "`]`".into(),
        Tok::Comma => "`,`".into(),
        Tok::End => "the end".into(),
    }
}

impl std::str::FromStr for Filter {
    type Err = FilterError;

    fn from_str(expr: &str) -> Result<Filter, FilterError> {
        let fail = |(column, message): (usize, String)| FilterError {
            column,
            message,
            expr: expr.to_string(),
        };
        let toks = lex(expr).map_err(fail)?;
        let mut p = Parser { toks, at: 0 };
        if *p.peek() == Tok::End {
            return Err(fail((0, "empty expression".into())));
        }
        let f = p.or().map_err(fail)?;
        if *p.peek() != Tok::End {
            return Err(fail((
                p.pos(),
                format!(
                    "did not expect {} here (missing `and`/`or`?)",
                    describe(p.peek())
                ),
            )));
        }
        Ok(f)
    }
}

// ---------------------------------------------------------------------------------------------------------
// Evaluation

/// A field's value in one run.
#[derive(Debug, Clone, PartialEq)]
enum Val<'a> {
    Num(Num),
    Str(std::borrow::Cow<'a, str>),
    Bool(bool),
    Null,
    /// Unix microseconds.
    Time(i64),
    /// Several values (tags): a test holds when it holds for one.
    Many(Vec<Val<'a>>),
    Other,
}

/// What evaluation needs besides the run: the time now and the stale threshold (for `status`).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub now: i64,
    pub stale_after: i64,
}

impl Filter {
    /// Whether the run matches.
    pub fn matches(&self, r: &Record, clock: Clock) -> bool {
        match self {
            Filter::Or(a, b) => a.matches(r, clock) || b.matches(r, clock),
            Filter::And(a, b) => a.matches(r, clock) && b.matches(r, clock),
            Filter::Not(a) => !a.matches(r, clock),
            Filter::Exists(f) => lookup(f, r, clock).is_some_and(|v| v != Val::Null),
            Filter::Compare(f, op, lit) => match lookup(f, r, clock) {
                None => *op == Op::Eq && *lit == Lit::Null,
                Some(v) => any(&v, &|x| compare(x, *op, lit)),
            },
            Filter::In(f, items) => lookup(f, r, clock)
                .is_some_and(|v| any(&v, &|x| items.iter().any(|l| compare(x, Op::Eq, l)))),
            Filter::Regex(f, re) => lookup(f, r, clock)
                .is_some_and(|v| any(&v, &|x| text(x).is_some_and(|t| re.0.is_match(&t)))),
            Filter::Like(f, glob) => lookup(f, r, clock)
                .is_some_and(|v| any(&v, &|x| text(x).is_some_and(|t| glob_match(glob, &t)))),
        }
    }
}

fn any(v: &Val<'_>, test: &dyn Fn(&Val<'_>) -> bool) -> bool {
    match v {
        Val::Many(items) => items.iter().any(test),
        one => test(one),
    }
}

fn text<'a>(v: &'a Val<'a>) -> Option<std::borrow::Cow<'a, str>> {
    match v {
        Val::Str(s) => Some(std::borrow::Cow::Borrowed(s.as_ref())),
        Val::Num(n) => Some(std::borrow::Cow::Owned(n.to_string())),
        Val::Bool(b) => Some(std::borrow::Cow::Owned(b.to_string())),
        _ => None,
    }
}

fn json_val(v: &Value) -> Val<'_> {
    match v {
        Value::Null => Val::Null,
        Value::Bool(b) => Val::Bool(*b),
        Value::Number(n) => Val::Num(Num::of_json(n)),
        Value::String(s) => Val::Str(std::borrow::Cow::Borrowed(s)),
        _ => Val::Other,
    }
}

/// Walks `path` into nested JSON (object keys, list indices).
pub fn walk<'a>(mut v: &'a Value, path: &[String]) -> Option<&'a Value> {
    for part in path {
        v = match v {
            Value::Object(m) => m.get(part)?,
            Value::Array(items) => items.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(v)
}

fn lookup<'a>(f: &Field, r: &'a Record, clock: Clock) -> Option<Val<'a>> {
    use std::borrow::Cow::{Borrowed, Owned};
    Some(match f {
        Field::Id => Val::Str(Borrowed(r.id.as_str())),
        Field::Name => Val::Str(Borrowed(&r.name)),
        Field::Status => Val::Str(Owned(
            r.shown_status(clock.now, clock.stale_after)
                .as_str()
                .to_string(),
        )),
        Field::Host => Val::Str(Borrowed(&r.host)),
        Field::Description => Val::Str(Borrowed(r.description.as_deref()?)),
        Field::ConfigHash => Val::Str(Borrowed(&r.config_hash)),
        Field::Tag => Val::Many(r.tags.iter().map(|t| Val::Str(Borrowed(t))).collect()),
        Field::Started => Val::Time(r.started),
        Field::Ended => Val::Time(r.ended?),
        Field::LastActivity => Val::Time(r.last_activity),
        Field::Param(path) => json_val(walk(&r.config, path)?),
        Field::Summary(group, path) => json_val(walk(r.summaries.get(group)?, path)?),
        Field::Metric(stat, key) => {
            let m = r.metrics.get(key)?;
            match stat {
                MetricStat::Last => Val::Num(Num::Float(m.last?)),
                MetricStat::Min => Val::Num(Num::Float(m.min?)),
                MetricStat::Max => Val::Num(Num::Float(m.max?)),
                MetricStat::Points => Val::Num(Num::Int(i128::from(m.points))),
            }
        }
    })
}

/// A literal as a time: RFC 3339, a date, or Unix seconds.
fn lit_time(l: &Lit) -> Option<i64> {
    match l {
        Lit::Num(s) => Some((s.as_f64() * 1e6).round() as i64),
        Lit::Str(s) => parse_rfc3339_micros(s).ok().or_else(|| {
            chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc().timestamp_micros())
        }),
        _ => None,
    }
}

fn compare(v: &Val<'_>, op: Op, lit: &Lit) -> bool {
    let ord: Option<Ordering> = match (v, lit) {
        (Val::Null, Lit::Null) => Some(Ordering::Equal),
        (_, Lit::Null) | (Val::Null, _) => return op == Op::Ne,
        (Val::Num(a), Lit::Num(b)) => a.exact_cmp(b),
        (Val::Str(a), Lit::Str(b)) => Some(a.as_ref().cmp(b.as_str())),
        (Val::Bool(a), Lit::Bool(b)) => Some(a.cmp(b)),
        (Val::Time(t), l) => lit_time(l).map(|x| t.cmp(&x)),
        // Numbers written as text in a config ("0.001") still compare as numbers.
        (Val::Str(a), Lit::Num(b)) => Num::parse(a).and_then(|a| a.exact_cmp(b)),
        _ => None,
    };
    let Some(ord) = ord else { return false };
    match op {
        Op::Eq => ord == Ordering::Equal,
        Op::Ne => ord != Ordering::Equal,
        Op::Lt => ord == Ordering::Less,
        Op::Le => ord != Ordering::Greater,
        Op::Gt => ord == Ordering::Greater,
        Op::Ge => ord != Ordering::Less,
    }
}

/// `*` and `?` glob, whole-string. Linear time (one backtrack point, the last `*`), so no pattern is slow.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, s): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, si));
            pi += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use labd_schemas::api::MetricStats;
    use labd_schemas::{ExperimentId, RunStatus};
    use serde_json::json;

    fn run(name: &str, config: Value, tags: &[&str], status: RunStatus) -> Record {
        Record {
            id: ExperimentId(format!("20250101_000000_{name}_00000000")),
            name: name.into(),
            description: None,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            config,
            config_hash: "h".into(),
            host: "gpu01".into(),
            started: 1_735_689_600_000_000, // 2025-01-01T00:00:00Z
            status,
            status_notes: None,
            ended: None,
            last_activity: 1_735_689_600_000_000,
            sources: vec![],
            summaries: [(
                "final".to_string(),
                json!({"test_acc": 0.91, "bias": {"gmb": 0.2}}),
            )]
            .into(),
            artifacts: vec![],
            messages: 0,
            metrics: [(
                "val/acc".to_string(),
                MetricStats {
                    points: 10,
                    last: Some(0.8),
                    min: Some(0.1),
                    max: Some(0.85),
                    ..Default::default()
                },
            )]
            .into(),
            extra: Default::default(),
            ranges: vec![],
        }
    }

    fn m(expr: &str, r: &Record) -> bool {
        let clock = Clock {
            now: r.last_activity + 1,
            stale_after: 600_000_000,
        };
        expr.parse::<Filter>()
            .unwrap_or_else(|e| panic!("{e}"))
            .matches(r, clock)
    }

    #[test]
    fn params_summaries_metrics_tags_status_and_times() {
        let r = run(
            "bert-base",
            json!({"optim": {"lr": 0.0005, "name": "adam"}, "layers": [{"units": 64}], "seed": 3, "flag": true, "init": null}),
            &["nlp", "bert"],
            RunStatus::Completed,
        );
        assert!(m("optim.lr < 1e-3", &r));
        assert!(m("params.optim.lr <= 5e-4 and optim.lr >= 0.0005", &r));
        assert!(!m("optim.lr > 1e-3", &r));
        assert!(m("layers.0.units == 64", &r));
        assert!(m("optim.name = \"adam\" and flag == true", &r));
        assert!(m("init == null", &r));
        assert!(!m("exists init", &r));
        assert!(m("missing == null and not exists missing", &r));
        assert!(
            !m("missing != 1", &r),
            "a missing field makes comparisons false"
        );
        assert!(m(
            "summary.final.test_acc > 0.9 and summary.final.bias.gmb < 0.3",
            &r
        ));
        assert!(m(
            "metric.val/acc >= 0.8 and metric_max.val/acc == 0.85 and metric_points.val/acc == 10",
            &r
        ));
        assert!(m(
            "tag == \"bert\" and tag in [\"x\", \"nlp\"] and not tag == \"cv\"",
            &r
        ));
        assert!(m(
            "status == 'completed' and status in ['completed', 'failed']",
            &r
        ));
        assert!(m("seed not in [1, 2]", &r));
        assert!(m(
            "name ~ \"^bert-\" and name like \"bert*\" and not name like \"gpt*\"",
            &r
        ));
        assert!(m(
            "started >= \"2025-01-01\" and started < \"2025-01-01T00:00:01Z\" and started > 1700000000",
            &r
        ));
        assert!(!m("exists ended", &r));
        assert!(m(
            "(optim.lr > 1 or seed == 3) and not (host != \"gpu01\")",
            &r
        ));
        assert!(m(
            "`optim.name` == \"adam\" or params.optim.name == \"adam\"",
            &r
        ));
    }

    #[test]
    fn precedence_is_not_then_and_then_or() {
        let r = run("a", json!({"x": 1}), &[], RunStatus::Running);
        assert!(m("x == 2 and x == 2 or x == 1", &r));
        assert!(!m("x == 2 and (x == 2 or x == 1)", &r));
        assert!(m("not x == 2 and x == 1", &r));
    }

    #[test]
    fn silence_is_visible_as_status_stale() {
        let r = run("a", json!({}), &[], RunStatus::Running);
        let f: Filter = "status == \"stale\"".parse().unwrap();
        assert!(f.matches(
            &r,
            Clock {
                now: r.last_activity + 10,
                stale_after: 5
            }
        ));
        assert!(!f.matches(
            &r,
            Clock {
                now: r.last_activity + 1,
                stale_after: 5
            }
        ));
    }

    #[test]
    fn errors_say_where_and_what() {
        let cases = [
            ("optim.lr <", 10, "expected a value"),
            ("optim.lr < 1e-3 and", 19, "expected a field"),
            ("(a == 1", 7, "expected `)`"),
            ("a == 1 b == 2", 7, "missing `and`/`or`"),
            ("a ! 1", 2, "expected `!=`"),
            ("name ~ \"(\"", 7, "bad regular expression"),
            ("a == \"open", 5, "unterminated"),
            ("a in 1", 5, "expected `[`"),
            ("a == adam", 5, "quote text"),
            ("", 0, "empty expression"),
            ("a", 1, "expected a comparison"),
        ];
        for (expr, column, want) in cases {
            let err = expr.parse::<Filter>().unwrap_err();
            assert_eq!(err.column, column, "{expr}: {err}");
            assert!(err.message.contains(want), "{expr}: {err}");
        }
        let shown = "optim.lr <".parse::<Filter>().unwrap_err().to_string();
        assert!(
            shown.contains("column 11") && shown.ends_with("          ^"),
            "{shown}"
        );
    }

    #[test]
    fn glob_is_linear_and_whole_string() {
        assert!(glob_match("b*e", "baseline"));
        assert!(!glob_match("b*x", "baseline"));
        assert!(glob_match("?aseline", "baseline"));
        assert!(!glob_match("base", "baseline"));
        assert!(!glob_match(
            "*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b",
            &"a".repeat(5000)
        ));
    }
}

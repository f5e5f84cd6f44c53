//! Reading a filter expression: a lexer (numbers stay exact: integers as integers) and a recursive-descent parser
//! whose errors carry the column.

use super::{Field, Filter, FilterError, Lit, Op, Pattern};
use labd_schemas::number::Num;

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
    let ident_char =
        |c: char| c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | '/' | '@' | '*' | '?');
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

//! Label selectors (`?labelSelector=`): the set-based syntax Kubernetes accepts
//! (`k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`, `k>1`, `k<1`), parsed once
//! into requirements and matched against an object's labels.

use std::collections::BTreeMap;
use std::fmt;

use crate::validation;

/// A malformed label selector.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unable to parse requirement: {reason} (in label selector {input:?})")]
pub struct LabelSelectorError {
    /// The whole selector as given.
    pub input: String,
    /// What is wrong.
    pub reason: String,
}

/// Operator of one requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelOp {
    /// `k=v` / `k==v`: present with that value.
    Equals(String),
    /// `k!=v`: absent or another value.
    NotEquals(String),
    /// `k in (..)`: present with one of the values.
    In(Vec<String>),
    /// `k notin (..)`: absent or none of the values.
    NotIn(Vec<String>),
    /// `k`: present.
    Exists,
    /// `!k`: absent.
    DoesNotExist,
    /// `k>n`: present with an integer value greater than n.
    GreaterThan(i64),
    /// `k<n`: present with an integer value less than n.
    LessThan(i64),
}

/// One requirement on one label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelRequirement {
    /// Label key.
    pub key: String,
    /// Condition.
    pub op: LabelOp,
}

impl LabelRequirement {
    /// Whether `labels` satisfy this requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let v = labels.get(&self.key);
        match &self.op {
            LabelOp::Equals(want) => v == Some(want),
            LabelOp::NotEquals(want) => v != Some(want),
            LabelOp::In(set) => v.is_some_and(|v| set.contains(v)),
            LabelOp::NotIn(set) => !v.is_some_and(|v| set.contains(v)),
            LabelOp::Exists => v.is_some(),
            LabelOp::DoesNotExist => v.is_none(),
            LabelOp::GreaterThan(n) => v
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v > *n),
            LabelOp::LessThan(n) => v
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v < *n),
        }
    }
}

/// A parsed label selector: all requirements must hold (empty selects everything).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    /// Requirements, in the order given.
    pub requirements: Vec<LabelRequirement>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    Not,
    Eq,
    DoubleEq,
    NotEq,
    Gt,
    Lt,
    Open,
    Close,
    Comma,
}

fn lex(input: &str) -> Vec<Tok> {
    let mut toks = Vec::new();
    let mut chars = input.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '(' => toks.push(Tok::Open),
            ')' => toks.push(Tok::Close),
            ',' => toks.push(Tok::Comma),
            '>' => toks.push(Tok::Gt),
            '<' => toks.push(Tok::Lt),
            '=' => {
                if chars.peek() == Some(&'=') {
                    chars.next();
                    toks.push(Tok::DoubleEq);
                } else {
                    toks.push(Tok::Eq);
                }
            }
            '!' => {
                if chars.peek() == Some(&'=') {
                    chars.next();
                    toks.push(Tok::NotEq);
                } else {
                    toks.push(Tok::Not);
                }
            }
            c => {
                let mut s = String::from(c);
                while let Some(&n) = chars.peek() {
                    if n.is_whitespace() || "()=!,<>".contains(n) {
                        break;
                    }
                    s.push(n);
                    chars.next();
                }
                toks.push(Tok::Ident(s));
            }
        }
    }
    toks
}

struct Parser<'a> {
    input: &'a str,
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser<'_> {
    fn err(&self, reason: impl Into<String>) -> LabelSelectorError {
        LabelSelectorError {
            input: self.input.to_owned(),
            reason: reason.into(),
        }
    }

    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn key(&mut self) -> Result<String, LabelSelectorError> {
        match self.next() {
            Some(Tok::Ident(k)) => {
                validation::label_key(&k).map_err(|e| self.err(format!("key {k:?}: {e}")))?;
                Ok(k)
            }
            other => Err(self.err(format!("expected a label key, found {other:?}"))),
        }
    }

    fn value(&self, v: String) -> Result<String, LabelSelectorError> {
        validation::label_value(&v).map_err(|e| self.err(format!("value {v:?}: {e}")))?;
        Ok(v)
    }

    fn at_requirement_end(&self) -> bool {
        matches!(self.peek(), None | Some(Tok::Comma))
    }

    fn single_value(&mut self) -> Result<String, LabelSelectorError> {
        if self.at_requirement_end() {
            return Ok(String::new());
        }
        match self.next() {
            Some(Tok::Ident(v)) => self.value(v),
            other => Err(self.err(format!("expected a value, found {other:?}"))),
        }
    }

    fn set(&mut self) -> Result<Vec<String>, LabelSelectorError> {
        if self.next() != Some(Tok::Open) {
            return Err(self.err("expected '(' after set operator"));
        }
        let mut values = Vec::new();
        loop {
            match self.next() {
                Some(Tok::Ident(v)) => values.push(self.value(v)?),
                Some(Tok::Close) if values.is_empty() => {
                    return Err(self.err("a set needs at least one value"));
                }
                other => return Err(self.err(format!("expected a value in set, found {other:?}"))),
            }
            match self.next() {
                Some(Tok::Comma) => {}
                Some(Tok::Close) => return Ok(values),
                other => return Err(self.err(format!("expected ',' or ')', found {other:?}"))),
            }
        }
    }

    fn integer(&mut self) -> Result<i64, LabelSelectorError> {
        match self.next() {
            Some(Tok::Ident(v)) => v
                .parse()
                .map_err(|_| self.err(format!("{v:?} is not an integer"))),
            other => Err(self.err(format!("expected an integer, found {other:?}"))),
        }
    }

    fn requirement(&mut self) -> Result<LabelRequirement, LabelSelectorError> {
        if self.peek() == Some(&Tok::Not) {
            self.next();
            let key = self.key()?;
            return Ok(LabelRequirement {
                key,
                op: LabelOp::DoesNotExist,
            });
        }
        let key = self.key()?;
        if self.at_requirement_end() {
            return Ok(LabelRequirement {
                key,
                op: LabelOp::Exists,
            });
        }
        let op = match self.next() {
            Some(Tok::Eq | Tok::DoubleEq) => LabelOp::Equals(self.single_value()?),
            Some(Tok::NotEq) => LabelOp::NotEquals(self.single_value()?),
            Some(Tok::Gt) => LabelOp::GreaterThan(self.integer()?),
            Some(Tok::Lt) => LabelOp::LessThan(self.integer()?),
            Some(Tok::Ident(w)) if w == "in" => LabelOp::In(self.set()?),
            Some(Tok::Ident(w)) if w == "notin" => LabelOp::NotIn(self.set()?),
            other => {
                return Err(self.err(format!(
                    "expected an operator after {key:?}, found {other:?}"
                )));
            }
        };
        Ok(LabelRequirement { key, op })
    }
}

impl LabelSelector {
    /// Parses a selector; the empty string selects everything.
    pub fn parse(input: &str) -> Result<Self, LabelSelectorError> {
        let mut p = Parser {
            input,
            toks: lex(input),
            pos: 0,
        };
        let mut requirements = Vec::new();
        if p.toks.is_empty() {
            return Ok(Self { requirements });
        }
        loop {
            requirements.push(p.requirement()?);
            match p.next() {
                None => return Ok(Self { requirements }),
                Some(Tok::Comma) => {}
                Some(other) => return Err(p.err(format!("unexpected {other:?}"))),
            }
        }
    }

    /// Whether the selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }
}

/// Renders the selector in the syntax [`LabelSelector::parse`] reads back to the same
/// requirements (`a=x,b in (y,z),!c`).
impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let key = &r.key;
            match &r.op {
                LabelOp::Equals(v) => write!(f, "{key}={v}")?,
                LabelOp::NotEquals(v) => write!(f, "{key}!={v}")?,
                LabelOp::In(set) => write!(f, "{key} in ({})", set.join(","))?,
                LabelOp::NotIn(set) => write!(f, "{key} notin ({})", set.join(","))?,
                LabelOp::Exists => f.write_str(key)?,
                LabelOp::DoesNotExist => write!(f, "!{key}")?,
                LabelOp::GreaterThan(n) => write!(f, "{key}>{n}")?,
                LabelOp::LessThan(n) => write!(f, "{key}<{n}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn req(key: &str, op: LabelOp) -> LabelRequirement {
        LabelRequirement {
            key: key.into(),
            op,
        }
    }

    #[test]
    fn parses_every_operator() {
        let s = LabelSelector::parse(
            "a=1, b==2,c!=3,d in (x, y),e notin (z),f,!g,h>5,i<-1,example.com/j=",
        )
        .unwrap();
        assert_eq!(
            s.requirements,
            vec![
                req("a", LabelOp::Equals("1".into())),
                req("b", LabelOp::Equals("2".into())),
                req("c", LabelOp::NotEquals("3".into())),
                req("d", LabelOp::In(vec!["x".into(), "y".into()])),
                req("e", LabelOp::NotIn(vec!["z".into()])),
                req("f", LabelOp::Exists),
                req("g", LabelOp::DoesNotExist),
                req("h", LabelOp::GreaterThan(5)),
                req("i", LabelOp::LessThan(-1)),
                req("example.com/j", LabelOp::Equals(String::new())),
            ]
        );
    }

    #[test]
    fn empty_selects_everything() {
        let s = LabelSelector::parse("  ").unwrap();
        assert!(s.is_empty());
        assert!(s.matches(&labels(&[])));
    }

    #[test]
    fn matching_semantics() {
        let l = labels(&[("app", "web"), ("tier", "front"), ("n", "7")]);
        let yes = [
            "app=web",
            "app==web",
            "app!=db",
            "missing!=x",
            "app in (db,web)",
            "app notin (db)",
            "missing notin (x)",
            "app",
            "!missing",
            "n>6",
            "n<8",
            "app=web,tier",
        ];
        for s in yes {
            assert!(LabelSelector::parse(s).unwrap().matches(&l), "{s}");
        }
        let no = [
            "app=db",
            "app!=web",
            "missing in (x)",
            "app notin (web)",
            "missing",
            "!app",
            "n>7",
            "app<1",
            "missing>1",
            "app=web,tier=back",
        ];
        for s in no {
            assert!(!LabelSelector::parse(s).unwrap().matches(&l), "{s}");
        }
    }

    #[test]
    fn rejects_malformed_selectors() {
        for bad in [
            "a in x",
            "a in ()",
            "a in (x",
            "=a",
            "a b",
            "a=b=c",
            "a>x",
            "!",
            "a,",
            "Bad Key=1",
            "a=bad value!",
            "a=(x)",
            "-a=1",
        ] {
            let err = LabelSelector::parse(bad).unwrap_err();
            assert_eq!(err.input, bad);
        }
    }

    #[test]
    fn error_message_names_the_selector() {
        let err = LabelSelector::parse("a in x").unwrap_err();
        assert!(err.to_string().contains("\"a in x\""), "{err}");
    }
}

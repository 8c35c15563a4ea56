//! Field selectors (`?fieldSelector=`): `field=value`, `field==value`, `field!=value`, joined by
//! commas, with `\` escaping. Only fields a resource declares selectable are accepted; anything
//! else is an error, as in Kubernetes ("field label not supported").

/// A malformed or unsupported field selector.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldSelectorError {
    /// Not `field op value`.
    #[error("invalid field selector {input:?}: {reason}")]
    Syntax {
        /// The whole selector.
        input: String,
        /// What is wrong.
        reason: String,
    },
    /// The field cannot be selected on.
    #[error("field label not supported: {field}")]
    Unsupported {
        /// The field.
        field: String,
    },
}

/// One requirement on one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    /// Field path, e.g. `metadata.name`.
    pub field: String,
    /// `true` for `!=`.
    pub negated: bool,
    /// Value compared with.
    pub value: String,
}

/// A parsed field selector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    /// All must hold.
    pub requirements: Vec<FieldRequirement>,
}

/// Splits at unescaped `sep`, keeping escapes in place.
fn split_unescaped(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            parts.push(&s[start..i]);
            start = i + c.len_utf8();
        }
    }
    parts.push(&s[start..]);
    parts
}

fn unescape(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(n @ ('\\' | ',' | '=' | '!')) => out.push(n),
                Some(n) => return Err(format!("invalid escape sequence \\{n}")),
                None => return Err("trailing backslash".to_owned()),
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

/// Finds the first unescaped operator: returns (field, negated, value) raw parts.
fn split_term(term: &str) -> Option<(&str, bool, &str)> {
    let b = term.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'!' if b.get(i + 1) == Some(&b'=') => return Some((&term[..i], true, &term[i + 2..])),
            b'=' if b.get(i + 1) == Some(&b'=') => {
                return Some((&term[..i], false, &term[i + 2..]));
            }
            b'=' => return Some((&term[..i], false, &term[i + 1..])),
            _ => i += 1,
        }
    }
    None
}

impl FieldSelector {
    /// Parses a selector and checks every field is in `supported`.
    pub fn parse(input: &str, supported: &[&str]) -> Result<Self, FieldSelectorError> {
        let syntax = |reason: String| FieldSelectorError::Syntax {
            input: input.to_owned(),
            reason,
        };
        let mut requirements = Vec::new();
        if input.trim().is_empty() {
            return Ok(Self { requirements });
        }
        for term in split_unescaped(input, ',') {
            let (field, negated, value) =
                split_term(term).ok_or_else(|| syntax(format!("{term:?} has no operator")))?;
            let field = unescape(field.trim()).map_err(syntax)?;
            if field.is_empty() {
                return Err(syntax(format!("{term:?} has no field")));
            }
            if !supported.contains(&field.as_str()) {
                return Err(FieldSelectorError::Unsupported { field });
            }
            let value = unescape(value).map_err(syntax)?;
            requirements.push(FieldRequirement {
                field,
                negated,
                value,
            });
        }
        Ok(Self { requirements })
    }

    /// Whether every requirement holds; `get` returns a field's value (absent reads as empty).
    pub fn matches(&self, get: impl Fn(&str) -> Option<String>) -> bool {
        self.requirements.iter().all(|r| {
            let v = get(&r.field).unwrap_or_default();
            (v == r.value) != r.negated
        })
    }

    /// The single object name this selector pins down (`metadata.name=N`), if any: Kubernetes
    /// then authorizes the request as being about that name.
    pub fn exact_name(&self) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == "metadata.name" && !r.negated)
            .map(|r| r.value.as_str())
    }

    /// Whether the selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }
}

/// `s` with the characters the selector syntax gives a meaning escaped.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | ',' | '=' | '!') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Renders the selector in the syntax [`FieldSelector::parse`] reads back to the same
/// requirements, escaping `\`, `,`, `=` and `!` in fields and values.
impl std::fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let op = if r.negated { "!=" } else { "=" };
            write!(f, "{}{op}{}", escape(&r.field), escape(&r.value))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const META: &[&str] = &["metadata.name", "metadata.namespace"];

    fn get(field: &str) -> Option<String> {
        match field {
            "metadata.name" => Some("pod-a".into()),
            "metadata.namespace" => Some("ns1".into()),
            _ => None,
        }
    }

    #[test]
    fn parses_operators() {
        let s = FieldSelector::parse(
            "metadata.name=a,metadata.namespace!=b,metadata.name==c",
            META,
        )
        .unwrap();
        let ops: Vec<(bool, &str)> = s
            .requirements
            .iter()
            .map(|r| (r.negated, r.value.as_str()))
            .collect();
        assert_eq!(ops, vec![(false, "a"), (true, "b"), (false, "c")]);
    }

    #[test]
    fn matches_values() {
        let yes = [
            "",
            "metadata.name=pod-a",
            "metadata.name==pod-a",
            "metadata.name!=x",
            "metadata.name=pod-a,metadata.namespace=ns1",
        ];
        for s in yes {
            assert!(FieldSelector::parse(s, META).unwrap().matches(get), "{s}");
        }
        let no = [
            "metadata.name=pod-b",
            "metadata.namespace!=ns1",
            "metadata.name=pod-a,metadata.namespace=x",
        ];
        for s in no {
            assert!(!FieldSelector::parse(s, META).unwrap().matches(get), "{s}");
        }
    }

    #[test]
    fn unsupported_field_is_an_error() {
        let err = FieldSelector::parse("spec.nodeName=x", META).unwrap_err();
        assert_eq!(
            err,
            FieldSelectorError::Unsupported {
                field: "spec.nodeName".into()
            }
        );
        assert_eq!(err.to_string(), "field label not supported: spec.nodeName");
    }

    #[test]
    fn syntax_errors() {
        for bad in [
            "metadata.name",
            "=x",
            "metadata.name=a,",
            "metadata.name=a\\q",
            "metadata.name=a\\",
        ] {
            assert!(
                matches!(
                    FieldSelector::parse(bad, META),
                    Err(FieldSelectorError::Syntax { .. })
                        | Err(FieldSelectorError::Unsupported { .. })
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            FieldSelector::parse("metadata.name", META),
            Err(FieldSelectorError::Syntax { .. })
        ));
    }

    #[test]
    fn escapes() {
        let s = FieldSelector::parse(r"metadata.name=a\,b\=c", META).unwrap();
        assert_eq!(s.requirements.len(), 1);
        assert_eq!(s.requirements[0].value, "a,b=c");
    }

    #[test]
    fn exact_name() {
        let s = FieldSelector::parse("metadata.namespace=x,metadata.name=pod", META).unwrap();
        assert_eq!(s.exact_name(), Some("pod"));
        let s = FieldSelector::parse("metadata.name!=pod", META).unwrap();
        assert_eq!(s.exact_name(), None);
    }
}

//! `labelSelector` and `fieldSelector` query parameters.

use std::collections::BTreeMap;

use coredump_api::labels::LabelOp;
use coredump_api::{Coredump, FieldSelector, LabelSelector, Resource};

/// Parses the input as a label selector (first byte even) or a field selector (odd). A
/// selector that parses renders to text that parses to the same selector, and matching
/// does not panic.
pub fn selectors(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    if which & 1 == 0 {
        let Ok(sel) = LabelSelector::parse(&text) else {
            return;
        };
        let rendered = sel.to_string();
        match LabelSelector::parse(&rendered) {
            Ok(again) => assert_eq!(again, sel, "{text:?} rendered as {rendered:?}"),
            Err(e) => panic!("{text:?} rendered as {rendered:?}, which does not parse: {e}"),
        }
        // Labels that satisfy the equality requirements, to reach every arm of `matches`.
        let labels: BTreeMap<String, String> = sel
            .requirements
            .iter()
            .map(|r| {
                let v = match &r.op {
                    LabelOp::Equals(v) => v.clone(),
                    LabelOp::In(set) => set.first().cloned().unwrap_or_default(),
                    LabelOp::GreaterThan(n) => n.saturating_add(1).to_string(),
                    LabelOp::LessThan(n) => n.saturating_sub(1).to_string(),
                    _ => String::new(),
                };
                (r.key.clone(), v)
            })
            .collect();
        let _ = sel.matches(&labels);
        let _ = sel.matches(&BTreeMap::new());
    } else {
        let Ok(sel) = FieldSelector::parse(&text, Coredump::SELECTABLE_FIELDS) else {
            return;
        };
        let rendered = sel.to_string();
        match FieldSelector::parse(&rendered, Coredump::SELECTABLE_FIELDS) {
            Ok(again) => assert_eq!(again, sel, "{text:?} rendered as {rendered:?}"),
            Err(e) => panic!("{text:?} rendered as {rendered:?}, which does not parse: {e}"),
        }
        let _ = sel.exact_name();
        let _ = sel.matches(|f| Some(f.to_owned()));
    }
}

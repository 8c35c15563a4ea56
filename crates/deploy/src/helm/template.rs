//! Turns the objects `deploy` renders into a Helm template, without a second copy of any
//! object: the objects are built by the same code from options holding placeholders
//! ([`super::values::with_tokens`]) and certificates holding placeholders, then every string
//! that contains one is replaced by a template expression that builds the same string from
//! `.Values`, `.Release.Namespace` and the certificates of the template's prelude
//! ([`super::certs`]).
//!
//! The replacement goes through each object's JSON form (to reach every string, wherever it
//! sits) and back into the typed object, so the YAML comes from the same serializer, in the
//! same field order, as `coredump.yaml`. In between, a replaced string is a marker
//! (`HELMEXPR0001`: plain YAML, and canonical base64, so it also survives the `ByteString` of
//! Secret data); in the YAML text each marker becomes `{{ EXPRESSION | quote }}`, which Helm
//! renders as one double-quoted YAML string whatever the value holds.

use serde_json::Value as Json;

use crate::error::DeployError;
use crate::render::Object;

/// How a string of the rendered objects is made at install time.
pub(crate) struct Rules<'a> {
    /// Placeholder → Go template operand (`.Values.service`, `.Release.Namespace`).
    pub(crate) tokens: &'a [(String, String)],
    /// Whole strings replaced by an operand: the certificates' base64 placeholders, and the
    /// agent's `--capture=MODE` flag (a typed option, which cannot hold a placeholder).
    pub(crate) whole: &'a [(String, String)],
}

/// (marker, expression) pairs: what [`substitute`] puts in place of each marker.
pub(crate) type Markers = Vec<(String, String)>;

/// The objects with every placeholder replaced by a marker, and each marker's expression.
pub(crate) fn templated(
    objects: Vec<Object>,
    rules: &Rules<'_>,
) -> Result<(Vec<Object>, Markers), DeployError> {
    let mut exprs = Vec::new();
    let mut out = Vec::with_capacity(objects.len());
    for object in objects {
        let mut json = serde_json::to_value(&object).map_err(json_err)?;
        replace_strings(&mut json, rules, &mut exprs)?;
        out.push(from_json(json)?);
    }
    Ok((out, exprs))
}

/// Replaces each marker of `yaml` by its expression; each must be there once, as a plain
/// scalar of its own.
pub(crate) fn substitute(yaml: &str, exprs: &[(String, String)]) -> Result<String, DeployError> {
    let mut text = yaml.to_string();
    for (marker, expr) in exprs {
        let at_line_end = format!(" {marker}\n");
        if text.matches(marker.as_str()).count() != 1 || !text.contains(&at_line_end) {
            return Err(chart_err(format!(
                "marker {marker} for {expr} is not one plain scalar"
            )));
        }
        text = text.replace(&at_line_end, &format!(" {{{{ {expr} | quote }}}}\n"));
    }
    if text.contains("@@") {
        return Err(chart_err(
            "a placeholder is left in a place no expression reaches (a map key?)".into(),
        ));
    }
    Ok(text)
}

fn replace_strings(
    json: &mut Json,
    rules: &Rules<'_>,
    exprs: &mut Vec<(String, String)>,
) -> Result<(), DeployError> {
    match json {
        Json::String(s) => {
            if let Some(expr) = expression(s, rules)? {
                let marker = format!("HELMEXPR{:04}", exprs.len());
                exprs.push((marker.clone(), expr));
                *s = marker;
            }
        }
        Json::Array(items) => {
            for item in items {
                replace_strings(item, rules, exprs)?;
            }
        }
        Json::Object(map) => {
            for value in map.values_mut() {
                replace_strings(value, rules, exprs)?;
            }
        }
        Json::Null | Json::Bool(_) | Json::Number(_) => {}
    }
    Ok(())
}

/// The expression building `s`, if `s` holds a placeholder: a lone operand, or
/// `(print "literal" .Values.x "literal")`.
pub(crate) fn expression(s: &str, rules: &Rules<'_>) -> Result<Option<String>, DeployError> {
    if let Some((_, operand)) = rules.whole.iter().find(|(whole, _)| whole == s) {
        return Ok(Some(operand.clone()));
    }
    if !rules
        .tokens
        .iter()
        .any(|(token, _)| s.contains(token.as_str()))
    {
        return Ok(None);
    }
    let mut parts = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        let next = rules
            .tokens
            .iter()
            .filter_map(|(token, operand)| rest.find(token.as_str()).map(|at| (at, token, operand)))
            .min_by_key(|(at, _, _)| *at);
        match next {
            Some((at, token, operand)) => {
                if at > 0 {
                    parts.push(go_string(&rest[..at])?);
                }
                parts.push(operand.clone());
                rest = &rest[at + token.len()..];
            }
            None => {
                parts.push(go_string(rest)?);
                rest = "";
            }
        }
    }
    Ok(match parts.len() {
        1 => parts.pop(),
        _ => Some(format!("(print {})", parts.join(" "))),
    })
}

/// `s` as a Go string literal (JSON's escapes are a subset of Go's).
fn go_string(s: &str) -> Result<String, DeployError> {
    serde_json::to_string(s).map_err(json_err)
}

/// The typed object of a JSON object, by its `kind`.
fn from_json(json: Json) -> Result<Object, DeployError> {
    use serde_json::from_value as typed;
    let kind = json
        .get("kind")
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_string();
    Ok(match kind.as_str() {
        "Namespace" => Object::Namespace(typed(json).map_err(json_err)?),
        "ServiceAccount" => Object::ServiceAccount(typed(json).map_err(json_err)?),
        "Secret" => Object::Secret(typed(json).map_err(json_err)?),
        "Service" => Object::Service(typed(json).map_err(json_err)?),
        "NetworkPolicy" => Object::NetworkPolicy(typed(json).map_err(json_err)?),
        "APIService" => Object::APIService(typed(json).map_err(json_err)?),
        "ClusterRole" => Object::ClusterRole(typed(json).map_err(json_err)?),
        "ClusterRoleBinding" => Object::ClusterRoleBinding(typed(json).map_err(json_err)?),
        "Role" => Object::Role(typed(json).map_err(json_err)?),
        "RoleBinding" => Object::RoleBinding(typed(json).map_err(json_err)?),
        "StatefulSet" => Object::StatefulSet(typed(json).map_err(json_err)?),
        "Deployment" => Object::Deployment(typed(json).map_err(json_err)?),
        "DaemonSet" => Object::DaemonSet(typed(json).map_err(json_err)?),
        "PodDisruptionBudget" => Object::PodDisruptionBudget(typed(json).map_err(json_err)?),
        other => return Err(chart_err(format!("no typed object for kind {other:?}"))),
    })
}

fn json_err(source: serde_json::Error) -> DeployError {
    chart_err(source.to_string())
}

fn chart_err(reason: String) -> DeployError {
    DeployError::Chart { reason }
}

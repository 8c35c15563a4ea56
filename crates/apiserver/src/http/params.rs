//! Query parameters of object requests, parsed once into typed values (bad values are 400s).

use coredump_api::{FieldSelector, IncludeObject, LabelSelector, Resource};

use crate::error::ApiError;
use crate::registry::ListOptions;

/// Raw query pairs, in order (parameters such as `dryRun` may repeat).
#[derive(Debug, Clone, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Parses a raw query string.
    pub fn parse(query: Option<&str>) -> Result<Self, ApiError> {
        let Some(q) = query else {
            return Ok(Self::default());
        };
        let uri: axum::http::Uri = format!("/?{q}")
            .parse()
            .map_err(|e| ApiError::bad_request(format!("malformed query string: {e}")))?;
        let axum::extract::Query(pairs) =
            axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&uri)
                .map_err(|e| ApiError::bad_request(format!("malformed query string: {e}")))?;
        Ok(Self(pairs))
    }

    /// First value of a parameter.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A boolean parameter (`true`/`1` true, `false`/`0`/absent false).
    pub fn flag(&self, key: &str) -> Result<bool, ApiError> {
        match self.get(key) {
            None | Some("" | "false" | "0") => Ok(false),
            Some("true" | "1") => Ok(true),
            Some(v) => Err(ApiError::bad_request(format!(
                "invalid value {v:?} for {key}: must be true or false"
            ))),
        }
    }

    /// A non-negative integer parameter.
    pub fn number(&self, key: &str) -> Result<Option<u64>, ApiError> {
        self.get(key)
            .filter(|v| !v.is_empty())
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    ApiError::bad_request(format!(
                        "invalid value {v:?} for {key}: must be a non-negative integer"
                    ))
                })
            })
            .transpose()
    }

    /// Whether `dryRun=All` was given (any other value is rejected, as in Kubernetes).
    pub fn dry_run(&self) -> Result<bool, ApiError> {
        let mut dry = false;
        for (_, v) in self.0.iter().filter(|(k, _)| k == "dryRun") {
            if v == "All" {
                dry = true;
            } else {
                return Err(ApiError::bad_request(format!(
                    "unsupported dryRun value {v:?}: only \"All\" is supported"
                )));
            }
        }
        Ok(dry)
    }

    /// Whether this is a watch request.
    pub fn watch(&self) -> Result<bool, ApiError> {
        self.flag("watch")
    }

    /// List options for resource `R`.
    pub fn list_options<R: Resource>(&self) -> Result<ListOptions, ApiError> {
        let labels = LabelSelector::parse(self.get("labelSelector").unwrap_or_default())
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let fields = FieldSelector::parse(
            self.get("fieldSelector").unwrap_or_default(),
            R::SELECTABLE_FIELDS,
        )
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let limit = usize::try_from(self.number("limit")?.unwrap_or(0)).unwrap_or(usize::MAX);
        let continue_token = self
            .get("continue")
            .filter(|c| !c.is_empty())
            .map(str::to_owned);
        Ok(ListOptions {
            labels,
            fields,
            limit,
            continue_token,
        })
    }

    /// `includeObject` for tables.
    pub fn include_object(&self) -> Result<IncludeObject, ApiError> {
        match self.get("includeObject") {
            None => Ok(IncludeObject::Metadata),
            Some(v) => IncludeObject::parse(v).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "invalid includeObject {v:?}: must be None, Metadata or Object"
                ))
            }),
        }
    }

    /// `fieldValidation`: `Ignore`, `Warn` (the default) or `Strict`.
    pub fn field_validation(&self) -> Result<FieldValidation, ApiError> {
        match self.get("fieldValidation") {
            None | Some("" | "Warn") => Ok(FieldValidation::Warn),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some(v) => Err(ApiError::bad_request(format!(
                "invalid fieldValidation {v:?}: must be Ignore, Warn or Strict"
            ))),
        }
    }
}

/// What to do with unknown fields in a request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    /// Drop them silently.
    Ignore,
    /// Drop them and say so in a `Warning` header.
    Warn,
    /// Reject the request.
    Strict,
}

#[cfg(test)]
mod tests {
    use super::*;
    use coredump_api::Coredump;

    #[test]
    fn parses_list_options() {
        let p = Params::parse(Some(
            "labelSelector=app%3Dweb&fieldSelector=metadata.name%3Dx&limit=500&continue=abc",
        ))
        .unwrap();
        let o = p.list_options::<Coredump>().unwrap();
        assert_eq!(o.limit, 500);
        assert_eq!(o.continue_token.as_deref(), Some("abc"));
        assert_eq!(o.fields.exact_name(), Some("x"));
        assert_eq!(o.labels.requirements.len(), 1);
    }

    #[test]
    fn rejects_bad_values() {
        for q in [
            "limit=-1",
            "labelSelector=a%20in%20x",
            "fieldSelector=spec.bogus%3D1",
            "watch=maybe",
            "dryRun=Some",
            "includeObject=All",
            "fieldValidation=Loud",
        ] {
            let p = Params::parse(Some(q)).unwrap();
            let r: Result<(), ApiError> = (|| {
                p.list_options::<Coredump>()?;
                p.watch()?;
                p.dry_run()?;
                p.include_object()?;
                p.field_validation()?;
                Ok(())
            })();
            assert!(matches!(r, Err(ApiError::BadRequest { .. })), "{q}");
        }
    }

    #[test]
    fn unsupported_field_message() {
        let p = Params::parse(Some("fieldSelector=spec.bogus%3D1")).unwrap();
        let err = p.list_options::<Coredump>().unwrap_err();
        assert_eq!(err.to_string(), "field label not supported: spec.bogus");
    }

    #[test]
    fn flags() {
        let p = Params::parse(Some(
            "watch=1&allowWatchBookmarks=true&dryRun=All&timeoutSeconds=5",
        ))
        .unwrap();
        assert!(p.watch().unwrap());
        assert!(p.flag("allowWatchBookmarks").unwrap());
        assert!(!p.flag("sendInitialEvents").unwrap());
        assert!(p.dry_run().unwrap());
        assert_eq!(p.number("timeoutSeconds").unwrap(), Some(5));
    }
}

//! What kube-apiserver publishes for the API servers it fronts, in the ConfigMap
//! `kube-system/extension-apiserver-authentication`: the client CA, and the request-header
//! (front-proxy) settings: which CA and certificate names may assert identities, and in which
//! headers. Parsed here, with no I/O, into [`AuthenticationConfig`].

use std::collections::BTreeMap;

/// Namespace of the ConfigMap kube-apiserver publishes.
pub const CONFIGMAP_NAMESPACE: &str = "kube-system";
/// Name of that ConfigMap.
pub const CONFIGMAP_NAME: &str = "extension-apiserver-authentication";

/// The request-header (front-proxy) part of the configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestHeaderConfig {
    /// PEM bundle the proxy's client certificate must chain to.
    pub client_ca_pem: String,
    /// Common names allowed to assert identities; empty = any certificate of the CA.
    pub allowed_names: Vec<String>,
    /// Headers naming the user, first non-empty wins.
    pub username_headers: Vec<String>,
    /// Headers naming the user's UID, first non-empty wins.
    pub uid_headers: Vec<String>,
    /// Headers whose every line is one group.
    pub group_headers: Vec<String>,
    /// Prefixes of headers carrying extra attributes.
    pub extra_headers_prefixes: Vec<String>,
}

/// Everything needed to authenticate certificates the way kube-apiserver tells us to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthenticationConfig {
    /// PEM bundle of the client CA (user = CN, groups = O), if published.
    pub client_ca_pem: Option<String>,
    /// Front-proxy settings, if published (without them no identity header is trusted).
    pub request_header: Option<RequestHeaderConfig>,
}

/// A key of the ConfigMap holds something unusable.
#[derive(Debug, thiserror::Error)]
#[error("{CONFIGMAP_NAMESPACE}/{CONFIGMAP_NAME} key {key:?}: {reason}")]
pub struct ConfigError {
    /// The key.
    pub key: String,
    /// What is wrong.
    pub reason: String,
}

fn string_list(data: &BTreeMap<String, String>, key: &str) -> Result<Vec<String>, ConfigError> {
    let Some(text) = data.get(key) else {
        return Ok(Vec::new());
    };
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let list: Vec<String> = serde_json::from_str(text).map_err(|e| ConfigError {
        key: key.to_owned(),
        reason: format!("not a JSON array of strings: {e}"),
    })?;
    Ok(list.into_iter().filter(|s| !s.trim().is_empty()).collect())
}

fn pem(data: &BTreeMap<String, String>, key: &str) -> Option<String> {
    data.get(key).filter(|p| !p.trim().is_empty()).cloned()
}

impl AuthenticationConfig {
    /// Parses the ConfigMap's `data`. Without a request-header CA or any username header the
    /// front-proxy path is off (identity headers are then never trusted).
    pub fn from_configmap_data(data: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let client_ca_pem = pem(data, "client-ca-file");
        let request_header = match pem(data, "requestheader-client-ca-file") {
            None => None,
            Some(client_ca_pem) => {
                let rh = RequestHeaderConfig {
                    client_ca_pem,
                    allowed_names: string_list(data, "requestheader-allowed-names")?,
                    username_headers: string_list(data, "requestheader-username-headers")?,
                    uid_headers: string_list(data, "requestheader-uid-headers")?,
                    group_headers: string_list(data, "requestheader-group-headers")?,
                    extra_headers_prefixes: string_list(
                        data,
                        "requestheader-extra-headers-prefix",
                    )?,
                };
                (!rh.username_headers.is_empty()).then_some(rh)
            }
        };
        Ok(Self {
            client_ca_pem,
            request_header,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn kubeadm_style_configmap() {
        let c = AuthenticationConfig::from_configmap_data(&data(&[
            ("client-ca-file", "CLIENT PEM"),
            ("requestheader-client-ca-file", "PROXY PEM"),
            ("requestheader-allowed-names", r#"["front-proxy-client"]"#),
            ("requestheader-username-headers", r#"["X-Remote-User"]"#),
            ("requestheader-uid-headers", r#"["X-Remote-Uid"]"#),
            ("requestheader-group-headers", r#"["X-Remote-Group"]"#),
            (
                "requestheader-extra-headers-prefix",
                r#"["X-Remote-Extra-"]"#,
            ),
        ]))
        .unwrap();
        assert_eq!(c.client_ca_pem.as_deref(), Some("CLIENT PEM"));
        assert_eq!(
            c.request_header,
            Some(RequestHeaderConfig {
                client_ca_pem: "PROXY PEM".into(),
                allowed_names: vec!["front-proxy-client".into()],
                username_headers: vec!["X-Remote-User".into()],
                uid_headers: vec!["X-Remote-Uid".into()],
                group_headers: vec!["X-Remote-Group".into()],
                extra_headers_prefixes: vec!["X-Remote-Extra-".into()],
            })
        );
    }

    #[test]
    fn missing_parts_switch_paths_off() {
        let empty = AuthenticationConfig::from_configmap_data(&BTreeMap::new()).unwrap();
        assert_eq!(empty, AuthenticationConfig::default());
        // A CA but no username header: nothing could be read, so nothing is trusted.
        let no_user = AuthenticationConfig::from_configmap_data(&data(&[
            ("requestheader-client-ca-file", "PROXY PEM"),
            ("requestheader-allowed-names", "[]"),
        ]))
        .unwrap();
        assert_eq!(no_user.request_header, None);
        let blank_ca = AuthenticationConfig::from_configmap_data(&data(&[
            ("client-ca-file", "  \n"),
            ("requestheader-username-headers", r#"["X-Remote-User"]"#),
        ]))
        .unwrap();
        assert_eq!(blank_ca, AuthenticationConfig::default());
    }

    #[test]
    fn malformed_lists_are_errors_naming_the_key() {
        let err = AuthenticationConfig::from_configmap_data(&data(&[
            ("requestheader-client-ca-file", "PROXY PEM"),
            ("requestheader-username-headers", "X-Remote-User"),
        ]))
        .unwrap_err();
        assert_eq!(err.key, "requestheader-username-headers");
        assert!(err.to_string().starts_with(
            "kube-system/extension-apiserver-authentication key \"requestheader-username-headers\""
        ));
    }
}

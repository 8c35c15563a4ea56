//! kubeconfig files for kubectl, serialized from typed structs (JSON is valid YAML, and
//! kubectl reads both).

use std::path::Path;

use serde::Serialize;

use crate::{Issued, PkiError};

/// What a kubeconfig for one cluster and one client certificate needs.
#[derive(Debug, Clone)]
pub struct Kubeconfig<'a> {
    /// Name used for the cluster, user and context entries.
    pub name: &'a str,
    /// `https://host:port`.
    pub server: &'a str,
    /// CA bundle that signs the server's certificate.
    pub ca_pem: &'a str,
    /// Client certificate and key.
    pub client: &'a Issued,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct File<'a> {
    api_version: &'a str,
    kind: &'a str,
    clusters: Vec<Named<'a, Cluster<'a>>>,
    users: Vec<Named<'a, User<'a>>>,
    contexts: Vec<Named<'a, Context<'a>>>,
    current_context: &'a str,
}

#[derive(Serialize)]
struct Named<'a, T> {
    name: &'a str,
    #[serde(flatten)]
    value: T,
}

#[derive(Serialize)]
struct Cluster<'a> {
    cluster: ClusterBody<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct ClusterBody<'a> {
    server: &'a str,
    certificate_authority_data: String,
}

#[derive(Serialize)]
struct User<'a> {
    user: UserBody,
    #[serde(skip)]
    _p: std::marker::PhantomData<&'a ()>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct UserBody {
    client_certificate_data: String,
    client_key_data: String,
}

#[derive(Serialize)]
struct Context<'a> {
    context: ContextBody<'a>,
}

#[derive(Serialize)]
struct ContextBody<'a> {
    cluster: &'a str,
    user: &'a str,
}

fn b64(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

impl Kubeconfig<'_> {
    /// The kubeconfig document.
    pub fn render(&self) -> Result<String, PkiError> {
        let file = File {
            api_version: "v1",
            kind: "Config",
            clusters: vec![Named {
                name: self.name,
                value: Cluster {
                    cluster: ClusterBody {
                        server: self.server,
                        certificate_authority_data: b64(self.ca_pem),
                    },
                },
            }],
            users: vec![Named {
                name: self.name,
                value: User {
                    user: UserBody {
                        client_certificate_data: b64(&self.client.cert_pem),
                        client_key_data: b64(&self.client.key_pem),
                    },
                    _p: std::marker::PhantomData,
                },
            }],
            contexts: vec![Named {
                name: self.name,
                value: Context {
                    context: ContextBody {
                        cluster: self.name,
                        user: self.name,
                    },
                },
            }],
            current_context: self.name,
        };
        Ok(serde_json::to_string_pretty(&file)?)
    }
}

/// Writes a kubeconfig with mode 0600 (it holds a private key).
pub fn write_kubeconfig(path: &Path, config: &Kubeconfig<'_>) -> Result<(), PkiError> {
    crate::write_file(path, config.render()?.as_bytes(), 0o600)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_known_vectors() {
        assert_eq!(b64(""), "");
        assert_eq!(b64("f"), "Zg==");
        assert_eq!(b64("fo"), "Zm8=");
        assert_eq!(b64("foo"), "Zm9v");
        assert_eq!(b64("foobar"), "Zm9vYmFy");
    }

    #[test]
    fn renders_a_kubectl_config() {
        let client = Issued {
            cert_pem: "C".into(),
            key_pem: "K".into(),
        };
        let text = Kubeconfig {
            name: "coredump",
            server: "https://127.0.0.1:1",
            ca_pem: "A",
            client: &client,
        }
        .render()
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["current-context"], "coredump");
        assert_eq!(v["clusters"][0]["cluster"]["server"], "https://127.0.0.1:1");
        assert_eq!(
            v["clusters"][0]["cluster"]["certificate-authority-data"],
            "QQ=="
        );
        assert_eq!(v["users"][0]["user"]["client-key-data"], "Sw==");
        assert_eq!(v["contexts"][0]["context"]["user"], "coredump");
    }
}

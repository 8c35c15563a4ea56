//! The certificates of a Helm install. `deploy` makes them in Rust; a chart cannot carry them
//! (it is written once and installed into any namespace, under any service name, and must not
//! hold private keys), so the template's prelude makes the same ones with Helm's own functions:
//! the same CAs and subjects as [`crate::certs`] (names from the same functions), ECDSA P-256
//! keys like `coredump_pki`, the same validity.
//!
//! `helm upgrade` keeps them: when the APIService already points at this release's Service and
//! the Secrets exist, the prelude reads the certificates back (`lookup`) instead of making new
//! ones, so an upgrade never leaves the API server serving a certificate its `caBundle` does not
//! trust. The CA keys are never stored (as with `deploy`), so a changed service name, or a
//! missing Secret, issues everything anew. `helm template` (no cluster) always makes new ones.

use k8s_openapi::ByteString;

use coredump_pki::{CA_VALID_DAYS, ISSUED_VALID_DAYS, Issued};

use super::template::Rules;
use super::values::NAMESPACE_TOKEN;
use crate::certs::{
    Certs, ca_name, etcd_ca_name, etcd_client_name, etcd_server_dns_names, etcd_server_ips,
    server_dns_names,
};
use crate::error::DeployError;
use crate::names::{APISERVICE, ETCD_CLIENT_SECRET, ETCD_SERVER_SECRET, TLS_SECRET};

/// The certificates of the install, each a placeholder, in the order of [`FIELDS`].
pub(crate) fn placeholders() -> Certs {
    let issued = |name: &str| Issued {
        cert_pem: format!("@@cert {name}@@"),
        key_pem: format!("@@key {name}@@"),
    };
    Certs {
        ca: issued("ca"),
        server: issued("server"),
        etcd_ca: issued("etcdCa"),
        etcd_server: issued("etcdServer"),
        etcd_client: issued("etcdClient"),
    }
}

/// The prelude's names of the certificates.
const FIELDS: [&str; 5] = ["ca", "server", "etcdCa", "etcdServer", "etcdClient"];

/// The Secret data and `caBundle` placeholders (base64, as they appear in the objects), and
/// the expression of each.
pub(crate) fn whole_rules() -> Result<Vec<(String, String)>, DeployError> {
    let certs = placeholders();
    let all = [
        &certs.ca,
        &certs.server,
        &certs.etcd_ca,
        &certs.etcd_server,
        &certs.etcd_client,
    ];
    let mut rules = Vec::new();
    for (name, issued) in FIELDS.iter().zip(all) {
        for (pem, field) in [(&issued.cert_pem, "Cert"), (&issued.key_pem, "Key")] {
            let encoded = serde_json::to_value(ByteString(pem.clone().into_bytes()))
                .map_err(|e| DeployError::Chart {
                    reason: e.to_string(),
                })?
                .as_str()
                .unwrap_or_default()
                .to_string();
            rules.push((encoded, format!("$certs.{name}.{field} | b64enc")));
        }
    }
    Ok(rules)
}

/// `{{ ... }}` lines that define `$certs`: read back from the cluster, else generated. `names`
/// is the [`Rules`] turning the placeholders in a name into expressions; `bundles_etcd` says
/// whether the etcd certificates exist at all.
pub(crate) fn prelude(rules: &Rules<'_>, bundles_etcd: bool) -> Result<String, DeployError> {
    let op = |s: &str| operand(s, rules);
    let list = |items: &[String]| -> Result<String, DeployError> {
        let items: Vec<String> = items.iter().map(|s| op(s)).collect::<Result<_, _>>()?;
        Ok(format!("(list {})", items.join(" ")))
    };
    let ns = NAMESPACE_TOKEN;
    let service = super::values::token("service");
    let server_names = server_dns_names(ns, &service);
    let etcd_names = etcd_server_dns_names(ns);
    let etcd_ips: Vec<String> = etcd_server_ips().iter().map(|ip| ip.to_string()).collect();
    let (ca, issued) = (CA_VALID_DAYS, ISSUED_VALID_DAYS);

    let mut secrets = vec![("server", TLS_SECRET)];
    if bundles_etcd {
        secrets.extend([
            ("etcdServer", ETCD_SERVER_SECRET),
            ("etcdClient", ETCD_CLIENT_SECRET),
        ]);
    }
    let mut out = String::new();
    let mut line = |text: String| {
        out.push_str("{{- ");
        out.push_str(&text);
        out.push_str(" }}\n");
    };
    line(format!(
        "$apiService := lookup \"apiregistration.k8s.io/v1\" \"APIService\" \"\" \"{APISERVICE}\""
    ));
    line(format!(
        "$reuse := and (eq (dig \"spec\" \"service\" \"name\" \"\" $apiService) {}) (eq (dig \
         \"spec\" \"service\" \"namespace\" \"\" $apiService) {}) (dig \"spec\" \"caBundle\" \"\" \
         $apiService)",
        op(&service)?,
        op(ns)?
    ));
    for (name, secret) in &secrets {
        line(format!(
            "${name} := lookup \"v1\" \"Secret\" {} \"{secret}\"",
            op(ns)?
        ));
        line(format!(
            "$reuse = and $reuse (dig \"data\" \"tls.crt\" \"\" ${name}) (dig \"data\" \
             \"tls.key\" \"\" ${name})"
        ));
    }
    line("$certs := dict".into());
    line("if $reuse".into());
    line(
        "$_ := set $certs \"ca\" (dict \"Cert\" (dig \"spec\" \"caBundle\" \"\" $apiService | \
         b64dec))"
            .into(),
    );
    for (name, _) in &secrets {
        line(format!(
            "$_ = set $certs \"{name}\" (dict \"Cert\" (dig \"data\" \"tls.crt\" \"\" ${name} | \
             b64dec) \"Key\" (dig \"data\" \"tls.key\" \"\" ${name} | b64dec))"
        ));
    }
    if bundles_etcd {
        line(
            "$_ = set $certs \"etcdCa\" (dict \"Cert\" (dig \"data\" \"ca.crt\" \"\" $etcdServer \
             | b64dec))"
                .into(),
        );
    }
    line("else".into());
    line(format!(
        "$_ := set $certs \"ca\" (genCAWithKey {} {ca} (genPrivateKey \"ecdsa\"))",
        op(&ca_name(&service))?
    ));
    line(format!(
        "$_ = set $certs \"server\" (genSignedCertWithKey {} nil {} {issued} $certs.ca \
         (genPrivateKey \"ecdsa\"))",
        op(&server_names[0])?,
        list(&server_names)?
    ));
    if bundles_etcd {
        line(format!(
            "$_ = set $certs \"etcdCa\" (genCAWithKey {} {ca} (genPrivateKey \"ecdsa\"))",
            op(&etcd_ca_name(&service))?
        ));
        line(format!(
            "$_ = set $certs \"etcdServer\" (genSignedCertWithKey {} {} {} {issued} \
             $certs.etcdCa (genPrivateKey \"ecdsa\"))",
            op(&etcd_names[0])?,
            list(&etcd_ips)?,
            list(&etcd_names)?
        ));
        line(format!(
            "$_ = set $certs \"etcdClient\" (genSignedCertWithKey {} nil nil {issued} \
             $certs.etcdCa (genPrivateKey \"ecdsa\"))",
            op(&etcd_client_name(&service))?
        ));
    }
    line("end".into());
    Ok(out)
}

/// `s` as one template operand.
fn operand(s: &str, rules: &Rules<'_>) -> Result<String, DeployError> {
    super::template::expression(s, rules)?
        .map(Ok)
        .unwrap_or_else(|| {
            serde_json::to_string(s).map_err(|e| DeployError::Chart {
                reason: e.to_string(),
            })
        })
}

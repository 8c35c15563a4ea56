//! Request bodies of the API server: objects on create and update (JSON, with unknown-field
//! handling), `DeleteOptions`, and merge and JSON patches applied to a stored object.

use coredump_api::{Coredump, CoredumpEndpoint, DeleteOptions};
use coredump_apiserver::http::body::{decode, decode_patch};
use coredump_apiserver::http::params::FieldValidation;
use coredump_apiserver::registry::{Stored, apply_patch};
use http::{HeaderMap, HeaderValue, header};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A stored `Coredump` as the ingest creates them, the object patches apply to.
const COREDUMP: &str = r#"{"apiVersion":"coredump.fujitsu.com/v1alpha1","kind":"Coredump",
"metadata":{"name":"crasher-4242-0a1b2c3d","namespace":"default","uid":"0b7c4e8e-0f2c-4f3e-9a55-7a1f0d2b9c11",
"resourceVersion":"17","creationTimestamp":"2024-01-01T00:00:00Z",
"labels":{"coredump.fujitsu.com/node":"node-1","coredump.fujitsu.com/container":"app"}},
"spec":{"nodeName":"node-1","podName":"web-0","podUID":"0b7c4e8e-0f2c-4f3e-9a55-7a1f0d2b9c11",
"containerName":"app","pid":4242,"tid":4243,"executable":"/usr/bin/crasher",
"commandLine":["/usr/bin/crasher","--mib","1"],"signal":11,"signalName":"SIGSEGV",
"crashTime":"2024-01-01T00:00:00Z","uid":1000,"gid":1000},
"status":{"state":"Stored","rawSize":1000,"coreSize":1000,"storedSize":100,"sha256":"00",
"compression":"zstd","blobPath":"default/0b7c4e8e-0f2c-4f3e-9a55-7a1f0d2b9c11/app/crasher-4242-0a1b2c3d.core.zst"}}"#;

/// A stored `CoredumpEndpoint`.
const ENDPOINT: &str = r#"{"apiVersion":"coredump.fujitsu.com/v1alpha1","kind":"CoredumpEndpoint",
"metadata":{"name":"web-0","namespace":"default","uid":"1b7c4e8e-0f2c-4f3e-9a55-7a1f0d2b9c11",
"resourceVersion":"9","creationTimestamp":"2024-01-01T00:00:00Z"},
"spec":{"podUID":"0b7c4e8e-0f2c-4f3e-9a55-7a1f0d2b9c11"}}"#;

/// The first byte picks the kind of body and the `fieldValidation` mode; the rest is the body.
pub fn api_body(data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let validation = match selector % 3 {
        0 => FieldValidation::Strict,
        1 => FieldValidation::Warn,
        _ => FieldValidation::Ignore,
    };
    match (selector / 3) % 6 {
        0 => object::<Coredump>(body, validation),
        1 => object::<CoredumpEndpoint>(body, validation),
        2 => object::<DeleteOptions>(body, validation),
        3 => patched::<Coredump>(COREDUMP, "application/merge-patch+json", body),
        4 => patched::<Coredump>(COREDUMP, "application/json-patch+json", body),
        _ => {
            let ct = if selector & 0x80 == 0 {
                "application/merge-patch+json"
            } else {
                "application/json-patch+json"
            };
            patched::<CoredumpEndpoint>(ENDPOINT, ct, body);
        }
    }
}

fn json_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h
}

/// Decoding agrees across `fieldValidation` modes, and an object decoded re-encodes to a body
/// that decodes strictly to the same object.
fn object<T>(body: &[u8], validation: FieldValidation)
where
    T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug,
{
    let h = json_headers();
    let got = decode::<T>(&h, body, validation);
    let warn = decode::<T>(&h, body, FieldValidation::Warn);
    match (&got, &warn, validation) {
        (Ok(_), Ok(_), _) | (Err(_), Err(_), _) => {}
        (Err(_), Ok((_, w)), FieldValidation::Strict) => assert!(!w.is_empty()),
        (got, warn, _) => panic!("{validation:?} gave {got:?}, Warn gave {warn:?}"),
    }
    let Ok((obj, _)) = got else {
        return;
    };
    let json = serde_json::to_vec(&obj).unwrap_or_else(|e| panic!("encoding {obj:?}: {e}"));
    match decode::<T>(&h, &json, FieldValidation::Strict) {
        Ok((again, _)) => assert_eq!(again, obj, "changed in a round trip"),
        Err(e) => panic!(
            "our own encoding {} does not decode strictly: {e}",
            String::from_utf8_lossy(&json)
        ),
    }
}

/// A patch that decodes and applies gives an object that validation can judge.
fn patched<R: Stored + DeserializeOwned>(current: &str, content_type: &str, body: &[u8]) {
    let current: R = serde_json::from_str(current).unwrap_or_else(|e| panic!("fixture: {e}"));
    let Ok(patch) = decode_patch(content_type, body) else {
        return;
    };
    let Ok((new, _pinned)) = apply_patch(&current, "x", &patch) else {
        return;
    };
    assert!(!new.metadata().resource_version.is_empty());
    let _ = new.validate_update(&current);
    let _ = new.validate_create();
}

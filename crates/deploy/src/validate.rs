//! Checks of option values, so a typo is reported by `deploy` instead of by `kubectl create`
//! (names) or by a crash-looping pod (sizes, durations, paths) much later.

pub(crate) use coredump_api::validation::dns1123_label;

/// A DNS-1035 label (Service names): a DNS-1123 label that starts with a letter.
pub(crate) fn dns1035_label(value: &str) -> Result<(), String> {
    dns1123_label(value)?;
    if !value.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err("must start with a lowercase letter".into());
    }
    Ok(())
}

/// A byte size in the grammar the agent reads `NS_DISK_QUOTA` with (`coredump_common`'s):
/// `1073741824`, `512Mi`, `1.5Gi`, `1G`, `1GB`, `1e9`.
pub(crate) fn size(value: &str) -> Result<(), String> {
    coredump_common::parse_bytes(value)
        .map(drop)
        .map_err(|e| format!("not a byte quantity (e.g. 1GB, 1Gi, 512Mi): {}", e.why))
}

/// A duration in the grammar the GC reads `--gc-threshold` with (`coredump_common`'s, Go's):
/// `30m`, `1h30m`, `90s`, `1.5h`, `0`.
pub(crate) fn duration(value: &str) -> Result<(), String> {
    coredump_common::parse_duration(value)
        .map(drop)
        .map_err(|e| format!("not a duration (e.g. 30m, 1h30m, 90s): {}", e.why))
}

/// A blob store as the roles' `--blob-store` takes it (their own parser, so a manifest `deploy`
/// writes never names a store the roles refuse): `local`, `s3://`, `gs://` or `az://`.
pub(crate) fn blob_store(value: &str) -> Result<(), String> {
    value
        .parse::<coredump_objstore::BlobStoreSelector>()
        .map(drop)
        .map_err(|e| e.to_string())
}

/// One `--etcd-servers` endpoint as the API server dials it: `http://` or `https://`, a host
/// (a DNS name, an IPv4 address or a bracketed IPv6 address) and an optional port, nothing else
/// (no user, path, query or fragment: etcd's client URLs have none).
pub(crate) fn etcd_url(value: &str) -> Result<(), String> {
    let (scheme, rest) = value
        .split_once("://")
        .ok_or("must be a URL such as https://etcd-0.example:2379")?;
    if scheme != "http" && scheme != "https" {
        return Err(format!("scheme {scheme:?} is not http or https"));
    }
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if let Some(c) = authority
        .chars()
        .find(|c| matches!(c, '/' | '?' | '#' | '@'))
    {
        return Err(format!("must be scheme://host[:port] only (found {c:?})"));
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (address, after) = v6.split_once(']').ok_or("unclosed '[' in the host")?;
            address
                .parse::<std::net::Ipv6Addr>()
                .map_err(|_| format!("{address:?} is not an IPv6 address"))?;
            match after {
                "" => (address, None),
                _ => (
                    address,
                    Some(after.strip_prefix(':').ok_or("junk after ']'")?),
                ),
            }
        }
        None => match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    if host.is_empty() {
        return Err("has no host".into());
    }
    if !authority.starts_with('[') {
        coredump_api::validation::dns1123_subdomain(&host.to_ascii_lowercase())
            .map_err(|why| format!("host {host:?}: {why}"))?;
    }
    if let Some(port) = port {
        match port.parse::<u16>() {
            Ok(1..) => {}
            _ => return Err(format!("port {port:?} is not 1 to 65535")),
        }
    }
    Ok(())
}

/// An absolute path without `..` (a hostPath or mount path in a pod spec).
pub(crate) fn absolute_path(value: &str) -> Result<(), String> {
    if !value.starts_with('/') {
        return Err("must be an absolute path".into());
    }
    if value.split('/').any(|part| part == "..") {
        return Err("must not contain '..'".into());
    }
    Ok(())
}

/// A container image reference: non-empty, no whitespace or control characters.
pub(crate) fn image(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain whitespace".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(dns1123_label("default"), Ok(()));
        assert_eq!(dns1123_label("9lives-ns"), Ok(()));
        assert!(dns1123_label("").is_err());
        assert!(dns1123_label("Upper").is_err());
        assert!(dns1123_label("dot.ted").is_err());
        assert!(dns1123_label("-lead").is_err());
        assert!(dns1123_label("trail-").is_err());
        assert!(dns1123_label(&"a".repeat(64)).is_err());
        assert_eq!(dns1123_label(&"a".repeat(63)), Ok(()));
        assert_eq!(dns1035_label("coredump"), Ok(()));
        assert!(dns1035_label("1coredump").is_err());
    }

    #[test]
    fn sizes() {
        // The agent's grammar: what it accepts, deploy accepts (1.5Gi was refused before).
        for ok in [
            "1GB",
            "1G",
            "1Gi",
            "512Mi",
            "1073741824",
            "10TiB",
            "1.5Gi",
            "1e9",
            "0",
        ] {
            assert_eq!(size(ok), Ok(()), "{ok}");
        }
        for bad in ["", "GB", "1 GB", "1gb", "-1G", "1Xi"] {
            assert!(size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        // The GC's grammar: `0` (collect at once) included.
        for ok in [
            "30m", "1h30m", "90s", "1.5h", "250ms", "10µs", "1h0m0s", "0",
        ] {
            assert_eq!(duration(ok), Ok(()), "{ok}");
        }
        for bad in ["", "30", "m", "30 m", "30min", "1d", "-5m", "1h30"] {
            assert!(duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn blob_stores() {
        for ok in [
            "local",
            "s3://cores",
            "s3://my.cores-1/cluster-a",
            "s3://cores/a/b",
            "gs://cores",
            "az://cores/x",
        ] {
            assert_eq!(blob_store(ok), Ok(()), "{ok}");
        }
        for bad in ["", "s3://", "s3://Cores", "s3://cores/../x", "file:///tmp"] {
            assert!(blob_store(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn etcd_urls() {
        for ok in [
            "https://etcd-0.etcd.db.svc:2379",
            "http://127.0.0.1:2379",
            "https://etcd.example",
            "https://[::1]:2379",
            "https://[fd00::5]",
            "https://ETCD.Example:2379/",
        ] {
            assert_eq!(etcd_url(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "etcd:2379",
            "grpc://etcd:2379",
            "https://",
            "https://:2379",
            "https://etcd:0",
            "https://etcd:99999",
            "https://etcd:port",
            "https://etcd:2379/v3",
            "https://user@etcd:2379",
            "https://etcd:2379?x=1",
            "https://[::1",
            "https://[nope]:2379",
            "https://et cd:2379",
        ] {
            assert!(etcd_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn paths_and_images() {
        assert_eq!(absolute_path("/tmp/coredump-backend-storage"), Ok(()));
        assert!(absolute_path("tmp/x").is_err());
        assert!(absolute_path("/tmp/../etc").is_err());
        assert_eq!(image("quay.io/coreos/etcd:v3.6.4"), Ok(()));
        assert!(image("").is_err());
        assert!(image("a b").is_err());
    }
}

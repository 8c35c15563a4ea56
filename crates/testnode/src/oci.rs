//! OCI image archives without a registry or a daemon: one uncompressed layer holding the given
//! files, its config and manifest, in an OCI image layout packed as a tar, which
//! `ctr images import` reads. The index names the image (`io.containerd.image.name`), so the
//! import needs no `--base-name`.
//!
//! Every file of the layer is owned by root with a fixed modification time, so the same inputs
//! give the same digests.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::NodeError;

/// One file of an image.
#[derive(Debug, Clone)]
pub struct ImageFile {
    /// Absolute path inside the image (`/usr/local/bin/etcd`).
    pub path: String,
    /// Where its bytes come from on this machine.
    pub source: PathBuf,
    /// Permission bits.
    pub mode: u32,
}

/// What [`write_archive`] builds.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    /// Fully qualified reference (`docker.io/library/name:tag`): the CRI resolves short names
    /// that way.
    pub name: String,
    /// The layer's files (parent directories are added).
    pub files: Vec<ImageFile>,
    /// `Entrypoint` of the config (pods may override it with `command`).
    pub entrypoint: Vec<String>,
}

/// The fully qualified form of a short image reference, as the CRI stores it
/// (`pause:3.10` → `docker.io/library/pause:3.10`, `registry.k8s.io/pause:3.10` unchanged).
pub fn qualified(reference: &str) -> String {
    let (first, rest) = match reference.split_once('/') {
        Some((first, rest)) => (first, Some(rest)),
        None => (reference, None),
    };
    let is_registry = first.contains('.') || first.contains(':') || first == "localhost";
    match rest {
        Some(_) if is_registry => reference.to_string(),
        Some(_) => format!("docker.io/{reference}"),
        None => format!("docker.io/library/{reference}"),
    }
}

/// The OCI architecture name of this machine.
fn architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// A blob of the layout: digest (`sha256:<hex>`) and size.
struct Blob {
    hex: String,
    size: u64,
}

impl Blob {
    fn of(bytes: &[u8]) -> Blob {
        Blob {
            hex: hex::encode(Sha256::digest(bytes)),
            size: bytes.len() as u64,
        }
    }

    fn digest(&self) -> String {
        format!("sha256:{}", self.hex)
    }
}

/// Writes `spec` as an OCI image layout in a tar at `out`; `scratch` holds the layer while it
/// is built (removed afterwards).
pub fn write_archive(spec: &ImageSpec, out: &Path, scratch: &Path) -> Result<(), NodeError> {
    let layer_path = scratch.join(format!("layer-{}.tar", spec.name.replace(['/', ':'], "_")));
    let layer = write_layer(&spec.files, &layer_path)?;
    let config = serde_json::json!({
        "architecture": architecture(),
        "os": "linux",
        "config": {
            "Entrypoint": spec.entrypoint,
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        },
        "rootfs": {"type": "layers", "diff_ids": [layer.digest()]},
    })
    .to_string()
    .into_bytes();
    let config_blob = Blob::of(&config);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_blob.digest(),
            "size": config_blob.size,
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": layer.digest(),
            "size": layer.size,
        }],
    })
    .to_string()
    .into_bytes();
    let manifest_blob = Blob::of(&manifest);
    let tag = spec.name.rsplit_once(':').map_or("latest", |(_, t)| t);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_blob.digest(),
            "size": manifest_blob.size,
            "platform": {"architecture": architecture(), "os": "linux"},
            "annotations": {
                "io.containerd.image.name": spec.name,
                "org.opencontainers.image.ref.name": tag,
            },
        }],
    })
    .to_string()
    .into_bytes();

    let io = |e| NodeError::io("write image archive", out, e);
    let file = File::create(out).map_err(io)?;
    let mut tar = tar::Builder::new(BufWriter::new(file));
    let mut append = |name: &str, size: u64, data: &mut dyn Read| {
        let mut header = tar::Header::new_ustar();
        header.set_size(size);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        tar.append_data(&mut header, name, data)
    };
    append(
        "oci-layout",
        30,
        &mut &br#"{"imageLayoutVersion":"1.0.0"}"#[..],
    )
    .map_err(io)?;
    append("index.json", index.len() as u64, &mut &index[..]).map_err(io)?;
    for (blob, bytes) in [(&config_blob, &config), (&manifest_blob, &manifest)] {
        append(
            &format!("blobs/sha256/{}", blob.hex),
            blob.size,
            &mut &bytes[..],
        )
        .map_err(io)?;
    }
    let mut layer_file =
        File::open(&layer_path).map_err(|e| NodeError::io("open", &layer_path, e))?;
    append(
        &format!("blobs/sha256/{}", layer.hex),
        layer.size,
        &mut layer_file,
    )
    .map_err(io)?;
    tar.into_inner().and_then(|mut w| w.flush()).map_err(io)?;
    std::fs::remove_file(&layer_path).map_err(|e| NodeError::io("remove", &layer_path, e))?;
    Ok(())
}

/// The layer tar: parent directories, then the files; returns its digest and size.
fn write_layer(files: &[ImageFile], path: &Path) -> Result<Blob, NodeError> {
    let io = |e| NodeError::io("write layer", path, e);
    // Read back below for its digest.
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(io)?;
    let mut tar = tar::Builder::new(BufWriter::new(file));
    let mut dirs: Vec<String> = Vec::new();
    for f in files {
        let mut parent = Path::new(&f.path).parent();
        let mut chain = Vec::new();
        while let Some(p) = parent.filter(|p| *p != Path::new("/")) {
            chain.push(p.to_string_lossy().trim_start_matches('/').to_string());
            parent = p.parent();
        }
        for dir in chain.into_iter().rev() {
            if !dirs.contains(&dir) {
                dirs.push(dir);
            }
        }
    }
    for dir in &dirs {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_size(0);
        header.set_mode(0o755);
        header.set_mtime(0);
        header.set_cksum();
        tar.append_data(&mut header, format!("{dir}/"), std::io::empty())
            .map_err(io)?;
    }
    for f in files {
        let mut source = File::open(&f.source).map_err(|e| NodeError::io("open", &f.source, e))?;
        let size = source
            .metadata()
            .map_err(|e| NodeError::io("stat", &f.source, e))?
            .len();
        let mut header = tar::Header::new_ustar();
        header.set_size(size);
        header.set_mode(f.mode);
        header.set_mtime(0);
        header.set_cksum();
        tar.append_data(&mut header, f.path.trim_start_matches('/'), &mut source)
            .map_err(io)?;
    }
    let mut file = tar
        .into_inner()
        .map_err(io)?
        .into_inner()
        .map_err(|e| io(e.into_error()))?;
    file.flush().map_err(io)?;
    file.rewind().map_err(io)?;
    let mut hasher = Sha256::new();
    let size = std::io::copy(&mut file, &mut hasher).map_err(io)?;
    Ok(Blob {
        hex: hex::encode(hasher.finalize()),
        size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn short_names_are_qualified_like_the_cri_does() {
        assert_eq!(qualified("pause:3.10"), "docker.io/library/pause:3.10");
        assert_eq!(
            qualified("coredump/crasher:1"),
            "docker.io/coredump/crasher:1"
        );
        assert_eq!(
            qualified("registry.k8s.io/pause:3.10"),
            "registry.k8s.io/pause:3.10"
        );
        assert_eq!(qualified("localhost/x:1"), "localhost/x:1");
        assert_eq!(qualified("localhost:5000/x:1"), "localhost:5000/x:1");
    }

    /// Unpacks the archive and checks every digest and size the index and manifest name.
    #[test]
    fn archive_is_a_consistent_oci_layout() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("prog");
        std::fs::write(&bin, b"#!/bin/sh\necho hi\n").unwrap();
        let spec = ImageSpec {
            name: "docker.io/library/t:1".into(),
            files: vec![ImageFile {
                path: "/usr/local/bin/prog".into(),
                source: bin,
                mode: 0o755,
            }],
            entrypoint: vec!["/usr/local/bin/prog".into()],
        };
        let out = dir.path().join("t.tar");
        write_archive(&spec, &out, dir.path()).unwrap();
        let again = dir.path().join("t2.tar");
        write_archive(&spec, &again, dir.path()).unwrap();
        assert_eq!(
            std::fs::read(&out).unwrap(),
            std::fs::read(&again).unwrap(),
            "deterministic"
        );

        let mut entries = BTreeMap::new();
        let mut archive = tar::Archive::new(File::open(&out).unwrap());
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            entries.insert(name, data);
        }
        let blob = |digest: &str| {
            let hex = digest.strip_prefix("sha256:").unwrap();
            let data = &entries[&format!("blobs/sha256/{hex}")];
            assert_eq!(hex::encode(Sha256::digest(data)), hex);
            data.clone()
        };
        let index: serde_json::Value = serde_json::from_slice(&entries["index.json"]).unwrap();
        let desc = &index["manifests"][0];
        assert_eq!(
            desc["annotations"]["io.containerd.image.name"],
            "docker.io/library/t:1"
        );
        let manifest: serde_json::Value =
            serde_json::from_slice(&blob(desc["digest"].as_str().unwrap())).unwrap();
        let config: serde_json::Value =
            serde_json::from_slice(&blob(manifest["config"]["digest"].as_str().unwrap())).unwrap();
        let layer_digest = manifest["layers"][0]["digest"].as_str().unwrap();
        assert_eq!(config["rootfs"]["diff_ids"][0], layer_digest);
        let layer = blob(layer_digest);
        assert_eq!(manifest["layers"][0]["size"], layer.len());
        let mut layer = tar::Archive::new(&layer[..]);
        let names: Vec<(String, u32)> = layer
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    e.header().mode().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            names,
            [
                ("usr/".to_string(), 0o755),
                ("usr/local/".to_string(), 0o755),
                ("usr/local/bin/".to_string(), 0o755),
                ("usr/local/bin/prog".to_string(), 0o755),
            ]
        );
    }
}

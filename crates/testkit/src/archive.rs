//! Reading the `dump` subresource's `tar.gz` back in tests: every entry's path and bytes, in
//! archive order, so a test compares the downloaded cores byte for byte.

use std::io::Read;

/// Every entry of a gzip-compressed tar archive as `(path, bytes)`, in archive order.
pub fn untar_gz(bytes: &[u8]) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    let mut out = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.to_string_lossy().into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data)?;
        out.push((path, data));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_entries_and_refuses_garbage() {
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        for (path, data) in [
            ("ns/uid/app/a.core.zst", &b"core"[..]),
            ("ns/uid/app/a.json", b"{}"),
        ] {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, path, data).unwrap();
        }
        let tgz = builder.into_inner().unwrap().finish().unwrap();
        assert_eq!(
            untar_gz(&tgz).unwrap(),
            vec![
                ("ns/uid/app/a.core.zst".to_string(), b"core".to_vec()),
                ("ns/uid/app/a.json".to_string(), b"{}".to_vec()),
            ]
        );
        assert!(untar_gz(b"not a gzip stream").is_err());
    }
}

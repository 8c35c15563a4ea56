//! The S3 `ETag` as a checksum of what was uploaded. For an object stored by one PUT, S3 (and
//! the S3-compatible servers that follow it: SeaweedFS, MinIO, Ceph) report the MD5 of its
//! bytes; for one completed from a multipart upload, the MD5 of the concatenated MD5s of its
//! parts, then `-` and the number of parts. The store computes the same while it uploads and
//! compares it with what the completed upload reports, so a part corrupted on the way (or
//! stored wrong) fails the upload instead of leaving a core that differs from the spool's.
//!
//! An `ETag` of another form (server-side encryption with KMS keys reports no MD5; GCS and
//! Azure have their own) is not comparable: [`Md5Check::check`] says so and the size check
//! alone applies, as before.

use md5::{Digest, Md5};

/// The MD5 of one part (or of a whole single-PUT object).
pub type PartMd5 = [u8; 16];

/// The MD5 of `bytes`.
pub fn md5(bytes: &[u8]) -> PartMd5 {
    Md5::digest(bytes).into()
}

/// What an upload sent, to compare with the `ETag` its completion reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Md5Check {
    /// One PUT of an object with this MD5.
    Single(PartMd5),
    /// A multipart upload of parts with these MD5s, in order.
    Multipart(Vec<PartMd5>),
}

/// The outcome of a comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The reported `ETag` is the MD5 (of MD5s) of what was sent.
    Verified,
    /// No `ETag`, or one not in the MD5 form of this kind of upload: nothing to compare.
    NotComparable,
    /// An MD5-form `ETag` that differs from what was sent: the stored object is not ours.
    Mismatch {
        /// The `ETag` the upload should have.
        expected: String,
        /// The one the store reported.
        reported: String,
    },
}

impl Md5Check {
    /// The `ETag` (without quotes) S3 reports for this upload.
    pub fn expected(&self) -> String {
        match self {
            Self::Single(md5) => hex(md5),
            Self::Multipart(parts) => {
                let mut all = Md5::new();
                for part in parts {
                    all.update(part);
                }
                let digest: PartMd5 = all.finalize().into();
                format!("{}-{}", hex(&digest), parts.len())
            }
        }
    }

    /// Compares with the `ETag` the completed upload reported.
    pub fn check(&self, reported: Option<&str>) -> Verdict {
        let Some(reported) = reported else {
            return Verdict::NotComparable;
        };
        let reported = reported.trim_matches('"').to_ascii_lowercase();
        let (digest, parts) = match reported.split_once('-') {
            Some((digest, parts)) => (digest, Some(parts)),
            None => (reported.as_str(), None),
        };
        let md5_form = digest.len() == 32 && digest.bytes().all(|b| b.is_ascii_hexdigit());
        let same_kind = match (self, parts) {
            (Self::Single(_), None) => true,
            (Self::Multipart(sent), Some(parts)) => parts == sent.len().to_string(),
            _ => false,
        };
        if !md5_form || !same_kind {
            return Verdict::NotComparable;
        }
        let expected = self.expected();
        if reported == expected {
            Verdict::Verified
        } else {
            Verdict::Mismatch { expected, reported }
        }
    }
}

/// `bytes` in lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An MD5 back from its hex form ([`hex`]); `None` if `text` is not one.
pub fn from_hex(text: &str) -> Option<PartMd5> {
    let mut out = [0u8; 16];
    if text.len() != 32 || !text.is_ascii() {
        return None;
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_put_etag_is_the_md5() {
        // MD5("hello") = 5d41402abc4b2a76b9719d911017c592
        let check = Md5Check::Single(md5(b"hello"));
        assert_eq!(check.expected(), "5d41402abc4b2a76b9719d911017c592");
        assert_eq!(
            check.check(Some("\"5D41402ABC4B2A76B9719D911017C592\"")),
            Verdict::Verified
        );
        assert!(matches!(
            check.check(Some("\"00000000000000000000000000000000\"")),
            Verdict::Mismatch { .. }
        ));
        assert_eq!(check.check(None), Verdict::NotComparable);
        assert_eq!(check.check(Some("0x8DC0FFEE")), Verdict::NotComparable);
        assert_eq!(
            check.check(Some("5d41402abc4b2a76b9719d911017c592-2")),
            Verdict::NotComparable
        );
    }

    #[test]
    fn md5_hex_round_trips() {
        let digest = md5(b"hello");
        assert_eq!(from_hex(&hex(&digest)), Some(digest));
        assert_eq!(from_hex("5d41"), None);
        assert_eq!(from_hex(&"zz".repeat(16)), None);
    }

    #[test]
    fn multipart_etag_is_the_md5_of_the_part_md5s() {
        let parts = vec![md5(b"a"), md5(b"b")];
        let check = Md5Check::Multipart(parts.clone());
        let mut concat = Vec::new();
        concat.extend_from_slice(&parts[0]);
        concat.extend_from_slice(&parts[1]);
        let want = format!("{}-2", hex(&md5(&concat)));
        assert_eq!(check.expected(), want);
        assert_eq!(check.check(Some(&format!("\"{want}\""))), Verdict::Verified);
        let other = format!("{}-2", hex(&md5(b"x")));
        assert!(matches!(
            check.check(Some(&other)),
            Verdict::Mismatch { .. }
        ));
        let three = format!("{}-3", hex(&md5(&concat)));
        assert_eq!(check.check(Some(&three)), Verdict::NotComparable);
    }
}

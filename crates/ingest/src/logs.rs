//! The container's last words: the tail of the crashed container's log, read from the node's
//! pod log directory (kubelet's `/var/log/pods/<namespace>_<pod>_<uid>/<container>/<n>.log`,
//! CRI format) and kept beside the core as `<name>.log`, served as the `log` subresource.
//!
//! Bounded: at most [`MAX_TAIL`] bytes from the end of one file, cut to whole lines, the CRI
//! prefix (`<time> <stream> <P|F> `) removed. Every path step is opened without following
//! symlinks, and the names come from the pod informer (namespace, pod, container) and the
//! cgroup (pod UID), never from the crashed process.

use std::io::{Read, Seek, SeekFrom};
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{Mode, OFlags};

/// Bytes read from the end of the log.
pub const MAX_TAIL: u64 = 16 << 10;

fn open_dir_at(dir: &OwnedFd, name: &str) -> Option<OwnedFd> {
    if name.is_empty() || name.contains('/') || name == ".." || name == "." {
        return None;
    }
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()
}

/// The log tail of `container` of pod `namespace/pod` (UID `uid`) under `root`, from the log
/// file last written no later than `crash_time` + 10 s (a restarted container writes the next
/// file); `None` when there is none.
pub fn tail(
    root: &Path,
    namespace: &str,
    pod: &str,
    uid: &str,
    container: &str,
    crash_time: i64,
) -> Option<String> {
    let root_fd = rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let pod_dir = open_dir_at(&root_fd, &format!("{namespace}_{pod}_{uid}"))?;
    let dir = open_dir_at(&pod_dir, container)?;
    let mut best: Option<(i64, String)> = None;
    let entries = rustix::fs::Dir::read_from(&dir).ok()?;
    for entry in entries.take(1024).flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".log") || name.starts_with('.') {
            continue;
        }
        let Ok(st) = rustix::fs::statat(&dir, name.as_str(), rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
        else {
            continue;
        };
        if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
            continue;
        }
        let mtime = st.st_mtime;
        let fits = mtime <= crash_time + 10;
        let better = match &best {
            None => true,
            Some((m, _)) => {
                let best_fits = *m <= crash_time + 10;
                (fits && !best_fits) || (fits == best_fits && mtime > *m)
            }
        };
        if better {
            best = Some((mtime, name));
        }
    }
    let (_, name) = best?;
    let fd = rustix::fs::openat(
        &dir,
        name.as_str(),
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
        Mode::empty(),
    )
    .ok()?;
    let mut file = std::fs::File::from(fd);
    let len = file.metadata().ok()?.len();
    let start = len.saturating_sub(MAX_TAIL);
    file.seek(SeekFrom::Start(start)).ok()?;
    let mut bytes = Vec::with_capacity((len - start) as usize);
    file.take(MAX_TAIL).read_to_end(&mut bytes).ok()?;
    if start > 0 {
        // Drop the partial first line.
        let cut = bytes.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1);
        bytes.drain(..cut);
    }
    let text = String::from_utf8_lossy(&bytes);
    Some(text.lines().map(strip_cri).collect::<Vec<_>>().join("\n") + "\n")
}

/// `2024-05-01T10:00:00.1Z stdout F message` → `message` (lines in another format unchanged).
fn strip_cri(line: &str) -> &str {
    let mut parts = line.splitn(4, ' ');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(t), Some("stdout" | "stderr"), Some("F" | "P"), Some(msg)) if t.contains('T') => msg,
        _ => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_of_the_crashed_containers_log() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("team-a_web-0_uid-1/app");
        std::fs::create_dir_all(&dir).unwrap();
        let mut log = String::new();
        for i in 0..2000 {
            log.push_str(&format!("2024-05-01T10:00:00.{i}Z stdout F line {i}\n"));
        }
        log.push_str("2024-05-01T10:00:01Z stderr F panic: boom\n");
        std::fs::write(dir.join("0.log"), &log).unwrap();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let t = tail(root.path(), "team-a", "web-0", "uid-1", "app", now).unwrap();
        assert!(t.ends_with("line 1999\npanic: boom\n"), "{t}");
        assert!(t.len() as u64 <= MAX_TAIL);
        assert!(t.starts_with("line "), "a whole line first: {}", &t[..40]);
        assert_eq!(
            tail(root.path(), "team-a", "web-0", "uid-1", "other", now),
            None
        );
        assert_eq!(
            tail(root.path(), "team-b", "web-0", "uid-1", "app", now),
            None
        );
        assert_eq!(
            tail(root.path(), "team-a", "web-0", "uid-1", "..", now),
            None
        );
    }

    #[test]
    fn symlinks_are_not_followed() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("ns_p_u/c");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(root.path().join("secret"), "secret\n").unwrap();
        std::os::unix::fs::symlink(root.path().join("secret"), dir.join("0.log")).unwrap();
        assert_eq!(tail(root.path(), "ns", "p", "u", "c", i64::MAX / 2), None);
        let other = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(other.path(), root.path().join("ns_q_u")).unwrap();
        assert_eq!(tail(root.path(), "ns", "q", "u", "c", i64::MAX / 2), None);
    }

    #[test]
    fn cri_prefix() {
        assert_eq!(
            strip_cri("2024-05-01T10:00:00Z stdout F hi there"),
            "hi there"
        );
        assert_eq!(strip_cri("plain text line"), "plain text line");
    }
}

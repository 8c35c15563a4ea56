//! `parse_proc_cgroup` is fed text from a crashed process's `/proc` entry in
//! the crash path: it must never panic, and whatever it returns must come
//! from the input. Deterministic pseudo-random inputs and mutations of valid
//! files check both.

use coredump_cgroup::{ContainerId, PodIdentity, parse_proc_cgroup};

const UID: &str = "5f2a8c1e-3b4d-4e6f-8a9b-0c1d2e3f4a5b";
const UID_US: &str = "5f2a8c1e_3b4d_4e6f_8a9b_0c1d2e3f4a5b";
const CID: &str = "d1f3a5c7e9b2d4f6a8c0e2b4d6f8a0c2e4b6d8f0a2c4e6b8d0f2a4c6e8b0d2f4";

/// splitmix64: tiny, deterministic, good enough to pick tokens.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const TOKENS: &[&str] = &[
    "/",
    "/",
    "/",
    ":",
    "0::",
    "4:memory:",
    "\n",
    "-",
    "_",
    ".",
    "..",
    "kubepods",
    "kubepods.slice",
    "kubepods-",
    "pod",
    ".slice",
    ".scope",
    "burstable",
    "besteffort",
    "cri-containerd-",
    "crio-",
    "crio-conmon-",
    "docker-",
    "kubelet",
    UID,
    UID_US,
    CID,
    "a",
    "f",
    "0",
    "9",
    "é",
    "\u{0}",
    "ß",
    " (deleted)",
    "\r",
    "://",
    "containerd",
    "\u{1F600}",
];

fn valid_inputs() -> Vec<String> {
    vec![
        format!(
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_US}.slice/cri-containerd-{CID}.scope\n"
        ),
        format!("0::/kubepods.slice/kubepods-pod{UID_US}.slice/crio-{CID}.scope\n"),
        format!(
            "12:memory:/kubepods/besteffort/pod{UID}/{CID}\n11:cpu,cpuacct:/kubepods/besteffort/pod{UID}/{CID}\n1:name=systemd:/kubepods/besteffort/pod{UID}/{CID}\n0::/\n"
        ),
        format!(
            "0::/system.slice/docker-{CID}.scope/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{UID_US}.slice/cri-containerd-{CID}.scope\n"
        ),
        format!("3:pids:/docker/{CID}/kubepods/pod{UID}/crio-conmon-{CID}\n"),
    ]
}

/// Checks what a parse returned against the input it came from.
fn check_result(input: &str, got: Option<PodIdentity>) -> bool {
    let Some(pod) = got else { return false };
    let lower = input.to_ascii_lowercase();
    let uid = &pod.pod_uid;
    let uuid_form = uid.len() == 36
        && uid.char_indices().all(|(i, c)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                c == '-'
            } else {
                c.is_ascii_hexdigit() && !c.is_ascii_uppercase()
            }
        });
    let hash_form = uid.len() == 32 && uid.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f'));
    assert!(uuid_form || hash_form, "bad uid {uid:?} from {input:?}");
    assert!(
        lower.contains(uid.as_str()) || lower.contains(&uid.replace('-', "_")),
        "uid {uid} not in {input:?}"
    );
    if let Some(c) = &pod.container {
        assert_eq!(c.id.len(), 64, "{input:?}");
        assert!(
            c.id.chars().all(|ch| matches!(ch, '0'..='9' | 'a'..='f')),
            "{input:?}"
        );
        assert!(lower.contains(&c.id), "container {c} not in {input:?}");
        assert_eq!(
            ContainerId::parse_status_form(&c.to_string()).as_ref(),
            Some(c)
        );
    }
    true
}

#[test]
fn random_token_soup_never_panics_and_never_invents() {
    let mut rng = Rng(0x5eed_c0de);
    let mut some = 0;
    for _ in 0..3000 {
        let mut text = String::new();
        for _ in 0..rng.below(40) {
            text.push_str(rng.pick(TOKENS));
        }
        if check_result(&text, parse_proc_cgroup(&text)) {
            some += 1;
        }
        // Status-form parsing sees the same kind of soup.
        if let Some(c) = ContainerId::parse_status_form(&text) {
            assert_eq!(
                c.to_string().to_ascii_lowercase(),
                text.to_ascii_lowercase()
            );
        }
    }
    // Soup almost never forms a whole valid path; it must not be parsed as one.
    eprintln!("soup some={some}");
    assert!(some < 30, "{some} random inputs parsed as pods");
}

#[test]
fn mutated_valid_files_never_panic_and_never_invent() {
    let inputs = valid_inputs();
    for input in &inputs {
        assert!(
            check_result(input, parse_proc_cgroup(input)),
            "valid input rejected: {input}"
        );
    }
    let mut rng = Rng(42);
    let (mut some, mut none) = (0, 0);
    for _ in 0..3000 {
        let mut chars: Vec<char> = inputs[rng.below(inputs.len())].chars().collect();
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(chars.len() + 1);
            match rng.below(5) {
                0 if at < chars.len() => {
                    let end = (at + 1 + rng.below(8)).min(chars.len());
                    chars.drain(at..end);
                }
                1 => chars
                    .splice(at..at, rng.pick(TOKENS).chars())
                    .for_each(drop),
                2 if at < chars.len() => chars[at] = rng.pick(TOKENS).chars().next().unwrap_or('x'),
                3 => chars.truncate(at),
                _ => {
                    let dup: Vec<char> = chars[at..].to_vec();
                    chars.extend(dup);
                }
            }
        }
        let text: String = chars.into_iter().collect();
        if check_result(&text, parse_proc_cgroup(&text)) {
            some += 1;
        } else {
            none += 1;
        }
    }
    // The mutations must exercise both outcomes to mean anything.
    eprintln!("some={some} none={none}");
    assert!(some > 100 && none > 100, "some={some} none={none}");
}

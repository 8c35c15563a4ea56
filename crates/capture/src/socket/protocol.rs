//! The kernel's coredump socket protocol (`include/uapi/linux/coredump.h`), as plain values:
//! parsing the request, encoding the answer, reading the mark. No I/O here.
//!
//! On a connection the kernel first sends a `struct coredump_req` (`u32 size`, `u32 size_ack`,
//! `u64 mask`; 16 bytes in the first version, `size` says how many follow), the server answers
//! with a `struct coredump_ack` (`u32 size`, `u32 spare` = 0, `u64 mask`; at most `size_ack`
//! bytes), and the kernel confirms with a 4-byte `enum coredump_mark` (0 = accepted). With
//! `KERNEL` the core follows on the same stream, then the kernel shuts its side down; with
//! `WAIT` it keeps the task until the server closes. Integers are in the machine's byte order.

/// `COREDUMP_KERNEL`: the kernel writes the core into the socket.
pub const COREDUMP_KERNEL: u64 = 1 << 0;
/// `COREDUMP_USERSPACE`: the server produces the core itself (unused here).
pub const COREDUMP_USERSPACE: u64 = 1 << 1;
/// `COREDUMP_REJECT`: no core at all; the task is released at once.
pub const COREDUMP_REJECT: u64 = 1 << 2;
/// `COREDUMP_WAIT`: keep the task (and its `/proc/<pid>`) until the server closes.
pub const COREDUMP_WAIT: u64 = 1 << 3;

/// `COREDUMP_REQ_SIZE_VER0`: size of the first published request.
pub const REQ_SIZE_VER0: u32 = 16;
/// `COREDUMP_ACK_SIZE_VER0`: size of the first published answer, the one we send.
pub const ACK_SIZE_VER0: u32 = 16;
/// A request claiming to be larger than this is not from a kernel we can talk to.
pub const REQ_SIZE_MAX: u32 = 4096;
/// Bytes of the mark the kernel sends after our answer (`enum coredump_mark` is a `u32`).
pub const MARK_LEN: usize = 4;

/// What we need the kernel to offer: write the core for us, refuse, and wait for us.
const NEEDED: u64 = COREDUMP_KERNEL | COREDUMP_REJECT | COREDUMP_WAIT;

/// A request as the kernel sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// Bytes of the whole request (more than 16 on kernels with a longer struct).
    pub size: u32,
    /// Largest answer the kernel accepts.
    pub size_ack: u32,
    /// Features the kernel offers.
    pub mask: u64,
}

/// Why a request is not one we can answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// Fewer bytes than the first version of the request.
    #[error("request of {0} bytes is shorter than the {REQ_SIZE_VER0} of its first version")]
    Short(usize),
    /// `size` outside `16..=4096`.
    #[error("request announces {0} bytes")]
    BadSize(u32),
    /// `size_ack` below the answer we send.
    #[error("kernel accepts answers of {0} bytes, we send {ACK_SIZE_VER0}")]
    BadAckSize(u32),
    /// The kernel does not offer `KERNEL`, `REJECT` and `WAIT`.
    #[error("kernel offers features {0:#x}, we need {NEEDED:#x}")]
    MissingFeatures(u64),
}

impl Request {
    /// Parses the first 16 bytes of a request and checks it is one we can answer.
    pub fn parse(head: &[u8]) -> Result<Request, ProtocolError> {
        let head: &[u8; 16] = head
            .get(..REQ_SIZE_VER0 as usize)
            .and_then(|h| h.try_into().ok())
            .ok_or(ProtocolError::Short(head.len()))?;
        let [s0, s1, s2, s3, a0, a1, a2, a3, m @ ..] = *head;
        let request = Request {
            size: u32::from_ne_bytes([s0, s1, s2, s3]),
            size_ack: u32::from_ne_bytes([a0, a1, a2, a3]),
            mask: u64::from_ne_bytes(m),
        };
        if !(REQ_SIZE_VER0..=REQ_SIZE_MAX).contains(&request.size) {
            return Err(ProtocolError::BadSize(request.size));
        }
        if request.size_ack < ACK_SIZE_VER0 {
            return Err(ProtocolError::BadAckSize(request.size_ack));
        }
        if request.mask & NEEDED != NEEDED {
            return Err(ProtocolError::MissingFeatures(request.mask));
        }
        Ok(request)
    }

    /// Bytes of the request beyond its first version, to read and discard.
    pub fn trailing(&self) -> usize {
        (self.size - REQ_SIZE_VER0) as usize
    }
}

/// Our answer to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// `KERNEL | WAIT`: stream the core to us and keep the task until we close.
    Capture,
    /// `REJECT`: no core; the task goes at once.
    Reject,
}

impl Answer {
    /// The `mask` of the answer.
    pub fn mask(self) -> u64 {
        match self {
            Answer::Capture => COREDUMP_KERNEL | COREDUMP_WAIT,
            Answer::Reject => COREDUMP_REJECT,
        }
    }

    /// The `struct coredump_ack` bytes (first version: `size` 16, `spare` 0, `mask`).
    pub fn encode(self) -> [u8; ACK_SIZE_VER0 as usize] {
        let mut ack = [0u8; ACK_SIZE_VER0 as usize];
        ack[..4].copy_from_slice(&ACK_SIZE_VER0.to_ne_bytes());
        ack[8..].copy_from_slice(&self.mask().to_ne_bytes());
        ack
    }
}

/// The kernel's verdict on our answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// `COREDUMP_MARK_REQACK`: answer accepted.
    ReqAck,
    /// `COREDUMP_MARK_MINSIZE`: answer too short.
    MinSize,
    /// `COREDUMP_MARK_MAXSIZE`: answer too long.
    MaxSize,
    /// `COREDUMP_MARK_UNSUPPORTED`: a flag the kernel did not offer, or `spare` not zero.
    Unsupported,
    /// `COREDUMP_MARK_CONFLICTING`: not exactly one of `KERNEL`, `USERSPACE`, `REJECT`.
    Conflicting,
    /// A value this code does not know.
    Other(u32),
}

impl Mark {
    /// Decodes the 4 mark bytes.
    pub fn parse(bytes: [u8; MARK_LEN]) -> Mark {
        match u32::from_ne_bytes(bytes) {
            0 => Mark::ReqAck,
            1 => Mark::MinSize,
            2 => Mark::MaxSize,
            3 => Mark::Unsupported,
            4 => Mark::Conflicting,
            other => Mark::Other(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(size: u32, size_ack: u32, mask: u64) -> Vec<u8> {
        let mut v = size.to_ne_bytes().to_vec();
        v.extend_from_slice(&size_ack.to_ne_bytes());
        v.extend_from_slice(&mask.to_ne_bytes());
        v
    }

    #[test]
    fn parses_what_linux_6_17_sends() {
        // Seen on the wire from Linux 6.18: size 16, size_ack 16, mask 0xf.
        let r = Request::parse(&req(16, 16, 0xf)).unwrap();
        assert_eq!(
            r,
            Request {
                size: 16,
                size_ack: 16,
                mask: 0xf
            }
        );
        assert_eq!(r.trailing(), 0);
    }

    #[test]
    fn a_longer_future_request_is_accepted_and_its_tail_skipped() {
        let r = Request::parse(&req(24, 32, 0xff)).unwrap();
        assert_eq!(r.trailing(), 8);
    }

    #[test]
    fn refuses_what_it_cannot_answer() {
        assert_eq!(Request::parse(&[0; 15]), Err(ProtocolError::Short(15)));
        assert_eq!(
            Request::parse(&req(8, 16, 0xf)),
            Err(ProtocolError::BadSize(8))
        );
        assert_eq!(
            Request::parse(&req(5000, 16, 0xf)),
            Err(ProtocolError::BadSize(5000))
        );
        assert_eq!(
            Request::parse(&req(16, 8, 0xf)),
            Err(ProtocolError::BadAckSize(8))
        );
        assert_eq!(
            Request::parse(&req(16, 16, COREDUMP_KERNEL | COREDUMP_WAIT)),
            Err(ProtocolError::MissingFeatures(
                COREDUMP_KERNEL | COREDUMP_WAIT
            ))
        );
    }

    #[test]
    fn answers_are_the_kernel_layout() {
        let capture = Answer::Capture.encode();
        assert_eq!(&capture[..4], &16u32.to_ne_bytes());
        assert_eq!(&capture[4..8], &[0; 4], "spare must be zero");
        assert_eq!(&capture[8..], &9u64.to_ne_bytes(), "KERNEL|WAIT");
        assert_eq!(&Answer::Reject.encode()[8..], &4u64.to_ne_bytes());
        // The kernel refuses answers with not exactly one of KERNEL/USERSPACE/REJECT.
        for answer in [Answer::Capture, Answer::Reject] {
            let m = answer.mask() & (COREDUMP_KERNEL | COREDUMP_USERSPACE | COREDUMP_REJECT);
            assert_eq!(m.count_ones(), 1, "{answer:?}");
        }
    }

    #[test]
    fn marks() {
        assert_eq!(Mark::parse([0; 4]), Mark::ReqAck);
        assert_eq!(Mark::parse(4u32.to_ne_bytes()), Mark::Conflicting);
        assert_eq!(Mark::parse(77u32.to_ne_bytes()), Mark::Other(77));
    }
}

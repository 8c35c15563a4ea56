//! The kernel's coredump socket messages: the request, the mark, and the head of the core the
//! server reads the signal and the dumping thread from; and `/proc/<pid>/task/<tid>/stat`.

use coredump_capture::socket::identity::{from_core_head, stat_flags};
use coredump_capture::socket::protocol::{
    ACK_SIZE_VER0, Answer, COREDUMP_KERNEL, COREDUMP_REJECT, COREDUMP_WAIT, MARK_LEN, Mark,
    ProtocolError, REQ_SIZE_MAX, REQ_SIZE_VER0, Request,
};

/// Parses the input as each of the socket's messages. An accepted request is one the server
/// can answer (bounded size, room for our answer, the features we need).
pub fn socket(data: &[u8]) {
    match Request::parse(data) {
        Ok(req) => {
            assert!((REQ_SIZE_VER0..=REQ_SIZE_MAX).contains(&req.size));
            assert!(req.trailing() <= (REQ_SIZE_MAX - REQ_SIZE_VER0) as usize);
            assert!(req.size_ack >= ACK_SIZE_VER0);
            let needed = COREDUMP_KERNEL | COREDUMP_REJECT | COREDUMP_WAIT;
            assert_eq!(req.mask & needed, needed);
        }
        Err(ProtocolError::Short(n)) => {
            assert_eq!(n, data.len());
            assert!(n < REQ_SIZE_VER0 as usize);
        }
        Err(_) => assert!(data.len() >= REQ_SIZE_VER0 as usize),
    }
    if let Some(mark) = data
        .get(..MARK_LEN)
        .and_then(|m| <[u8; MARK_LEN]>::try_from(m).ok())
    {
        let value = u32::from_ne_bytes(mark);
        assert_eq!(matches!(Mark::parse(mark), Mark::Other(_)), value > 4);
    }
    for answer in [Answer::Capture, Answer::Reject] {
        let ack = answer.encode();
        assert_eq!(ack[8..], answer.mask().to_ne_bytes());
    }
    let _ = stat_flags(&String::from_utf8_lossy(data));
    let (signal, tid) = from_core_head(data);
    assert!(signal.is_none_or(|s| s > 0));
    assert!(tid.is_none_or(|t| t > 0));
}

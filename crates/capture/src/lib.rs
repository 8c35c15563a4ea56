//! The crash path of coredump-detector.
//!
//! * [`pipeline`]: drain a core from the kernel at pipe speed, release the crashed process,
//!   hash and compress behind the reader, bounded memory.
//! * [`splice`]: the pipeline's reader: `splice(2)` from the kernel's pipe into the spill file,
//!   read and copy from any other source.
//! * [`handler`]: the `core_pattern` pipe target (`coredump-detector handle ...`): limits,
//!   concurrency slots, `/proc` metadata, atomic publication of a spool entry.
//! * [`admission`]: the decisions and the publication every crash goes through, whichever way
//!   its core arrives.
//! * [`limits`]: crash-loop protection: per-pod and per-namespace rates and byte budgets,
//!   opt-out before any byte is written.
//! * [`socket`]: the kernel's coredump socket (`@@` in `core_pattern`, Linux >= 6.17): a server
//!   in the long-running process, no process spawned per crash, refusal before any byte.
//! * [`spool`]: the on-disk spool contract between the handler and the ingest.
//! * [`mapped`]: the crashed process's executable and libraries, opened while it is held and
//!   copied into the spool entry after the core, for the analysis and the debuginfod endpoint.
//! * [`kernel`]: `core_pattern` / `core_pipe_limit` management with restore on exit.
//! * [`forward`]: handing crashes outside pods to the `core_pattern` pipe that was there before.
#![deny(missing_docs)]

pub mod admission;
pub mod config;
pub mod error;
pub mod forward;
pub mod fsutil;
pub mod handler;
pub mod kernel;
pub mod limits;
pub mod mapped;
pub mod pipeline;
pub mod procinfo;
pub mod record;
pub mod socket;
pub mod splice;
pub mod spool;
pub mod sys;

pub use config::{HandlerConfig, NonPodPolicy};
pub use error::CaptureError;
pub use record::{CaptureState, CoreEncoding, CrashRecord, PodRef};

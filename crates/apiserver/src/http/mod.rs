//! The HTTP surface: handlers per concern, all returning [`crate::error::ApiError`] on failure.

pub mod body;
pub mod buildid;
pub mod core;
pub mod defaults;
pub mod discovery;
pub mod dump;
pub mod negotiate;
pub mod objects;
pub mod params;
pub mod path_check;
pub mod render;
pub mod stream;
pub mod unchunked;
pub mod watch;

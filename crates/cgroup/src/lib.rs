//! Placeholder: see the capture issue.

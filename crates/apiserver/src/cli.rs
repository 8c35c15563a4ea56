//! Command line of the `apiserver` role (filled in below).

//! pveops-core: the pure part of pveops. PVE's outputs parsed into typed facts (`facts`), the
//! snapshot of a cluster built from them, the checks that judge it, the plans of the
//! operations, the diff of two snapshots and the rendered reports. Nothing here opens a
//! connection, starts a runtime or writes a file: the `pveops` crate does that and hands the
//! outputs in. See ARCHITECTURE.md.

pub mod check;
pub mod command;
pub mod diff;
pub mod error;
pub mod facts;
pub mod finding;
pub mod input;
pub mod journal;
pub mod markdown;
pub mod monitoring;
pub mod output;
pub mod plan;
pub mod report;
pub mod snapshot;
pub mod units;

pub use error::{Error, NodeError};

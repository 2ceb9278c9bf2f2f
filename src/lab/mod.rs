//! The simulated PVE cluster (lab).

pub mod render;
pub mod state;

//! The scheduler: places pending pods on nodes.

pub mod cache;
pub mod framework;
pub mod node;
pub mod pod;
pub mod queue;
pub mod resources;
pub mod schedule;
pub mod selectors;

#[cfg(test)]
mod testing;

/// Pods naming this scheduler (or none) are ours.
pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";

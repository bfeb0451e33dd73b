//! What every component needs about Kubernetes objects, with no I/O: the resource
//! table, validation, defaulting, selectors and patching.

pub mod apply;
pub mod crd;
pub mod cron;
pub mod decode;
pub mod defaults;
pub mod json;
pub mod patch;
pub mod quantity;
pub mod resources;
pub mod schema;
pub mod selectors;
pub mod validation;

#[cfg(test)]
mod testing;

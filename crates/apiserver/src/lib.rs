//! The Kubernetes API server: the only component that reads or writes the store.

pub(crate) mod alloc;
pub mod auth;
pub mod body;
pub(crate) mod bootstrap;
pub mod cache;
pub(crate) mod clock;
pub mod discovery;
pub(crate) mod error;
pub mod join;
pub(crate) mod keys;
pub mod kubeconfig;
pub(crate) mod metrics;
pub(crate) mod node_proxy;
pub(crate) mod nonresource;
pub mod openapi;
pub mod pki;
pub mod protobuf;
pub mod rbac_source;
pub(crate) mod registry;
pub mod rest;
pub(crate) mod selectors;
pub(crate) mod server;
pub(crate) mod shared_pki;
pub(crate) mod stored;
pub mod table;
pub mod tls;

pub use server::{Running, Server, ServerConfig};

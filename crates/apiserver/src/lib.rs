//! The Kubernetes API server: the only component that reads or writes the store.

pub mod alloc;
pub mod auth;
pub mod body;
pub mod bootstrap;
pub mod cache;
pub mod clock;
pub mod discovery;
pub mod error;
pub mod keys;
pub mod kubeconfig;
pub mod metrics;
pub mod nonresource;
pub mod openapi;
pub mod pki;
pub mod protobuf;
pub mod rbac_source;
pub mod registry;
pub mod rest;
pub mod selectors;
pub mod server;
pub mod shared_pki;
pub mod stored;
pub mod table;
pub mod tls;

pub use server::{Running, Server, ServerConfig};

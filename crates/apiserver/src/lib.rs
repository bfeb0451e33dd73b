//! The Kubernetes API server: the only component that reads or writes the store.
pub mod discovery;
pub mod table;
pub mod pki;
pub mod auth;
pub mod tls;
pub mod kubeconfig;
pub mod openapi;

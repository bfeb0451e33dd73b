//! The Kubernetes API server: the only component that reads or writes the store.

//! From Pods to the runtime's configs: what the kubelet's `kuberuntime` does
//! before it calls the CRI (env from ConfigMaps, Secrets and the downward API,
//! `$(VAR)` expansion, volume mounts, resources, security context, DNS).

pub mod config;
mod env;
mod expansion;
pub mod resources;
pub mod sandbox;
mod security;
#[cfg(test)]
mod test_support;

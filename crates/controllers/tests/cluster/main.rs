//! The controller manager against the real API server: each test starts
//! `flotilla server`, runs `controllers::run` as system:kube-controller-manager and
//! a stand-in for the node agents, then drives the cluster through the API and
//! kubectl.

mod common;

mod batch;
mod lifecycle;
mod nodes;
mod policy;
mod services;
mod sets;
mod workloads;

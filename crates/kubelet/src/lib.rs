//! The node agent: registers this machine as a Node, keeps its Lease and
//! conditions fresh, and runs the pods bound to it as real Linux containers, as
//! the kubelet does.
//!
//! Like the scheduler and the controllers, it is an API client only (brief,
//! invariant 1). Every host side effect sits behind a small trait with a real
//! implementation and a fake (invariant 6):
//!
//! - [`images`]: the node's image store: OCI archives imported, layers unpacked
//!   once, content-addressed and digest-verified.
//! - [`runtime`]: a CRI-shaped [`runtime::Runtime`] whose default implementation
//!   runs in this process: a pod sandbox of bind-mounted namespaces, CNI for its
//!   network, an overlayfs rootfs per container and an OCI bundle run by `runc`
//!   or `crun`.
//! - `node`: registration, the Lease heartbeat and node status.
//! - `pods`: the pod workers, driven by a watch of the pods bound here.

mod error;
pub mod images;
mod options;
pub mod pods;
pub mod runtime;

pub use error::{Error, Result};
pub use options::KubeletOptions;

//! Keeps pod and Service addresses on this machine (brief, invariant 5):
//! before any pod runs, the whole cluster CIDR and the service CIDR get
//! `unreachable` routes, so a packet for an address no node owns is refused
//! here instead of following the default route off the machine. The live pod
//! subnet of this node (the CNI bridge's connected route) and, later, routes
//! to other nodes' subnets are more specific and win.
//!
//! The routes are made with iproute2's `ip`, which the node needs anyway for
//! the CNI plugins; a netlink library would add a dependency for two calls.

use std::process::Command;

/// Makes address ranges local to this machine.
pub trait LocalRoutes: Send + Sync + 'static {
    /// Installs (or keeps) an `unreachable` route for each CIDR.
    fn hold(&self, cidrs: &[String]) -> std::io::Result<()>;
}

/// Routes in the agent's network namespace, through `ip route replace`.
#[derive(Debug, Default)]
pub struct IpRoutes;

impl LocalRoutes for IpRoutes {
    fn hold(&self, cidrs: &[String]) -> std::io::Result<()> {
        for cidr in cidrs {
            let out = Command::new("ip")
                .args(["route", "replace", "unreachable", cidr])
                .output()?;
            if !out.status.success() {
                return Err(std::io::Error::other(format!(
                    "ip route replace unreachable {cidr}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
        }
        Ok(())
    }
}

//! Service cluster IPs from --service-cidr and node ports from 30000–32767.
//! Each allocated value is claimed by creating its own key in the store
//! (`keys::service_ip`, `/registry/ranges/serviceips/IP`), so concurrent creates
//! on any server can never hand out the same value twice: the store's
//! create-if-absent decides. The watch cache keeps the set of claimed keys (not
//! as objects), which lets a scan skip taken values without asking the store.

use std::net::Ipv4Addr;

use serde_json::{Value, json};
use store::StoreError;

use crate::error::{ApiError, ApiResult, Cause};
use std::sync::Arc;

use crate::cache::Cache;

pub const NODE_PORT_RANGE: (u16, u16) = (30000, 32767);

/// Hands out Service cluster IPs and node ports, each claimed as its own store
/// key so concurrent creates never share one.
pub struct Allocator {
    store: Arc<dyn store::Store>,
    cache: Arc<Cache>,
    service_cidr: Cidr,
}

impl Allocator {
    pub fn new(store: Arc<dyn store::Store>, cache: Arc<Cache>, service_cidr: Cidr) -> Self {
        Allocator {
            store,
            cache,
            service_cidr,
        }
    }

    /// Gives a Service its cluster IP(s) and node ports, keeping those it asks for.
    pub async fn allocate_service(&self, svc: &mut Value) -> ApiResult<()> {
        allocate_service(self, svc).await
    }

    /// Releases what a deleted Service held.
    pub async fn release_service(&self, svc: &Value) {
        release_service(self, svc).await
    }

    /// Claims the first address of the range (the `kubernetes` Service's).
    pub async fn claim_first_ip(&self) -> ApiResult<Ipv4Addr> {
        claim_first_ip(self).await
    }
}

/// An IPv4 CIDR such as 10.43.0.0/16.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub base: Ipv4Addr,
    pub prefix: u8,
}

impl std::str::FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (ip, len) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not a CIDR (want A.B.C.D/N)"))?;
        let ip: Ipv4Addr = ip.parse().map_err(|e| format!("{s:?}: {e}"))?;
        let prefix: u8 = len.parse().map_err(|e| format!("{s:?}: {e}"))?;
        if !(8..=30).contains(&prefix) {
            return Err(format!("{s:?}: prefix length must be between 8 and 30"));
        }
        let mask = u32::MAX << (32 - prefix);
        Ok(Cidr {
            base: Ipv4Addr::from(u32::from(ip) & mask),
            prefix,
        })
    }
}

impl Cidr {
    pub fn size(&self) -> u32 {
        1u32 << (32 - self.prefix)
    }
    /// The n-th address (0 is the network address).
    pub fn nth(&self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.base) + n)
    }
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = u32::MAX << (32 - self.prefix);
        u32::from(ip) & mask == u32::from(self.base)
    }
}

fn invalid(name: &str, field: &str, msg: String) -> ApiError {
    ApiError::invalid(
        "",
        "Service",
        name,
        vec![Cause {
            reason: "FieldValueInvalid".into(),
            message: msg,
            field: field.into(),
        }],
    )
}

async fn claim(a: &Allocator, key: String, owner: &str) -> Result<bool, StoreError> {
    let value = serde_json::to_vec(&json!({"owner": owner})).unwrap_or_default();
    match a.store.create(&key, value.into()).await {
        Ok(_) => Ok(true),
        Err(StoreError::AlreadyExists(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Assigns spec.clusterIP(s) and node ports to a new Service, claiming each.
async fn allocate_service(a: &Allocator, svc: &mut Value) -> ApiResult<()> {
    let name = apimachinery::json::str_ptr(svc, "/metadata/name").to_string();
    let ns = apimachinery::json::str_ptr(svc, "/metadata/namespace").to_string();
    let owner = format!("{ns}/{name}");
    let ty = apimachinery::json::str_ptr_opt(svc, "/spec/type")
        .unwrap_or("ClusterIP")
        .to_string();
    if ty != "ExternalName" {
        let wanted = apimachinery::json::str_ptr(svc, "/spec/clusterIP").to_string();
        if wanted != "None" {
            let ip = if wanted.is_empty() {
                allocate_ip(a, &owner).await?
            } else {
                let ip: Ipv4Addr = wanted
                    .parse()
                    .map_err(|_| invalid(&name, "spec.clusterIP", format!("spec.clusterIP: Invalid value: \"{wanted}\": must be a valid IP address")))?;
                if !a.service_cidr.contains(ip) {
                    return Err(invalid(
                        &name,
                        "spec.clusterIP",
                        format!(
                            "spec.clusterIP: Invalid value: \"{wanted}\": provided IP is not in the valid range. The range of valid IPs is {}/{}",
                            a.service_cidr.base, a.service_cidr.prefix
                        ),
                    ));
                }
                if !claim(a, crate::keys::service_ip(ip), &owner).await? {
                    return Err(invalid(
                        &name,
                        "spec.clusterIP",
                        format!(
                            "spec.clusterIP: Invalid value: \"{wanted}\": provided IP is already allocated"
                        ),
                    ));
                }
                ip
            };
            svc["spec"]["clusterIP"] = json!(ip.to_string());
            svc["spec"]["clusterIPs"] = json!([ip.to_string()]);
        }
    }
    if ty == "NodePort" || ty == "LoadBalancer" {
        let count = svc
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        for i in 0..count {
            let wanted = svc["spec"]["ports"][i]
                .get("nodePort")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            let port = if wanted == 0 {
                allocate_port(a, &owner).await?
            } else {
                let field = format!("spec.ports[{i}].nodePort");
                if wanted < NODE_PORT_RANGE.0 as u64 || wanted > NODE_PORT_RANGE.1 as u64 {
                    return Err(invalid(
                        &name,
                        &field,
                        format!(
                            "{field}: Invalid value: {wanted}: provided port is not in the valid range. The range of valid ports is {}-{}",
                            NODE_PORT_RANGE.0, NODE_PORT_RANGE.1
                        ),
                    ));
                }
                if !claim(a, crate::keys::node_port(wanted), &owner).await? {
                    return Err(invalid(
                        &name,
                        &field,
                        format!(
                            "{field}: Invalid value: {wanted}: provided port is already allocated"
                        ),
                    ));
                }
                wanted as u16
            };
            svc["spec"]["ports"][i]["nodePort"] = json!(port);
        }
    }
    Ok(())
}

/// Scans from a random offset so concurrent creates rarely collide, skipping
/// values the cache already shows as claimed; the store's create settles races.
async fn allocate_ip(a: &Allocator, owner: &str) -> ApiResult<Ipv4Addr> {
    let cidr = a.service_cidr;
    // The network address, the first address (the `kubernetes` service) and the
    // broadcast address are never handed out at random.
    let usable = cidr.size().saturating_sub(3).max(1);
    let start = uuid::Uuid::new_v4().as_u128() as u32 % usable;
    for i in 0..usable {
        let ip = cidr.nth(2 + (start + i) % usable);
        let key = crate::keys::service_ip(ip);
        if a.cache.is_claimed(&key) {
            continue;
        }
        if claim(a, key, owner).await? {
            return Ok(ip);
        }
    }
    Err(ApiError::internal(format!(
        "failed to allocate a serviceIP: range {}/{} is full",
        cidr.base, cidr.prefix
    )))
}

async fn allocate_port(a: &Allocator, owner: &str) -> ApiResult<u16> {
    let (lo, hi) = NODE_PORT_RANGE;
    let span = (hi - lo + 1) as u32;
    let start = uuid::Uuid::new_v4().as_u128() as u32 % span;
    for i in 0..span {
        let port = lo + ((start + i) % span) as u16;
        let key = crate::keys::node_port(port);
        if a.cache.is_claimed(&key) {
            continue;
        }
        if claim(a, key, owner).await? {
            return Ok(port);
        }
    }
    Err(ApiError::internal(
        "failed to allocate a nodePort: range is full",
    ))
}

/// Claims the first address of the range for the `kubernetes` service.
async fn claim_first_ip(a: &Allocator) -> ApiResult<Ipv4Addr> {
    let ip = a.service_cidr.nth(1);
    claim(a, crate::keys::service_ip(ip), "default/kubernetes").await?;
    Ok(ip)
}

/// Frees a deleted Service's cluster IP and node ports.
async fn release_service(a: &Allocator, svc: &Value) {
    let mut keys = Vec::new();
    if let Some(ip) = apimachinery::json::nonempty_ptr(svc, "/spec/clusterIP")
        && ip != "None"
    {
        keys.push(crate::keys::service_ip(ip));
    }
    for p in svc
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(n) = p.get("nodePort").and_then(Value::as_u64) {
            keys.push(crate::keys::node_port(n));
        }
    }
    for key in keys {
        if let Err(e) = a.store.delete(&key, None).await
            && !matches!(e, StoreError::NotFound(_))
        {
            tracing::warn!(%key, error = %e, "could not release a service allocation");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_parsing_and_membership() {
        let c: Cidr = "10.43.7.9/16".parse().expect("cidr");
        assert_eq!(c.base, Ipv4Addr::new(10, 43, 0, 0));
        assert_eq!(c.nth(1), Ipv4Addr::new(10, 43, 0, 1));
        assert!(c.contains(Ipv4Addr::new(10, 43, 255, 254)));
        assert!(!c.contains(Ipv4Addr::new(10, 44, 0, 1)));
        assert!("10.0.0.0".parse::<Cidr>().is_err());
        assert!("10.0.0.0/40".parse::<Cidr>().is_err());
    }
}

//! The watch cache as the auth layer reads it: RBAC objects for the
//! authorizer, where pods run and what they reference for the node authorizer
//! ([`NodeGraph`]), and the live service accounts, pods, secrets and nodes a
//! bound service-account token is checked against on every use.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;

use crate::auth::graph::{self, NodeGraph, Vertex};
use crate::auth::{RbacSource, ServiceAccountCheck, VerifiedToken};
use crate::cache::{Cache, Entry};
use crate::keys;

/// How long after its deletion time an object still vouches for tokens bound
/// to it, as Kubernetes' JWT leeway.
const DELETION_LEEWAY_SECONDS: i64 = 60;

/// Empty until the cache is loaded; then every read comes from memory.
#[derive(Default)]
pub struct CacheRbac {
    cache: OnceLock<Arc<Cache>>,
}

impl CacheRbac {
    pub fn set(&self, cache: Arc<Cache>) {
        let _ = self.cache.set(cache);
    }

    /// The authenticator's hook that refuses tokens whose service account, or
    /// bound pod, secret or node, is gone or was replaced (another uid).
    pub fn service_account_check(self: &Arc<Self>) -> ServiceAccountCheck {
        let me = self.clone();
        Arc::new(move |token: &VerifiedToken| me.check_token(token))
    }

    /// Kubernetes' service-account token validation, with its messages.
    /// Until the cache is loaded nothing is checked: no request is served then
    /// (every one gets 503), so there is nothing a token could reach.
    fn check_token(&self, token: &VerifiedToken) -> Result<(), String> {
        let Some(cache) = self.cache.get() else {
            return Ok(());
        };
        let invalidated = || "service account token has been invalidated".to_string();
        let ns = &token.namespace;
        let name = &token.service_account;
        let account = Meta::of(cache, &keys::service_account(ns, name))
            .ok_or_else(|| format!("serviceaccounts {name:?} not found"))?;
        if !token.service_account_uid.is_empty() && account.uid != token.service_account_uid {
            return Err(format!(
                "service account UID ({}) does not match claim ({})",
                account.uid, token.service_account_uid
            ));
        }
        if account.deleted() {
            return Err(format!("service account {ns}/{name} has been deleted"));
        }
        if let Some(secret) = &token.secret {
            let live = Meta::of(cache, &keys::secret(ns, &secret.name)).ok_or_else(invalidated)?;
            if live.uid != secret.uid {
                return Err(format!(
                    "secret UID ({}) does not match service account secret ref claim ({})",
                    live.uid, secret.uid
                ));
            }
            if live.deleted() {
                return Err(invalidated());
            }
        }
        if let Some(pod) = &token.pod {
            let live = Meta::of(cache, &keys::pod(ns, &pod.name)).ok_or_else(invalidated)?;
            if live.uid != pod.uid {
                return Err(format!(
                    "pod UID ({}) does not match service account pod ref claim ({})",
                    live.uid, pod.uid
                ));
            }
            if live.deleted() {
                return Err(invalidated());
            }
        } else if let Some(node) = &token.node {
            // A pod-bound token names its node for information only; a token
            // bound to the node alone lives as long as the node.
            let live = Meta::of(cache, &keys::node(&node.name)).ok_or_else(invalidated)?;
            if live.uid != node.uid {
                return Err(format!(
                    "node UID ({}) does not match service account node ref claim ({})",
                    live.uid, node.uid
                ));
            }
            if live.deleted() {
                return Err(invalidated());
            }
        }
        Ok(())
    }
}

/// The part of an object's metadata a token check needs, read without
/// building the whole JSON tree.
#[derive(Deserialize)]
struct Meta {
    #[serde(default)]
    uid: String,
    #[serde(default, rename = "deletionTimestamp")]
    deletion_timestamp: Option<String>,
}

impl Meta {
    fn of(cache: &Cache, key: &str) -> Option<Meta> {
        #[derive(Deserialize)]
        struct Object {
            metadata: Meta,
        }
        let entry = cache.get(key)?;
        serde_json::from_slice::<Object>(&entry.json)
            .ok()
            .map(|o| o.metadata)
    }

    /// Deleted more than the leeway ago (a graceful deletion sets the time in
    /// the future, so a terminating pod's tokens work until it is gone).
    fn deleted(&self) -> bool {
        let Some(at) = self.deletion_timestamp.as_deref() else {
            return false;
        };
        let Ok(at) =
            time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
        else {
            return true;
        };
        at.unix_timestamp()
            < time::OffsetDateTime::now_utc().unix_timestamp() - DELETION_LEEWAY_SECONDS
    }
}

impl RbacSource for CacheRbac {
    fn revision(&self, storage_resource: &str) -> i64 {
        self.cache
            .get()
            .map_or(0, |c| c.resource_revision(storage_resource))
    }

    fn objects(&self, storage_resource: &str) -> (i64, Vec<Bytes>) {
        let Some(cache) = self.cache.get() else {
            return (0, Vec::new());
        };
        let rev = cache.resource_revision(storage_resource);
        let (_, items) = cache.objects(&keys::storage_prefix(storage_resource));
        (rev, items.iter().map(|e| e.json.clone()).collect())
    }
}

/// The node graph over the cache's per-node pod index: each answer reads the
/// asking node's pods only.
impl NodeGraph for CacheRbac {
    fn pod_node(&self, namespace: &str, name: &str) -> Option<String> {
        let entry = self.cache.get()?.get(&keys::pod(namespace, name))?;
        entry
            .field("spec.nodeName")
            .filter(|n| !n.is_empty())
            .map(str::to_string)
    }

    fn has_path(&self, node: &str, vertex: Vertex, namespace: &str, name: &str) -> bool {
        let Some(cache) = self.cache.get() else {
            return false;
        };
        let pods = cache.pods_on_node(node);
        match vertex {
            Vertex::PersistentVolume => {
                let Some(pv) = object(cache, &keys::persistent_volume(name)) else {
                    return false;
                };
                graph::pv_claim(&pv).is_some_and(|(claim_ns, claim)| {
                    pods_reference(&pods, claim_ns, Vertex::PersistentVolumeClaim, claim)
                })
            }
            Vertex::Secret => {
                pods_reference(&pods, namespace, Vertex::Secret, name)
                    || volumes_reference_secret(cache, &pods, namespace, name)
            }
            _ => pods_reference(&pods, namespace, vertex, name),
        }
    }
}

fn object(cache: &Cache, key: &str) -> Option<Value> {
    cache.get(key)?.value().ok()
}

/// Whether one of `pods` in `namespace` references `vertex` `name`. Secret,
/// configmap and resource-claim names appear in a pod as JSON strings, so a
/// pod whose bytes do not hold the name is skipped without decoding it. (The
/// cache holds objects as this server serialized them, so a name is spelled
/// one way; another spelling would only make the answer no.)
fn pods_reference(pods: &[Arc<Entry>], namespace: &str, vertex: Vertex, name: &str) -> bool {
    let prefix = keys::in_namespace("v1", "Pod", namespace);
    let needle = matches!(
        vertex,
        Vertex::Secret | Vertex::ConfigMap | Vertex::ResourceClaim
    )
    .then(|| serde_json::to_vec(name).unwrap_or_default());
    pods.iter()
        .filter(|e| e.key.starts_with(&prefix))
        .filter(|e| needle.as_deref().is_none_or(|n| contains(&e.json, n)))
        .filter_map(|e| e.value().ok())
        .any(|pod| graph::pod_references(&pod, vertex, name))
}

/// Whether a volume that one of `pods` claims names secret `namespace/name`
/// (node <- pod <- pvc <- pv <- secret). The volume is found through the
/// claim's `spec.volumeName` and must name that claim back.
fn volumes_reference_secret(
    cache: &Cache,
    pods: &[Arc<Entry>],
    namespace: &str,
    name: &str,
) -> bool {
    let uses_claims = |e: &&Arc<Entry>| {
        contains(&e.json, b"\"persistentVolumeClaim\"") || contains(&e.json, b"\"ephemeral\"")
    };
    for entry in pods.iter().filter(uses_claims) {
        let Ok(pod) = entry.value() else { continue };
        let pod_ns = apimachinery::json::str_ptr(&pod, "/metadata/namespace");
        let mut claims = Vec::new();
        graph::visit_pod_references(&pod, &mut |v, claim| {
            if v == Vertex::PersistentVolumeClaim {
                claims.push(claim.to_string());
            }
            false
        });
        for claim in claims {
            let volume = object(cache, &keys::persistent_volume_claim(pod_ns, &claim))
                .and_then(|pvc| {
                    apimachinery::json::str_ptr_opt(&pvc, "/spec/volumeName").map(str::to_string)
                })
                .and_then(|pv| object(cache, &keys::persistent_volume(&pv)));
            if let Some(pv) = volume
                && graph::pv_claim(&pv) == Some((pod_ns, claim.as_str()))
                && graph::pv_references_secret(&pv, namespace, name)
            {
                return true;
            }
        }
    }
    false
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

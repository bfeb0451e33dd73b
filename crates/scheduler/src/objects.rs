//! Keys of watched objects and how the kinds other than pods and nodes
//! update the cache.

use k8s_openapi::Metadata;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector as KLabelSelector, ObjectMeta};
use kube::runtime::watcher;
use serde_json::{Value, json};

use crate::cache::{BudgetInfo, Cache, ClaimInfo, ControllerSelector};
use crate::driver::KnownRef;
use crate::informers::{Kind, Update};
use crate::pod::ControllerKind;
use crate::selectors::{NodeSelectorTerms, label_selector};

pub fn uid<K: Metadata<Ty = ObjectMeta>>(o: &K) -> String {
    o.metadata().uid.clone().unwrap_or_default()
}

pub fn name<K: Metadata<Ty = ObjectMeta>>(o: &K) -> String {
    o.metadata().name.clone().unwrap_or_default()
}

pub fn namespaced<K: Metadata<Ty = ObjectMeta>>(o: &K) -> String {
    let m = o.metadata();
    format!(
        "{}/{}",
        m.namespace.as_deref().unwrap_or(""),
        m.name.as_deref().unwrap_or("")
    )
}

/// Applies one update of a secondary kind; returns true when pods waiting as
/// unschedulable might now fit (a claim got bound, a volume appeared, …).
pub fn apply_other(cache: &mut Cache, mut known: KnownRef<'_>, update: Update) -> bool {
    let mut changed = false;
    match update {
        Update::Namespace(ev) => {
            for (obj, key) in known.ops(ev, name) {
                match obj {
                    Some(ns) => {
                        cache
                            .namespaces
                            .insert(key, ns.metadata.labels.unwrap_or_default());
                    }
                    None => {
                        cache.namespaces.remove(&key);
                    }
                }
            }
        }
        Update::Claim(ev) => {
            for (obj, key) in known.ops(ev, namespaced) {
                changed = true;
                match obj {
                    Some(pvc) => {
                        let spec = pvc.spec.unwrap_or_default();
                        cache.claims.insert(
                            key,
                            ClaimInfo {
                                volume_name: spec.volume_name.unwrap_or_default(),
                                storage_class: spec.storage_class_name.unwrap_or_default(),
                            },
                        );
                    }
                    None => {
                        cache.claims.remove(&key);
                    }
                }
            }
        }
        Update::Volume(ev) => {
            for (obj, key) in known.ops(ev, name) {
                changed = true;
                match obj {
                    Some(pv) => {
                        let terms = pv
                            .spec
                            .and_then(|s| s.node_affinity)
                            .and_then(|a| a.required)
                            .map(|r| NodeSelectorTerms::parse(&r));
                        cache.volumes.insert(key, terms);
                    }
                    None => {
                        cache.volumes.remove(&key);
                    }
                }
            }
        }
        Update::StorageClass(ev) => {
            for (obj, key) in known.ops(ev, name) {
                changed = true;
                let classes = cache.storage_classes.get_or_insert_default();
                match obj {
                    Some(sc) => {
                        let waits =
                            sc.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer");
                        classes.insert(key, waits);
                    }
                    None => {
                        classes.remove(&key);
                    }
                }
            }
        }
        Update::Budget(ev) => {
            for (obj, key) in known.ops(ev, namespaced) {
                match obj {
                    Some(pdb) => {
                        let selector = pdb.spec.as_ref().and_then(|s| s.selector.as_ref());
                        // A malformed selector protects nothing rather than stopping us.
                        let Ok(selector) = label_selector(selector, Vec::new()) else {
                            cache.budgets.remove(&key);
                            continue;
                        };
                        cache.budgets.insert(
                            key,
                            BudgetInfo {
                                namespace: pdb.metadata.namespace.clone().unwrap_or_default(),
                                selector,
                                disruptions_allowed: pdb
                                    .status
                                    .as_ref()
                                    .map_or(0, |s| i64::from(s.disruptions_allowed)),
                            },
                        );
                    }
                    None => {
                        cache.budgets.remove(&key);
                    }
                }
            }
        }
        Update::PriorityClass(ev) => {
            for (obj, key) in known.ops(ev, name) {
                match obj {
                    Some(pc) => {
                        if pc.global_default == Some(true) {
                            cache.default_priority_class = Some(key.clone());
                        } else if cache.default_priority_class.as_deref() == Some(key.as_str()) {
                            cache.default_priority_class = None;
                        }
                        let never = pc.preemption_policy.as_deref() == Some("Never");
                        cache.priority_classes.insert(key, (pc.value, never));
                    }
                    None => {
                        if cache.default_priority_class.as_deref() == Some(key.as_str()) {
                            cache.default_priority_class = None;
                        }
                        cache.priority_classes.remove(&key);
                    }
                }
            }
        }
        // Services and controllers only feed scores (default topology
        // spreading): no waiting pod becomes schedulable through them.
        Update::Service(ev) => {
            for (obj, key) in known.ops(ev, namespaced) {
                let selector = obj.and_then(|s| s.spec?.selector);
                cache.set_service(&key, selector);
            }
        }
        Update::ReplicationController(ev) => {
            set_controllers(
                cache,
                &mut known,
                ev,
                ControllerKind::ReplicationController,
                |rc| {
                    let labels = rc.spec?.selector.filter(|s| !s.is_empty())?;
                    Some(ControllerSelector::Labels(labels))
                },
            );
        }
        Update::ReplicaSet(ev) => {
            set_controllers(cache, &mut known, ev, ControllerKind::ReplicaSet, |rs| {
                requirements(&rs.spec?.selector)
            });
        }
        Update::StatefulSet(ev) => {
            set_controllers(cache, &mut known, ev, ControllerKind::StatefulSet, |ss| {
                requirements(&ss.spec?.selector)
            });
        }
        Update::Unavailable(Kind::StorageClass) => cache.storage_classes = None,
        Update::Pod(_) | Update::Node(_) | Update::Unavailable(_) => {}
    }
    changed
}

/// Applies controller events of one kind: keeps the selectors that add
/// something to a default spreading selector, drops the rest.
fn set_controllers<K>(
    cache: &mut Cache,
    known: &mut KnownRef<'_>,
    ev: watcher::Event<K>,
    kind: ControllerKind,
    selector: impl Fn(K) -> Option<ControllerSelector>,
) where
    K: Clone + Metadata<Ty = ObjectMeta>,
{
    for (obj, key) in known.ops(ev, namespaced) {
        let key = (kind, key);
        match obj.and_then(&selector) {
            Some(sel) => {
                cache.controllers.insert(key, sel);
            }
            None => {
                cache.controllers.remove(&key);
            }
        }
    }
}

/// A ReplicaSet's or StatefulSet's selector as `matchExpressions`, its
/// `matchLabels` as `In`; `None` when it adds no requirement (empty, or
/// invalid: Kubernetes then adds nothing either).
fn requirements(sel: &KLabelSelector) -> Option<ControllerSelector> {
    label_selector(Some(sel), Vec::new()).ok()?;
    let mut exprs: Vec<Value> = sel
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| json!({"key": k, "operator": "In", "values": [v]}))
        .collect();
    for e in sel.match_expressions.iter().flatten() {
        exprs.push(serde_json::to_value(e).ok()?);
    }
    (!exprs.is_empty()).then_some(ControllerSelector::Requirements(exprs))
}

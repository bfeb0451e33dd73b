//! The ownership graph: every watched object by uid, with its owners, and for
//! every owner uid the objects that name it. Pure data; the collector decides
//! what to do with it.

use std::collections::{HashMap, HashSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

pub const ORPHAN: &str = "orphan";
pub const FOREGROUND: &str = "foregroundDeletion";

/// What the collector knows about one object.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Index of the object's resource in the collector's resource list.
    pub resource: usize,
    pub namespace: Option<String>,
    pub name: String,
    pub uid: String,
    pub resource_version: Option<String>,
    pub owners: Vec<OwnerReference>,
    pub finalizers: Vec<String>,
    pub deleting: bool,
}

impl Node {
    pub fn has_finalizer(&self, f: &str) -> bool {
        self.finalizers.iter().any(|x| x == f)
    }

    /// Being deleted and waiting for its blocking dependents to go first.
    pub fn waiting_for_dependents(&self) -> bool {
        self.deleting && self.has_finalizer(FOREGROUND)
    }
}

#[derive(Default)]
pub struct Graph {
    nodes: HashMap<String, Node>,
    dependents: HashMap<String, HashSet<String>>,
}

impl Graph {
    pub fn get(&self, uid: &str) -> Option<&Node> {
        self.nodes.get(uid)
    }

    /// Stores `node`, returning the previous version.
    pub fn upsert(&mut self, node: Node) -> Option<Node> {
        let old = self.nodes.insert(node.uid.clone(), node.clone());
        if let Some(old) = &old {
            for o in &old.owners {
                if let Some(set) = self.dependents.get_mut(&o.uid) {
                    set.remove(&old.uid);
                    if set.is_empty() {
                        self.dependents.remove(&o.uid);
                    }
                }
            }
        }
        for o in &node.owners {
            self.dependents
                .entry(o.uid.clone())
                .or_default()
                .insert(node.uid.clone());
        }
        old
    }

    pub fn remove(&mut self, uid: &str) -> Option<Node> {
        let old = self.nodes.remove(uid)?;
        for o in &old.owners {
            if let Some(set) = self.dependents.get_mut(&o.uid) {
                set.remove(uid);
                if set.is_empty() {
                    self.dependents.remove(&o.uid);
                }
            }
        }
        Some(old)
    }

    /// The objects naming `owner` among their owners.
    pub fn dependents(&self, owner: &str) -> Vec<&Node> {
        self.dependents
            .get(owner)
            .into_iter()
            .flatten()
            .filter_map(|uid| self.nodes.get(uid))
            .collect()
    }

    pub fn has_dependents(&self, owner: &str) -> bool {
        self.dependents.get(owner).is_some_and(|s| !s.is_empty())
    }

    /// Dependents that block `owner`'s foreground deletion.
    pub fn blocking_dependents(&self, owner: &str) -> Vec<&Node> {
        self.dependents(owner)
            .into_iter()
            .filter(|d| {
                d.owners
                    .iter()
                    .any(|o| o.uid == owner && o.block_owner_deletion == Some(true))
            })
            .collect()
    }

    /// Uids of the objects of one resource.
    pub fn uids_of(&self, resource: usize) -> Vec<String> {
        self.nodes
            .values()
            .filter(|n| n.resource == resource)
            .map(|n| n.uid.clone())
            .collect()
    }
}

/// The uids worth looking at after `old` became `new` (either may be absent):
/// the object itself when it has owners or deletion finalizers, its dependents when
/// it went away or started a foreground deletion, and owners waiting on it.
pub fn affected(old: Option<&Node>, new: Option<&Node>, graph: &Graph) -> Vec<String> {
    let mut out = Vec::new();
    let node = new.or(old);
    let Some(node) = node else { return out };
    if let Some(n) = new
        && (!n.owners.is_empty()
            || (n.deleting && (n.has_finalizer(ORPHAN) || n.has_finalizer(FOREGROUND))))
    {
        out.push(n.uid.clone());
    }
    let gone = new.is_none();
    let started_foreground = new.is_some_and(Node::waiting_for_dependents)
        && !old.is_some_and(Node::waiting_for_dependents);
    let started_orphaning = new.is_some_and(|n| n.deleting && n.has_finalizer(ORPHAN))
        && !old.is_some_and(|n| n.deleting && n.has_finalizer(ORPHAN));
    if gone || started_foreground || started_orphaning {
        out.extend(graph.dependents(&node.uid).iter().map(|d| d.uid.clone()));
    }
    // An owner being deleted with dependents first (foreground) or after them
    // (orphan) re-checks when a dependent goes or changes.
    let owners = old
        .map(|o| o.owners.iter())
        .into_iter()
        .flatten()
        .chain(new.map(|n| n.owners.iter()).into_iter().flatten());
    for o in owners {
        if graph
            .get(&o.uid)
            .is_some_and(|n| n.deleting && (n.has_finalizer(ORPHAN) || n.has_finalizer(FOREGROUND)))
        {
            out.push(o.uid.clone());
        }
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(uid: &str, block: bool) -> OwnerReference {
        OwnerReference {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: format!("rs-{uid}"),
            uid: uid.into(),
            controller: Some(true),
            block_owner_deletion: Some(block),
        }
    }

    fn node(uid: &str, owners: Vec<OwnerReference>) -> Node {
        Node {
            resource: 0,
            namespace: Some("default".into()),
            name: uid.into(),
            uid: uid.into(),
            resource_version: Some("1".into()),
            owners,
            finalizers: Vec::new(),
            deleting: false,
        }
    }

    #[test]
    fn tracks_dependents_through_updates_and_removal() {
        let mut g = Graph::default();
        g.upsert(node("rs", vec![]));
        g.upsert(node("p1", vec![owner("rs", true)]));
        g.upsert(node("p2", vec![owner("rs", false)]));
        assert_eq!(g.dependents("rs").len(), 2);
        assert_eq!(g.blocking_dependents("rs").len(), 1);
        g.upsert(node("p1", vec![]));
        assert_eq!(g.dependents("rs").len(), 1);
        g.remove("p2");
        assert!(!g.has_dependents("rs"));
    }

    #[test]
    fn an_owner_going_away_affects_its_dependents() {
        let mut g = Graph::default();
        let rs = node("rs", vec![]);
        g.upsert(rs.clone());
        g.upsert(node("p1", vec![owner("rs", true)]));
        g.remove("rs");
        assert_eq!(affected(Some(&rs), None, &g), vec!["p1".to_string()]);
    }

    #[test]
    fn foreground_deletion_affects_dependents_and_waiting_owner_rechecks() {
        let mut g = Graph::default();
        let rs = node("rs", vec![]);
        g.upsert(rs.clone());
        let p1 = node("p1", vec![owner("rs", true)]);
        g.upsert(p1.clone());
        let mut deleting = rs.clone();
        deleting.deleting = true;
        deleting.finalizers = vec![FOREGROUND.into()];
        g.upsert(deleting.clone());
        assert_eq!(
            affected(Some(&rs), Some(&deleting), &g),
            vec!["p1".to_string(), "rs".to_string()]
        );
        g.remove("p1");
        assert_eq!(affected(Some(&p1), None, &g), vec!["rs".to_string()]);
    }
}

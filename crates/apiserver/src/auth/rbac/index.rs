//! Parsed RBAC objects, indexed so that a request looks only at the bindings
//! of its own user and groups.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use apimachinery::selectors::LabelSelector;
use bytes::Bytes;
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, Subject,
};
use serde::de::DeserializeOwned;

use crate::auth::groups;

pub(super) type Rules = Arc<[PolicyRule]>;

/// Roles by namespace, then name.
#[derive(Default)]
pub(super) struct RoleIndex(HashMap<String, HashMap<String, Rules>>);

/// ClusterRoles by name, with aggregation already resolved.
#[derive(Default)]
pub(super) struct ClusterRoleIndex(HashMap<String, Rules>);

/// What a binding grants: a Role in the binding's namespace or a ClusterRole.
#[derive(Clone, Debug)]
pub(super) struct Grant {
    pub cluster_role: bool,
    pub role: String,
}

/// Grants by subject. ServiceAccount subjects are filed under the user name
/// they authenticate as, which is how Kubernetes matches them.
#[derive(Default)]
pub(super) struct SubjectIndex {
    users: HashMap<String, Vec<Grant>>,
    groups: HashMap<String, Vec<Grant>>,
}

/// RoleBindings' subject indexes by namespace.
#[derive(Default)]
pub(super) struct RoleBindingIndex(HashMap<String, SubjectIndex>);

impl RoleIndex {
    pub fn build(objects: &[Bytes]) -> Self {
        let mut index: HashMap<String, HashMap<String, Rules>> = HashMap::new();
        for role in parse_all::<Role>(objects, "Role") {
            let (Some(namespace), Some(name)) = (role.metadata.namespace, role.metadata.name)
            else {
                continue;
            };
            index
                .entry(namespace)
                .or_default()
                .insert(name, role.rules.unwrap_or_default().into());
        }
        RoleIndex(index)
    }

    pub fn get(&self, namespace: &str, name: &str) -> Option<&Rules> {
        self.0.get(namespace)?.get(name)
    }
}

impl ClusterRoleIndex {
    /// Resolves `aggregationRule`s the way the clusterrole-aggregation
    /// controller would: an aggregated role's rules are the union of the rules
    /// of every ClusterRole its selectors match, followed transitively; its own
    /// `rules` field is the controller's output and so is ignored here.
    pub fn build(objects: &[Bytes]) -> Self {
        let roles = parse_all::<ClusterRole>(objects, "ClusterRole");
        let mut selectors: HashMap<&str, Vec<LabelSelector>> = HashMap::new();
        let mut own_rules: HashMap<&str, &[PolicyRule]> = HashMap::new();
        for role in &roles {
            let Some(name) = role.metadata.name.as_deref() else {
                continue;
            };
            match &role.aggregation_rule {
                Some(rule) => {
                    let parsed = rule
                        .cluster_role_selectors
                        .iter()
                        .flatten()
                        .filter_map(|s| {
                            let value = serde_json::to_value(s).ok()?;
                            LabelSelector::from_metav1(&value)
                                .inspect_err(|e| tracing::warn!(clusterrole = name, error = %e, "ignoring aggregation selector"))
                                .ok()
                        })
                        .collect();
                    selectors.insert(name, parsed);
                }
                None => {
                    own_rules.insert(name, role.rules.as_deref().unwrap_or_default());
                }
            }
        }

        let mut index = HashMap::new();
        for role in &roles {
            let Some(name) = role.metadata.name.as_deref() else {
                continue;
            };
            let rules: Vec<PolicyRule> = if selectors.contains_key(name) {
                let mut rules = Vec::new();
                let mut seen = HashSet::from([name]);
                collect_aggregated(name, &roles, &selectors, &own_rules, &mut seen, &mut rules);
                rules
            } else {
                own_rules.get(name).map(|r| r.to_vec()).unwrap_or_default()
            };
            index.insert(name.to_string(), rules.into());
        }
        ClusterRoleIndex(index)
    }

    pub fn get(&self, name: &str) -> Option<&Rules> {
        self.0.get(name)
    }
}

fn collect_aggregated<'a>(
    name: &str,
    roles: &'a [ClusterRole],
    selectors: &HashMap<&str, Vec<LabelSelector>>,
    own_rules: &HashMap<&str, &[PolicyRule]>,
    seen: &mut HashSet<&'a str>,
    out: &mut Vec<PolicyRule>,
) {
    let Some(role_selectors) = selectors.get(name) else {
        return;
    };
    let empty = Default::default();
    for candidate in roles {
        let Some(candidate_name) = candidate.metadata.name.as_deref() else {
            continue;
        };
        let labels = candidate.metadata.labels.as_ref().unwrap_or(&empty);
        if seen.contains(candidate_name) || !role_selectors.iter().any(|s| s.matches_map(labels)) {
            continue;
        }
        // Cycles (a selects b selects a) end here instead of recursing forever.
        seen.insert(candidate_name);
        if selectors.contains_key(candidate_name) {
            collect_aggregated(candidate_name, roles, selectors, own_rules, seen, out);
        } else {
            for rule in own_rules.get(candidate_name).copied().unwrap_or_default() {
                if !out.contains(rule) {
                    out.push(rule.clone());
                }
            }
        }
    }
}

impl SubjectIndex {
    fn add(&mut self, subject: &Subject, default_namespace: &str, grant: Grant) {
        match subject.kind.as_str() {
            "User" => self
                .users
                .entry(subject.name.clone())
                .or_default()
                .push(grant),
            "Group" => self
                .groups
                .entry(subject.name.clone())
                .or_default()
                .push(grant),
            "ServiceAccount" => {
                // A RoleBinding's ServiceAccount subject without a namespace
                // means the binding's own namespace.
                let namespace = subject
                    .namespace
                    .as_deref()
                    .filter(|ns| !ns.is_empty())
                    .unwrap_or(default_namespace);
                let user = groups::service_account_user(namespace, &subject.name);
                self.users.entry(user).or_default().push(grant)
            }
            other => tracing::debug!(kind = other, "ignoring RBAC subject of unknown kind"),
        }
    }

    /// Every grant to `user` by name or through one of its groups.
    pub fn grants_for<'a>(
        &'a self,
        user: &'a crate::auth::UserInfo,
    ) -> impl Iterator<Item = &'a Grant> + 'a {
        let by_name = self.users.get(&user.name).into_iter().flatten();
        let by_group = user
            .groups
            .iter()
            .filter_map(|g| self.groups.get(g))
            .flatten();
        by_name.chain(by_group)
    }
}

impl RoleBindingIndex {
    pub fn build(objects: &[Bytes]) -> Self {
        let mut index: HashMap<String, SubjectIndex> = HashMap::new();
        for binding in parse_all::<RoleBinding>(objects, "RoleBinding") {
            let Some(namespace) = binding.metadata.namespace else {
                continue;
            };
            let Some(grant) = grant(&binding.role_ref.kind, &binding.role_ref.name) else {
                continue;
            };
            let subjects = index.entry(namespace.clone()).or_default();
            for subject in binding.subjects.iter().flatten() {
                subjects.add(subject, &namespace, grant.clone());
            }
        }
        RoleBindingIndex(index)
    }

    pub fn in_namespace(&self, namespace: &str) -> Option<&SubjectIndex> {
        self.0.get(namespace)
    }
}

/// ClusterRoleBindings' subject index.
pub(super) fn build_cluster_role_bindings(objects: &[Bytes]) -> SubjectIndex {
    let mut index = SubjectIndex::default();
    for binding in parse_all::<ClusterRoleBinding>(objects, "ClusterRoleBinding") {
        // A ClusterRoleBinding can only grant a ClusterRole.
        if binding.role_ref.kind != "ClusterRole" {
            continue;
        }
        let Some(grant) = grant(&binding.role_ref.kind, &binding.role_ref.name) else {
            continue;
        };
        for subject in binding.subjects.iter().flatten() {
            index.add(subject, "", grant.clone());
        }
    }
    index
}

fn grant(kind: &str, name: &str) -> Option<Grant> {
    match kind {
        "Role" => Some(Grant {
            cluster_role: false,
            role: name.to_string(),
        }),
        "ClusterRole" => Some(Grant {
            cluster_role: true,
            role: name.to_string(),
        }),
        _ => None,
    }
}

fn parse_all<T: DeserializeOwned>(objects: &[Bytes], kind: &str) -> Vec<T> {
    objects
        .iter()
        .filter_map(|raw| {
            serde_json::from_slice(raw)
                .inspect_err(|e| tracing::warn!(kind, error = %e, "ignoring an RBAC object that does not parse"))
                .ok()
        })
        .collect()
}

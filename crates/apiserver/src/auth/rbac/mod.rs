//! Authorization: `system:masters`, then the node authorizer, then RBAC
//! evaluated as Kubernetes does, over Roles and bindings read from the API
//! server's cache.

mod index;
#[cfg(test)]
pub(crate) mod tests;

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use k8s_openapi::api::rbac::v1::PolicyRule;

use super::graph::{NoPods, NodeGraph};
use super::node::{NodeDecision, node_rule};
use super::{UserInfo, groups};
use index::{
    ClusterRoleIndex, RoleBindingIndex, RoleIndex, Rules, SubjectIndex, build_cluster_role_bindings,
};

/// Storage resources the authorizer reads.
pub const ROLES: &str = "roles";
pub const CLUSTER_ROLES: &str = "clusterroles";
pub const ROLE_BINDINGS: &str = "rolebindings";
pub const CLUSTER_ROLE_BINDINGS: &str = "clusterrolebindings";

/// Where the RBAC objects come from: the API server's in-memory cache.
pub trait RbacSource: Send + Sync {
    /// The revision of the newest change to `storage_resource` (one of
    /// [`ROLES`], [`CLUSTER_ROLES`], [`ROLE_BINDINGS`], [`CLUSTER_ROLE_BINDINGS`]).
    /// Called on every request, so it must be cheap.
    fn revision(&self, storage_resource: &str) -> i64;
    /// Every object of `storage_resource` as JSON, with the revision they
    /// reflect. Called only when the revision changed.
    fn objects(&self, storage_resource: &str) -> (i64, Vec<Bytes>);
}

/// What a request wants to do, as Kubernetes' `authorizer.Attributes`.
#[derive(Clone, Copy, Debug)]
pub struct Attributes<'a> {
    pub user: &'a UserInfo,
    /// `get`, `list`, `watch`, `create`, … for resources; the lower-case HTTP
    /// method for other paths.
    pub verb: &'a str,
    pub api_group: &'a str,
    pub resource: &'a str,
    pub subresource: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
    pub path: &'a str,
    pub is_resource_request: bool,
}

/// The outcome of authorization.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// `reason` is the message Kubernetes puts after `<resource> is forbidden: `.
    Deny {
        reason: String,
    },
}

/// Decides requests with RBAC and the node authorizer.
pub struct Authorizer {
    source: Arc<dyn RbacSource>,
    cache: Mutex<Cache>,
    /// Where pods run and what they reference, for the node authorizer.
    graph: Arc<dyn NodeGraph>,
}

/// Parsed objects per storage resource with the revision they were parsed at.
#[derive(Default)]
struct Cache {
    roles: Option<Cached<RoleIndex>>,
    cluster_roles: Option<Cached<ClusterRoleIndex>>,
    role_bindings: Option<Cached<RoleBindingIndex>>,
    cluster_role_bindings: Option<Cached<SubjectIndex>>,
}

struct Cached<T> {
    revision: i64,
    value: Arc<T>,
}

/// One consistent view of all four indexes for one decision.
struct Snapshot {
    roles: Arc<RoleIndex>,
    cluster_roles: Arc<ClusterRoleIndex>,
    role_bindings: Arc<RoleBindingIndex>,
    cluster_role_bindings: Arc<SubjectIndex>,
}

impl Authorizer {
    /// An authorizer that knows no pods: nodes get nothing that depends on
    /// their pods until [`Self::with_node_graph`] says where pods run.
    pub fn new(source: Arc<dyn RbacSource>) -> Self {
        Authorizer {
            source,
            cache: Mutex::new(Cache::default()),
            graph: Arc::new(NoPods),
        }
    }

    /// Answers the node authorizer's questions about pods from `graph`.
    pub fn with_node_graph(mut self, graph: Arc<dyn NodeGraph>) -> Self {
        self.graph = graph;
        self
    }

    pub fn authorize(&self, attrs: &Attributes<'_>) -> Decision {
        if attrs.user.in_group(groups::MASTERS) {
            return Decision::Allow;
        }
        match node_rule(attrs, self.graph.as_ref()) {
            NodeDecision::Allow => return Decision::Allow,
            NodeDecision::Deny(why) => {
                return Decision::Deny {
                    reason: format!("{}: {why}", forbidden_message(attrs)),
                };
            }
            NodeDecision::NoOpinion => {}
        }
        if self.rbac_allows(attrs) {
            Decision::Allow
        } else {
            Decision::Deny {
                reason: forbidden_message(attrs),
            }
        }
    }

    /// Every rule that applies to `user` in `namespace` (cluster-wide rules
    /// only when it is empty), for SelfSubjectRulesReview.
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> Vec<PolicyRule> {
        if user.in_group(groups::MASTERS) {
            return vec![
                PolicyRule {
                    verbs: vec!["*".into()],
                    api_groups: Some(vec!["*".into()]),
                    resources: Some(vec!["*".into()]),
                    ..PolicyRule::default()
                },
                PolicyRule {
                    verbs: vec!["*".into()],
                    non_resource_urls: Some(vec!["*".into()]),
                    ..PolicyRule::default()
                },
            ];
        }
        let mut rules = Vec::new();
        self.visit_rules(user, namespace, |r| {
            rules.extend(r.iter().cloned());
            false
        });
        rules
    }

    fn rbac_allows(&self, attrs: &Attributes<'_>) -> bool {
        self.visit_rules(attrs.user, attrs.namespace, |rules| {
            rules.iter().any(|r| rule_allows(attrs, r))
        })
    }

    /// Calls `visit` with the rules of each role bound to `user`, cluster-wide
    /// first, until it returns true. A binding to a role that does not exist
    /// grants nothing.
    fn visit_rules(
        &self,
        user: &UserInfo,
        namespace: &str,
        mut visit: impl FnMut(&Rules) -> bool,
    ) -> bool {
        let snap = self.snapshot();
        for grant in snap.cluster_role_bindings.grants_for(user) {
            if let Some(rules) = snap.cluster_roles.get(&grant.role)
                && visit(rules)
            {
                return true;
            }
        }
        if namespace.is_empty() {
            return false;
        }
        let Some(bindings) = snap.role_bindings.in_namespace(namespace) else {
            return false;
        };
        for grant in bindings.grants_for(user) {
            let rules = if grant.cluster_role {
                snap.cluster_roles.get(&grant.role)
            } else {
                snap.roles.get(namespace, &grant.role)
            };
            if let Some(rules) = rules
                && visit(rules)
            {
                return true;
            }
        }
        false
    }

    /// The current indexes, reparsing a resource only when its revision moved.
    fn snapshot(&self) -> Snapshot {
        // A panic elsewhere while holding the lock cannot leave a slot half
        // written (slots are replaced whole), so a poisoned cache is still good.
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        let source = self.source.as_ref();
        Snapshot {
            roles: refresh(&mut cache.roles, source, ROLES, RoleIndex::build),
            cluster_roles: refresh(
                &mut cache.cluster_roles,
                source,
                CLUSTER_ROLES,
                ClusterRoleIndex::build,
            ),
            role_bindings: refresh(
                &mut cache.role_bindings,
                source,
                ROLE_BINDINGS,
                RoleBindingIndex::build,
            ),
            cluster_role_bindings: refresh(
                &mut cache.cluster_role_bindings,
                source,
                CLUSTER_ROLE_BINDINGS,
                build_cluster_role_bindings,
            ),
        }
    }
}

fn refresh<T>(
    slot: &mut Option<Cached<T>>,
    source: &dyn RbacSource,
    resource: &str,
    build: impl FnOnce(&[Bytes]) -> T,
) -> Arc<T> {
    let revision = source.revision(resource);
    if let Some(cached) = slot
        && cached.revision == revision
    {
        return cached.value.clone();
    }
    let (revision, objects) = source.objects(resource);
    let value = Arc::new(build(&objects));
    *slot = Some(Cached {
        revision,
        value: value.clone(),
    });
    value
}

/// Kubernetes' `RuleAllows`: verbs, then API groups, resources and names for a
/// resource request, or URLs for any other.
pub(crate) fn rule_allows(attrs: &Attributes<'_>, rule: &PolicyRule) -> bool {
    if !has_or_star(&rule.verbs, attrs.verb) {
        return false;
    }
    if attrs.is_resource_request {
        let groups = rule.api_groups.as_deref().unwrap_or_default();
        let resources = rule.resources.as_deref().unwrap_or_default();
        let names = rule.resource_names.as_deref().unwrap_or_default();
        has_or_star(groups, attrs.api_group)
            && resource_matches(resources, attrs.resource, attrs.subresource)
            && (names.is_empty() || names.iter().any(|n| n == attrs.name))
    } else {
        rule.non_resource_urls
            .as_deref()
            .unwrap_or_default()
            .iter()
            .any(|url| url_matches(url, attrs.path))
    }
}

fn has_or_star(list: &[String], wanted: &str) -> bool {
    list.iter().any(|item| item == "*" || item == wanted)
}

/// `*` matches everything including subresources, `pods/status` one
/// subresource, and `*/status` that subresource of every resource.
fn resource_matches(rule_resources: &[String], resource: &str, subresource: &str) -> bool {
    rule_resources.iter().any(|rule| {
        if rule == "*" {
            return true;
        }
        if subresource.is_empty() {
            return rule == resource;
        }
        match rule.split_once('/') {
            Some((r, s)) => s == subresource && (r == resource || r == "*"),
            None => false,
        }
    })
}

/// A rule URL ending in `*` matches by prefix; any other must equal the path.
fn url_matches(rule_url: &str, path: &str) -> bool {
    if rule_url == "*" || rule_url == path {
        return true;
    }
    rule_url
        .strip_suffix('*')
        .is_some_and(|prefix| path.starts_with(prefix))
}

/// Kubernetes' wording of a denial: `User "alice" cannot list resource "pods"
/// in API group "" in the namespace "default"`.
pub fn forbidden_message(attrs: &Attributes<'_>) -> String {
    let user = &attrs.user.name;
    if !attrs.is_resource_request {
        return format!("User {user:?} cannot {} path {:?}", attrs.verb, attrs.path);
    }
    let resource = if attrs.subresource.is_empty() {
        attrs.resource.to_string()
    } else {
        format!("{}/{}", attrs.resource, attrs.subresource)
    };
    let scope = if attrs.namespace.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace {:?}", attrs.namespace)
    };
    format!(
        "User {user:?} cannot {} resource {resource:?} in API group {:?} {scope}",
        attrs.verb, attrs.api_group
    )
}

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde_json::{Value, json};

use super::*;

/// An in-memory [`RbacSource`] that counts how often objects are fetched.
#[derive(Default)]
pub(crate) struct FakeSource {
    objects: Mutex<HashMap<String, (i64, Vec<Bytes>)>>,
    pub fetches: AtomicUsize,
}

impl FakeSource {
    /// Replaces all objects, filing each under its kind's storage resource.
    pub fn set_all(&self, objects: &[Value]) {
        let mut by_resource: HashMap<&str, Vec<Bytes>> = HashMap::new();
        for object in objects {
            let resource = match object["kind"].as_str() {
                Some("Role") => ROLES,
                Some("ClusterRole") => CLUSTER_ROLES,
                Some("RoleBinding") => ROLE_BINDINGS,
                Some("ClusterRoleBinding") => CLUSTER_ROLE_BINDINGS,
                other => panic!("not an RBAC kind: {other:?}"),
            };
            by_resource
                .entry(resource)
                .or_default()
                .push(Bytes::from(object.to_string()));
        }
        for resource in [ROLES, CLUSTER_ROLES, ROLE_BINDINGS, CLUSTER_ROLE_BINDINGS] {
            self.set(resource, by_resource.remove(resource).unwrap_or_default());
        }
    }

    pub fn set(&self, resource: &str, objects: Vec<Bytes>) {
        let mut map = self.objects.lock().unwrap();
        let revision = map.values().map(|(r, _)| *r).max().unwrap_or(0) + 1;
        map.insert(resource.to_string(), (revision, objects));
    }
}

impl RbacSource for FakeSource {
    fn revision(&self, storage_resource: &str) -> i64 {
        self.objects
            .lock()
            .unwrap()
            .get(storage_resource)
            .map_or(0, |(r, _)| *r)
    }

    fn objects(&self, storage_resource: &str) -> (i64, Vec<Bytes>) {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        self.objects
            .lock()
            .unwrap()
            .get(storage_resource)
            .cloned()
            .unwrap_or_default()
    }
}

pub(crate) fn authorizer_with(objects: &[Value]) -> (Arc<FakeSource>, Authorizer) {
    let source = Arc::new(FakeSource::default());
    source.set_all(objects);
    let authorizer = Authorizer::new(source.clone());
    (source, authorizer)
}

pub(crate) fn user(name: &str, groups: &[&str]) -> UserInfo {
    UserInfo {
        name: name.into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        ..UserInfo::default()
    }
}

/// `verb group/resource[/subresource] namespace/name` or `verb url:/path`.
pub(crate) fn allowed(authorizer: &Authorizer, user: &UserInfo, request: &str) -> bool {
    decide(authorizer, user, request) == Decision::Allow
}

pub(crate) fn decide(authorizer: &Authorizer, user: &UserInfo, request: &str) -> Decision {
    let (verb, target) = request.split_once(' ').unwrap();
    if let Some(path) = target.strip_prefix("url:") {
        let attrs = Attributes {
            user,
            verb,
            api_group: "",
            resource: "",
            subresource: "",
            namespace: "",
            name: "",
            path,
            is_resource_request: false,
        };
        return authorizer.authorize(&attrs);
    }
    let (what, place) = target.split_once(' ').unwrap_or((target, ""));
    let mut parts = what.split('/');
    let group = parts.next().unwrap();
    let resource = parts.next().unwrap();
    let subresource = parts.next().unwrap_or("");
    let (namespace, name) = place.split_once('/').unwrap_or((place, ""));
    let attrs = Attributes {
        user,
        verb,
        api_group: group,
        resource,
        subresource,
        namespace,
        name,
        path: "",
        is_resource_request: true,
    };
    authorizer.authorize(&attrs)
}

fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> Value {
    json!({ "verbs": verbs, "apiGroups": groups, "resources": resources })
}

fn cluster_role(name: &str, labels: Value, rules: Vec<Value>) -> Value {
    json!({ "kind": "ClusterRole", "metadata": { "name": name, "labels": labels }, "rules": rules })
}

fn binding(
    kind: &str,
    namespace: Option<&str>,
    role_kind: &str,
    role: &str,
    subject: Value,
) -> Value {
    let mut metadata = json!({ "name": format!("{role}-binding") });
    if let Some(ns) = namespace {
        metadata["namespace"] = ns.into();
    }
    json!({
        "kind": kind,
        "metadata": metadata,
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role },
        "subjects": [subject],
    })
}

fn subject(kind: &str, name: &str) -> Value {
    json!({ "kind": kind, "name": name })
}

fn fixture() -> Vec<Value> {
    vec![
        cluster_role(
            "pod-reader",
            json!({}),
            vec![rule(&["get", "list", "watch"], &[""], &["pods"])],
        ),
        json!({
            "kind": "Role",
            "metadata": { "name": "deployer", "namespace": "ns1" },
            "rules": [
                rule(&["create", "update"], &["apps"], &["deployments"]),
                rule(&["get"], &[""], &["pods/log"]),
            ],
        }),
        cluster_role(
            "secret-one",
            json!({}),
            vec![
                json!({ "verbs": ["get"], "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["db"] }),
            ],
        ),
        cluster_role(
            "status-writer",
            json!({}),
            vec![rule(&["update"], &["*"], &["*/status"])],
        ),
        cluster_role(
            "metrics-url",
            json!({}),
            vec![json!({ "verbs": ["get"], "nonResourceURLs": ["/metrics", "/logs/*"] })],
        ),
        cluster_role(
            "wild",
            json!({}),
            vec![rule(&["*"], &["example.com"], &["*"])],
        ),
        json!({
            "kind": "ClusterRole",
            "metadata": { "name": "aggregated" },
            "aggregationRule": { "clusterRoleSelectors": [{ "matchLabels": { "x/agg": "true" } }] },
            // Stale controller output is ignored in favour of the selectors.
            "rules": [rule(&["*"], &["*"], &["*"])],
        }),
        cluster_role(
            "agg-part",
            json!({ "x/agg": "true" }),
            vec![rule(&["list"], &[""], &["configmaps"])],
        ),
        binding(
            "ClusterRoleBinding",
            None,
            "ClusterRole",
            "pod-reader",
            subject("User", "alice"),
        ),
        binding(
            "ClusterRoleBinding",
            None,
            "ClusterRole",
            "metrics-url",
            subject("Group", "devs"),
        ),
        binding(
            "ClusterRoleBinding",
            None,
            "ClusterRole",
            "aggregated",
            subject("User", "carol"),
        ),
        binding(
            "RoleBinding",
            Some("ns1"),
            "Role",
            "deployer",
            subject("User", "bob"),
        ),
        binding(
            "RoleBinding",
            Some("ns1"),
            "ClusterRole",
            "pod-reader",
            subject("ServiceAccount", "builder"),
        ),
        binding(
            "RoleBinding",
            Some("ns1"),
            "ClusterRole",
            "secret-one",
            subject("Group", "devs"),
        ),
        binding(
            "RoleBinding",
            Some("ns1"),
            "ClusterRole",
            "status-writer",
            subject("User", "dave"),
        ),
        binding(
            "RoleBinding",
            Some("ns1"),
            "Role",
            "missing",
            subject("User", "frank"),
        ),
        binding(
            "RoleBinding",
            Some("ns2"),
            "ClusterRole",
            "wild",
            subject("User", "erin"),
        ),
        // Non-resource rules bound in a namespace grant nothing.
        binding(
            "RoleBinding",
            Some("ns1"),
            "ClusterRole",
            "metrics-url",
            subject("User", "bob"),
        ),
    ]
}

#[test]
fn rbac_table() {
    let (_, authorizer) = authorizer_with(&fixture());
    let alice = user("alice", &["system:authenticated"]);
    let bob = user("bob", &[]);
    let builder = user(
        "system:serviceaccount:ns1:builder",
        &["system:serviceaccounts"],
    );
    let dev = user("dan", &["devs"]);
    let dave = user("dave", &[]);
    let erin = user("erin", &[]);
    let carol = user("carol", &[]);
    let frank = user("frank", &[]);
    let root = user("root", &["system:masters"]);

    let cases: &[(&UserInfo, &str, bool)] = &[
        // ClusterRoleBinding applies in every namespace and cluster-wide.
        (&alice, "list /pods ns1", true),
        (&alice, "watch /pods", true),
        (&alice, "delete /pods ns1/web", false),
        (&alice, "get /pods/log ns1/web", false),
        (&alice, "list apps/pods ns1", false),
        // RoleBinding to a Role: only in its namespace.
        (&bob, "create apps/deployments ns1", true),
        (&bob, "create apps/deployments ns2", false),
        (&bob, "create apps/deployments", false),
        (&bob, "get /pods/log ns1/web", true),
        (&bob, "get url:/metrics", false),
        // ServiceAccount subject without a namespace means the binding's.
        (&builder, "list /pods ns1", true),
        (&builder, "list /pods ns2", false),
        // resourceNames restrict to the named objects.
        (&dev, "get /secrets ns1/db", true),
        (&dev, "get /secrets ns1/other", false),
        (&dev, "list /secrets ns1", false),
        // `*/status` matches the status subresource of anything.
        (&dave, "update apps/deployments/status ns1/web", true),
        (&dave, "update apps/deployments ns1/web", false),
        (&dave, "update apps/deployments/scale ns1/web", false),
        // Non-resource URLs: exact or prefix with a trailing `*`.
        (&dev, "get url:/metrics", true),
        (&dev, "get url:/logs/kubelet.log", true),
        (&dev, "get url:/metricsx", false),
        (&dev, "post url:/metrics", false),
        // Wildcard verbs and resources, within one group.
        (&erin, "deletecollection example.com/widgets ns2", true),
        (&erin, "get example.com/widgets/status ns2/w", true),
        (&erin, "get /pods ns2", false),
        // Aggregation takes the selected roles' rules, not the stored ones.
        (&carol, "list /configmaps ns9", true),
        (&carol, "list /secrets ns9", false),
        // A binding to a missing role grants nothing.
        (&frank, "get /pods ns1", false),
        (&root, "delete /nodes /n1", true),
        (&root, "get url:/anything", true),
    ];
    for (user, request, want) in cases {
        assert_eq!(
            allowed(&authorizer, user, request),
            *want,
            "{} {request}",
            user.name
        );
    }
}

#[test]
fn denial_messages_read_like_kubernetes() {
    let (_, authorizer) = authorizer_with(&fixture());
    let alice = user("alice", &[]);
    let reason = |request: &str| match decide(&authorizer, &alice, request) {
        Decision::Deny { reason } => reason,
        Decision::Allow => panic!("{request} was allowed"),
    };
    assert_eq!(
        reason("list apps/deployments default"),
        r#"User "alice" cannot list resource "deployments" in API group "apps" in the namespace "default""#
    );
    assert_eq!(
        reason("get /nodes/status /n1"),
        r#"User "alice" cannot get resource "nodes/status" in API group "" at the cluster scope"#
    );
    assert_eq!(
        reason("get url:/healthz"),
        r#"User "alice" cannot get path "/healthz""#
    );
}

#[test]
fn objects_are_parsed_once_per_revision() {
    let (source, authorizer) = authorizer_with(&fixture());
    let bob = user("bob", &[]);
    assert!(allowed(&authorizer, &bob, "create apps/deployments ns1"));
    assert!(allowed(&authorizer, &bob, "create apps/deployments ns1"));
    assert_eq!(source.fetches.load(Ordering::SeqCst), 4);

    // Removing the binding takes effect on the next request, refetching only it.
    let without: Vec<Bytes> = fixture()
        .iter()
        .filter(|o| o["kind"] == "RoleBinding" && o["subjects"][0]["name"] != "bob")
        .map(|o| Bytes::from(o.to_string()))
        .collect();
    source.set(ROLE_BINDINGS, without);
    assert!(!allowed(&authorizer, &bob, "create apps/deployments ns1"));
    assert_eq!(source.fetches.load(Ordering::SeqCst), 5);
}

#[test]
fn rules_for_lists_bound_rules() {
    let (_, authorizer) = authorizer_with(&fixture());
    let rules = authorizer.rules_for(&user("bob", &[]), "ns1");
    assert!(
        rules
            .iter()
            .any(|r| r.resources.as_deref() == Some(&["deployments".to_string()][..]))
    );
    assert!(authorizer.rules_for(&user("bob", &[]), "ns2").is_empty());
}

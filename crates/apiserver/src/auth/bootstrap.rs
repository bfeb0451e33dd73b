//! The ClusterRoles and ClusterRoleBindings a new cluster starts with, with the
//! rule sets of Kubernetes' bootstrap policy. The server creates those that are
//! absent on every start.
//!
//! Verbs, resources and URLs are written as space-separated lists to keep the
//! tables readable.

use serde_json::{Value, json};

use super::groups;

const READ: &str = "get list watch";
const WRITE: &str = "create update patch delete deletecollection";
const READ_WRITE: &str = "get list watch create update patch delete deletecollection";

const CORE: &str = "";
const APPS: &str = "apps";
const AUTHENTICATION: &str = "authentication.k8s.io";
const AUTHORIZATION: &str = "authorization.k8s.io";
const AUTOSCALING: &str = "autoscaling";
const BATCH: &str = "batch";
const CERTIFICATES: &str = "certificates.k8s.io";
const COORDINATION: &str = "coordination.k8s.io";
const DISCOVERY: &str = "discovery.k8s.io";
const EVENTS: &str = "events.k8s.io";
const EXTENSIONS: &str = "extensions";
const NETWORKING: &str = "networking.k8s.io";
const POLICY: &str = "policy";
const RBAC: &str = "rbac.authorization.k8s.io";
const STORAGE: &str = "storage.k8s.io";

const AGGREGATE_TO_ADMIN: &str = "rbac.authorization.k8s.io/aggregate-to-admin";
const AGGREGATE_TO_EDIT: &str = "rbac.authorization.k8s.io/aggregate-to-edit";
const AGGREGATE_TO_VIEW: &str = "rbac.authorization.k8s.io/aggregate-to-view";

/// Every default ClusterRole, then every default ClusterRoleBinding, as JSON objects.
pub fn bootstrap_objects() -> Vec<Value> {
    let view = view_rules();
    let edit: Vec<Value> = edit_rules().into_iter().chain(view.clone()).collect();
    let admin: Vec<Value> = admin_rules().into_iter().chain(edit.clone()).collect();

    let roles = vec![
        cluster_role(
            "cluster-admin",
            &[],
            vec![rule("*", &["*"], "*"), url_rule("*", "*")],
        ),
        cluster_role(
            "system:discovery",
            &[],
            vec![url_rule(
                "get",
                "/livez /readyz /healthz /version /version/ /openapi /openapi/* /api /api/* /apis /apis/*",
            )],
        ),
        cluster_role(
            "system:basic-user",
            &[],
            vec![
                rule(
                    "create",
                    &[AUTHORIZATION],
                    "selfsubjectaccessreviews selfsubjectrulesreviews",
                ),
                rule("create", &[AUTHENTICATION], "selfsubjectreviews"),
            ],
        ),
        cluster_role(
            "system:public-info-viewer",
            &[],
            vec![url_rule(
                "get",
                "/livez /readyz /healthz /version /version/",
            )],
        ),
        // admin ⊃ edit ⊃ view through aggregation labels. The rules written here
        // are what the aggregation yields, so `kubectl describe` shows them; the
        // authorizer recomputes them from the selectors.
        aggregated("admin", &[], AGGREGATE_TO_ADMIN, admin),
        aggregated("edit", &[AGGREGATE_TO_ADMIN], AGGREGATE_TO_EDIT, edit),
        aggregated(
            "view",
            &[AGGREGATE_TO_EDIT],
            AGGREGATE_TO_VIEW,
            view.clone(),
        ),
        cluster_role(
            "system:aggregate-to-admin",
            &[AGGREGATE_TO_ADMIN],
            admin_rules(),
        ),
        cluster_role(
            "system:aggregate-to-edit",
            &[AGGREGATE_TO_EDIT],
            edit_rules(),
        ),
        cluster_role("system:aggregate-to-view", &[AGGREGATE_TO_VIEW], view),
        cluster_role("system:node", &[], node_rules()),
        cluster_role(
            "system:node-proxier",
            &[],
            vec![
                rule("list watch", &[CORE], "services endpoints"),
                rule(READ, &[CORE], "nodes"),
                events_rule(),
                rule("list watch", &[DISCOVERY], "endpointslices"),
            ],
        ),
        cluster_role(
            "system:node-bootstrapper",
            &[],
            vec![rule(
                "create get list watch",
                &[CERTIFICATES],
                "certificatesigningrequests",
            )],
        ),
        cluster_role("system:kube-scheduler", &[], scheduler_rules()),
        cluster_role(
            "system:kube-controller-manager",
            &[],
            controller_manager_rules(),
        ),
        cluster_role(
            "system:auth-delegator",
            &[],
            vec![
                rule("create", &[AUTHENTICATION], "tokenreviews"),
                rule("create", &[AUTHORIZATION], "subjectaccessreviews"),
            ],
        ),
        cluster_role(
            "system:service-account-issuer-discovery",
            &[],
            vec![url_rule(
                "get",
                "/.well-known/openid-configuration /openid/v1/jwks",
            )],
        ),
    ];

    let bindings = vec![
        binding("cluster-admin", vec![group(groups::MASTERS)]),
        binding("system:discovery", vec![group(groups::AUTHENTICATED)]),
        binding("system:basic-user", vec![group(groups::AUTHENTICATED)]),
        binding(
            "system:public-info-viewer",
            vec![group(groups::AUTHENTICATED), group(groups::UNAUTHENTICATED)],
        ),
        binding("system:kube-scheduler", vec![user(groups::KUBE_SCHEDULER)]),
        binding(
            "system:kube-controller-manager",
            vec![user(groups::KUBE_CONTROLLER_MANAGER)],
        ),
        // Kubernetes leaves this binding without subjects and relies on its node
        // authorizer alone; here the node rule runs first and refuses writes to
        // other nodes' objects, so RBAC only adds the remaining node permissions.
        binding("system:node", vec![group(groups::NODES)]),
        binding("system:node-proxier", vec![user(groups::KUBE_PROXY)]),
        // Agents holding the join token ask for their node certificate with it.
        binding(
            "system:node-bootstrapper",
            vec![group(groups::BOOTSTRAPPERS)],
        ),
        binding(
            "system:service-account-issuer-discovery",
            vec![group(groups::SERVICE_ACCOUNTS)],
        ),
    ];

    roles.into_iter().chain(bindings).collect()
}

fn view_rules() -> Vec<Value> {
    vec![
        rule(
            READ,
            &[CORE],
            "pods replicationcontrollers replicationcontrollers/scale serviceaccounts services \
             services/status endpoints persistentvolumeclaims persistentvolumeclaims/status configmaps",
        ),
        rule(
            READ,
            &[CORE],
            "limitranges resourcequotas bindings events pods/status resourcequotas/status \
             namespaces/status replicationcontrollers/status pods/log",
        ),
        // Reading namespaces at namespace scope shows which namespaces one can use.
        rule(READ, &[CORE], "namespaces"),
        rule(READ, &[DISCOVERY], "endpointslices"),
        rule(
            READ,
            &[APPS],
            "controllerrevisions statefulsets statefulsets/status statefulsets/scale daemonsets \
             daemonsets/status deployments deployments/status deployments/scale replicasets \
             replicasets/status replicasets/scale",
        ),
        rule(
            READ,
            &[AUTOSCALING],
            "horizontalpodautoscalers horizontalpodautoscalers/status",
        ),
        rule(READ, &[BATCH], "jobs cronjobs cronjobs/status jobs/status"),
        rule(
            READ,
            &[EXTENSIONS],
            "daemonsets daemonsets/status deployments deployments/scale deployments/status ingresses \
             ingresses/status replicasets replicasets/scale replicasets/status \
             replicationcontrollers/scale networkpolicies",
        ),
        rule(
            READ,
            &[POLICY],
            "poddisruptionbudgets poddisruptionbudgets/status",
        ),
        rule(
            READ,
            &[NETWORKING],
            "networkpolicies ingresses ingresses/status",
        ),
    ]
}

fn edit_rules() -> Vec<Value> {
    vec![
        // Reading escalating resources (secrets, exec) is edit's, not view's.
        rule(
            READ,
            &[CORE],
            "pods/attach pods/proxy pods/exec pods/portforward secrets services/proxy",
        ),
        rule("impersonate", &[CORE], "serviceaccounts"),
        rule(
            WRITE,
            &[CORE],
            "pods pods/attach pods/proxy pods/exec pods/portforward",
        ),
        rule("create", &[CORE], "pods/eviction"),
        rule(
            WRITE,
            &[CORE],
            "replicationcontrollers replicationcontrollers/scale serviceaccounts services \
             services/proxy persistentvolumeclaims configmaps secrets events",
        ),
        rule("create", &[CORE], "serviceaccounts/token"),
        rule(
            WRITE,
            &[APPS],
            "statefulsets statefulsets/scale daemonsets deployments deployments/scale \
             deployments/rollback replicasets replicasets/scale",
        ),
        rule(WRITE, &[AUTOSCALING], "horizontalpodautoscalers"),
        rule(WRITE, &[BATCH], "jobs cronjobs"),
        rule(
            WRITE,
            &[EXTENSIONS],
            "daemonsets deployments deployments/scale deployments/rollback ingresses replicasets \
             replicasets/scale replicationcontrollers/scale networkpolicies",
        ),
        rule(WRITE, &[POLICY], "poddisruptionbudgets"),
        rule(WRITE, &[NETWORKING], "networkpolicies ingresses"),
        rule(READ_WRITE, &[COORDINATION], "leases"),
    ]
}

fn admin_rules() -> Vec<Value> {
    vec![
        rule("create", &[AUTHORIZATION], "localsubjectaccessreviews"),
        rule(READ_WRITE, &[RBAC], "roles rolebindings"),
    ]
}

fn node_rules() -> Vec<Value> {
    vec![
        rule("create", &[AUTHENTICATION], "tokenreviews"),
        rule(
            "create",
            &[AUTHORIZATION],
            "subjectaccessreviews localsubjectaccessreviews",
        ),
        rule(READ, &[CORE], "services"),
        rule("create get list watch", &[CORE], "nodes"),
        rule("update patch", &[CORE], "nodes/status"),
        rule("update patch", &[CORE], "nodes"),
        rule("create update patch", &[CORE], "events"),
        rule(READ, &[CORE], "pods"),
        rule("create delete", &[CORE], "pods"),
        rule("update patch", &[CORE], "pods/status"),
        rule("create", &[CORE], "pods/eviction"),
        rule(READ, &[CORE], "secrets configmaps"),
        rule("get", &[CORE], "persistentvolumeclaims persistentvolumes"),
        rule("get", &[CORE], "endpoints"),
        rule(
            "create get list watch",
            &[CERTIFICATES],
            "certificatesigningrequests",
        ),
        rule(READ, &[CERTIFICATES], "clustertrustbundles"),
        rule("get create update patch delete", &[COORDINATION], "leases"),
        rule("get", &[STORAGE], "volumeattachments"),
        rule("create", &[CORE], "serviceaccounts/token"),
        rule("get update patch", &[CORE], "persistentvolumeclaims/status"),
        rule(READ, &[STORAGE], "csidrivers"),
        rule("get create update patch delete", &[STORAGE], "csinodes"),
        rule(READ, &["node.k8s.io"], "runtimeclasses"),
    ]
}

fn scheduler_rules() -> Vec<Value> {
    vec![
        events_rule(),
        // Leader election. `patch` is beyond Kubernetes' rule: lease renewals
        // by a JSON merge patch need it.
        rule("create", &[COORDINATION], "leases"),
        named_rule(
            "get update patch",
            &[COORDINATION],
            "leases",
            "kube-scheduler",
        ),
        rule(READ, &[CORE], "nodes"),
        rule("get list watch delete", &[CORE], "pods"),
        rule("create", &[CORE], "pods/binding bindings"),
        rule("patch update", &[CORE], "pods/status"),
        rule(READ, &[CORE], "services replicationcontrollers"),
        rule(READ, &[APPS, EXTENSIONS], "replicasets"),
        rule(READ, &[APPS], "statefulsets"),
        rule(READ, &[POLICY], "poddisruptionbudgets"),
        rule(READ, &[CORE], "persistentvolumeclaims persistentvolumes"),
        rule("create", &[AUTHENTICATION], "tokenreviews"),
        rule("create", &[AUTHORIZATION], "subjectaccessreviews"),
        rule(READ, &[STORAGE], "csinodes"),
        rule(READ, &[CORE], "namespaces"),
        rule(READ, &[STORAGE], "csidrivers csistoragecapacities"),
        // Kubernetes grants these through system:volume-scheduler and the
        // priority admission step; Flotilla's scheduler reads them directly.
        rule(READ, &[STORAGE], "storageclasses"),
        rule(READ, &["scheduling.k8s.io"], "priorityclasses"),
    ]
}

/// Kubernetes runs each controller under its own service account with its own
/// role; Flotilla's controller manager is one identity, so it gets the union.
/// The garbage collector and namespace controller already need every
/// non-creating verb on every resource; creation is listed per resource.
fn controller_manager_rules() -> Vec<Value> {
    vec![
        events_rule(),
        rule(
            "get list watch update patch delete deletecollection",
            &["*"],
            "*",
        ),
        rule(
            "create",
            &[CORE],
            "pods pods/binding pods/eviction endpoints endpoints/restricted secrets serviceaccounts \
             serviceaccounts/token configmaps persistentvolumeclaims",
        ),
        rule("create", &[APPS], "replicasets controllerrevisions"),
        rule("create", &[BATCH], "jobs"),
        rule("create", &[DISCOVERY], "endpointslices"),
        rule("create", &[COORDINATION], "leases"),
        rule("create", &[AUTHENTICATION], "tokenreviews"),
        rule("create", &[AUTHORIZATION], "subjectaccessreviews"),
        // The clusterrole-aggregation controller writes rules it does not hold itself.
        rule("escalate", &[RBAC], "clusterroles"),
    ]
}

fn events_rule() -> Value {
    rule("create update patch", &[CORE, EVENTS], "events")
}

fn words(list: &str) -> Vec<&str> {
    list.split_whitespace().collect()
}

fn rule(verbs: &str, api_groups: &[&str], resources: &str) -> Value {
    json!({ "verbs": words(verbs), "apiGroups": api_groups, "resources": words(resources) })
}

fn named_rule(verbs: &str, api_groups: &[&str], resources: &str, names: &str) -> Value {
    let mut rule = rule(verbs, api_groups, resources);
    rule["resourceNames"] = json!(words(names));
    rule
}

fn url_rule(verbs: &str, urls: &str) -> Value {
    json!({ "verbs": words(verbs), "nonResourceURLs": words(urls) })
}

fn metadata(name: &str, extra_labels: &[&str]) -> Value {
    let mut labels = json!({ "kubernetes.io/bootstrapping": "rbac-defaults" });
    for label in extra_labels {
        labels[*label] = json!("true");
    }
    json!({
        "name": name,
        "labels": labels,
        "annotations": { "rbac.authorization.kubernetes.io/autoupdate": "true" },
    })
}

fn cluster_role(name: &str, extra_labels: &[&str], rules: Vec<Value>) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": metadata(name, extra_labels),
        "rules": rules,
    })
}

fn aggregated(name: &str, extra_labels: &[&str], selects: &str, rules: Vec<Value>) -> Value {
    let mut role = cluster_role(name, extra_labels, rules);
    role["aggregationRule"] =
        json!({ "clusterRoleSelectors": [{ "matchLabels": { selects: "true" } }] });
    role
}

fn binding(role: &str, subjects: Vec<Value>) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": metadata(role, &[]),
        "roleRef": { "apiGroup": RBAC, "kind": "ClusterRole", "name": role },
        "subjects": subjects,
    })
}

fn group(name: &str) -> Value {
    json!({ "apiGroup": RBAC, "kind": "Group", "name": name })
}

fn user(name: &str) -> Value {
    json!({ "apiGroup": RBAC, "kind": "User", "name": name })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::UserInfo;
    use crate::auth::rbac::tests::{allowed, authorizer_with, user};

    #[test]
    fn every_object_is_marked_as_a_default() {
        let objects = bootstrap_objects();
        for object in &objects {
            let meta = &object["metadata"];
            assert_eq!(
                meta["labels"]["kubernetes.io/bootstrapping"],
                "rbac-defaults"
            );
            assert_eq!(
                meta["annotations"]["rbac.authorization.kubernetes.io/autoupdate"],
                "true"
            );
        }
        // Every binding points at a role that exists.
        let role_names: Vec<&Value> = objects
            .iter()
            .filter(|o| o["kind"] == "ClusterRole")
            .map(|o| &o["metadata"]["name"])
            .collect();
        for binding in objects.iter().filter(|o| o["kind"] == "ClusterRoleBinding") {
            assert!(
                role_names.contains(&&binding["roleRef"]["name"]),
                "{binding}"
            );
        }
    }

    /// The callers of the table: `viv`, `ed` and `ada` hold view, edit and
    /// admin in namespace `team`; the others are well-known identities.
    fn caller(name: &str) -> UserInfo {
        match name {
            "anonymous" => user("system:anonymous", &[groups::UNAUTHENTICATED]),
            "root" => user("root", &[groups::MASTERS]),
            "joiner" => user(groups::BOOTSTRAP_NODE_USER, &[groups::BOOTSTRAPPERS]),
            "pod" => user(
                "system:serviceaccount:team:app",
                &[groups::SERVICE_ACCOUNTS],
            ),
            "scheduler" => user(groups::KUBE_SCHEDULER, &[groups::AUTHENTICATED]),
            "controllers" => user(groups::KUBE_CONTROLLER_MANAGER, &[groups::AUTHENTICATED]),
            "proxy" => user(groups::KUBE_PROXY, &[groups::AUTHENTICATED]),
            other => user(other, &[groups::AUTHENTICATED]),
        }
    }

    #[test]
    fn default_roles_grant_what_kubernetes_grants() {
        let mut objects = bootstrap_objects();
        for (role, who) in [("view", "viv"), ("edit", "ed"), ("admin", "ada")] {
            objects.push(json!({
                "kind": "RoleBinding",
                "metadata": { "name": role, "namespace": "team" },
                "roleRef": { "apiGroup": RBAC, "kind": "ClusterRole", "name": role },
                "subjects": [{ "kind": "User", "name": who }],
            }));
        }
        let (_, authorizer) = authorizer_with(&objects);
        let cases = [
            ("viv", "get url:/apis/apps/v1", true),
            ("viv", "get url:/version", true),
            (
                "viv",
                "create authorization.k8s.io/selfsubjectaccessreviews",
                true,
            ),
            ("anonymous", "get url:/readyz", true),
            ("anonymous", "get url:/api", false),
            ("viv", "list /pods team", true),
            ("viv", "get /pods/log team/web", true),
            ("viv", "get /secrets team/db", false),
            ("viv", "create apps/deployments team", false),
            ("viv", "list /pods other", false),
            ("ed", "create apps/deployments team", true),
            ("ed", "get /secrets team/db", true),
            ("ed", "list discovery.k8s.io/endpointslices team", true),
            (
                "ed",
                "create rbac.authorization.k8s.io/rolebindings team",
                false,
            ),
            (
                "ada",
                "create rbac.authorization.k8s.io/rolebindings team",
                true,
            ),
            ("ada", "update apps/deployments/scale team/web", true),
            (
                "ada",
                "create rbac.authorization.k8s.io/clusterrolebindings",
                false,
            ),
            ("root", "delete /namespaces /kube-system", true),
            ("scheduler", "create /pods/binding team/web", true),
            (
                "scheduler",
                "update coordination.k8s.io/leases kube-system/kube-scheduler",
                true,
            ),
            (
                "scheduler",
                "update coordination.k8s.io/leases kube-system/other",
                false,
            ),
            ("scheduler", "delete /nodes /n1", false),
            ("controllers", "create apps/replicasets team", true),
            (
                "controllers",
                "update apps/deployments/status team/web",
                true,
            ),
            ("controllers", "deletecollection /pods team", true),
            (
                "controllers",
                "create rbac.authorization.k8s.io/roles team",
                false,
            ),
            ("proxy", "watch discovery.k8s.io/endpointslices", true),
            ("proxy", "get /secrets team/db", false),
            (
                "joiner",
                "create certificates.k8s.io/certificatesigningrequests",
                true,
            ),
            ("joiner", "get /nodes /n1", false),
            ("pod", "get url:/openid/v1/jwks", true),
        ];
        for (who, request, want) in cases {
            assert_eq!(
                allowed(&authorizer, &caller(who), request),
                want,
                "{who} {request}"
            );
        }
    }
}

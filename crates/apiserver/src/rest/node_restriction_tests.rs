use apimachinery::resources::{Resource, builtin};
use serde_json::{Value, json};

use super::*;

fn user(name: &str, groups: &[&str]) -> UserInfo {
    UserInfo {
        name: name.into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        ..UserInfo::default()
    }
}

fn n1() -> UserInfo {
    user("system:node:n1", &["system:nodes", "system:authenticated"])
}

fn resource(group: &str, version: &str, plural: &str) -> &'static Resource {
    builtin(group, version, plural).expect("a built-in resource")
}

fn nodes() -> &'static Resource {
    resource("", "v1", "nodes")
}

/// The 403 message, or None when admitted.
fn refusal(result: ApiResult<()>) -> Option<String> {
    match result {
        Ok(()) => None,
        Err(ApiError::Forbidden(message)) => Some(message),
        Err(other) => panic!("not a 403: {other:?}"),
    }
}

fn node(name: &str, labels: Value, spec: Value) -> Value {
    json!({"metadata": {"name": name, "labels": labels}, "spec": spec})
}

#[test]
fn only_nodes_are_restricted() {
    let admin = user("admin", &["system:masters"]);
    let other = node(
        "n2",
        json!({"node-restriction.kubernetes.io/x": "y"}),
        json!({}),
    );
    assert!(admit(&admin, nodes(), "", Op::Create, &other, None).is_ok());
    // The name alone does not make a node.
    let impostor = user("system:node:n1", &["system:authenticated"]);
    assert!(admit(&impostor, nodes(), "", Op::Create, &other, None).is_ok());
    let unknown = user("kubelet", &["system:nodes"]);
    assert_eq!(
        refusal(admit(&unknown, nodes(), "", Op::Create, &other, None)).as_deref(),
        Some(r#"nodes "n2" is forbidden: could not determine node from user "kubelet""#)
    );
    // Kinds NodeRestriction does not cover.
    let secrets = resource("", "v1", "secrets");
    assert!(
        admit(
            &n1(),
            secrets,
            "",
            Op::Create,
            &json!({"metadata": {"name": "s"}}),
            None
        )
        .is_ok()
    );
}

#[test]
fn a_node_creates_and_updates_only_itself() {
    let n3 = node("n3", json!({}), json!({}));
    assert_eq!(
        refusal(admit(&n1(), nodes(), "", Op::Create, &n3, None)).as_deref(),
        Some(r#"nodes "n3" is forbidden: node "n1" is not allowed to modify node "n3""#)
    );
    let own = node(
        "n1",
        json!({"kubernetes.io/hostname": "n1", "kubernetes.io/arch": "amd64"}),
        json!({"taints": [{"key": "k", "effect": "NoSchedule"}]}),
    );
    // Registering with taints is fine; only changing them later is not.
    assert_eq!(
        refusal(admit(&n1(), nodes(), "", Op::Create, &own, None)),
        None
    );
    let other = node("n2", json!({}), json!({}));
    assert!(
        refusal(admit(
            &n1(),
            nodes(),
            "status",
            Op::Update,
            &other,
            Some(&other)
        ))
        .is_some()
    );
    assert_eq!(
        refusal(admit(
            &n1(),
            nodes(),
            "status",
            Op::Update,
            &own,
            Some(&own)
        )),
        None
    );
    let source = node(
        "n1",
        json!({}),
        json!({"configSource": {"configMap": {"name": "c", "namespace": "kube-system"}}}),
    );
    assert_eq!(
        refusal(admit(&n1(), nodes(), "", Op::Create, &source, None)).as_deref(),
        Some(
            r#"nodes "n1" is forbidden: node "n1" is not allowed to create pods with a non-nil configSource"#
        )
    );
    let plain = node("n1", json!({}), json!({}));
    assert_eq!(
        refusal(admit(&n1(), nodes(), "", Op::Update, &source, Some(&plain))).as_deref(),
        Some(
            r#"nodes "n1" is forbidden: node "n1" is not allowed to update configSource to a new non-nil configSource"#
        )
    );
    // Dropping it (an old kubelet's status update) is not a change to refuse.
    assert_eq!(
        refusal(admit(&n1(), nodes(), "", Op::Update, &plain, Some(&source))),
        None
    );
}

#[test]
fn node_labels_outside_the_kubelets_set_are_refused() {
    let allowed = [
        "kubernetes.io/hostname",
        "kubernetes.io/os",
        "beta.kubernetes.io/arch",
        "beta.kubernetes.io/instance-type",
        "node.kubernetes.io/instance-type",
        "failure-domain.beta.kubernetes.io/zone",
        "topology.kubernetes.io/region",
        "topology.kubernetes.io/zone",
        "kubelet.kubernetes.io/anything",
        "x.kubelet.kubernetes.io/anything",
        "node.kubernetes.io/windows-build",
        "example.com/rack",
        "plain",
    ];
    for label in allowed {
        let obj = node("n1", json!({label: "v"}), json!({}));
        assert_eq!(
            refusal(admit(&n1(), nodes(), "", Op::Create, &obj, None)),
            None,
            "{label}"
        );
    }
    let refused = [
        "node-restriction.kubernetes.io/secure",
        "x.node-restriction.kubernetes.io/secure",
        "node-role.kubernetes.io/control-plane",
        "kubernetes.io/role",
        "topology.kubernetes.io/rack",
        "k8s.io/x",
        "foo.k8s.io/x",
        "bar.kubernetes.io/x",
    ];
    for label in refused {
        let obj = node("n1", json!({label: "v"}), json!({}));
        assert!(
            refusal(admit(&n1(), nodes(), "", Op::Create, &obj, None)).is_some(),
            "{label}"
        );
    }
    let obj = node(
        "n1",
        json!({"node-role.kubernetes.io/a": "", "kubernetes.io/role": "x", "plain": "y"}),
        json!({}),
    );
    assert_eq!(
        refusal(admit(&n1(), nodes(), "", Op::Create, &obj, None)).as_deref(),
        Some(
            r#"nodes "n1" is forbidden: node "n1" is not allowed to set the following labels: kubernetes.io/role, node-role.kubernetes.io/a"#
        )
    );
    // On update only what changes counts: a restricted label the cluster set
    // may stay, but not be changed or removed by the node.
    let old = node(
        "n1",
        json!({"node-restriction.kubernetes.io/pool": "gpu", "zone": "a"}),
        json!({}),
    );
    let relabelled = node(
        "n1",
        json!({"node-restriction.kubernetes.io/pool": "gpu", "zone": "b"}),
        json!({}),
    );
    assert_eq!(
        refusal(admit(
            &n1(),
            nodes(),
            "",
            Op::Update,
            &relabelled,
            Some(&old)
        )),
        None
    );
    for labels in [
        json!({"node-restriction.kubernetes.io/pool": "cpu"}),
        json!({"zone": "a"}),
    ] {
        let new = node("n1", labels, json!({}));
        assert_eq!(
            refusal(admit(&n1(), nodes(), "", Op::Update, &new, Some(&old))).as_deref(),
            Some(
                r#"nodes "n1" is forbidden: is not allowed to modify labels: node-restriction.kubernetes.io/pool"#
            )
        );
    }
}

#[test]
fn a_node_may_not_change_its_taints() {
    let old = node(
        "n1",
        json!({}),
        json!({"taints": [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]}),
    );
    let cleared = node("n1", json!({}), json!({"taints": []}));
    assert_eq!(
        refusal(admit(&n1(), nodes(), "", Op::Update, &cleared, Some(&old))).as_deref(),
        Some(r#"nodes "n1" is forbidden: node "n1" is not allowed to modify taints"#)
    );
    // No taints and an empty list are the same.
    let none = node("n1", json!({}), json!({}));
    assert_eq!(
        refusal(admit(&n1(), nodes(), "", Op::Update, &cleared, Some(&none))),
        None
    );
}

#[test]
fn only_its_own_lease_in_kube_node_lease() {
    let leases = resource("coordination.k8s.io", "v1", "leases");
    let lease =
        |ns: &str, name: &str| json!({"metadata": {"name": name, "namespace": ns}, "spec": {}});
    let own = lease("kube-node-lease", "n1");
    assert_eq!(
        refusal(admit(&n1(), leases, "", Op::Create, &own, None)),
        None
    );
    assert_eq!(
        refusal(admit(&n1(), leases, "", Op::Update, &own, Some(&own))),
        None
    );
    assert_eq!(
        refusal(admit(
            &n1(),
            leases,
            "",
            Op::Create,
            &lease("kube-node-lease", "n2"),
            None
        ))
        .as_deref(),
        Some(
            r#"leases.coordination.k8s.io "n2" is forbidden: can only access node lease with the same name as the requesting node"#
        )
    );
    assert_eq!(
        refusal(admit(
            &n1(),
            leases,
            "",
            Op::Create,
            &lease("default", "n1"),
            None
        ))
        .as_deref(),
        Some(
            r#"leases.coordination.k8s.io "n1" is forbidden: can only access leases in the "kube-node-lease" system namespace"#
        )
    );
}

#[test]
fn pods_status_only_of_its_own_and_no_creation() {
    let pods = resource("", "v1", "pods");
    let pod = |node: &str, labels: Value| json!({"metadata": {"name": "web", "labels": labels}, "spec": {"nodeName": node}, "status": {"phase": "Running"}});
    let mine = pod("n1", json!({"app": "web"}));
    assert_eq!(
        refusal(admit(&n1(), pods, "status", Op::Update, &mine, Some(&mine))),
        None
    );
    let theirs = pod("n2", json!({"app": "web"}));
    assert_eq!(
        refusal(admit(
            &n1(),
            pods,
            "status",
            Op::Update,
            &theirs,
            Some(&theirs)
        ))
        .as_deref(),
        Some(
            r#"pods "web" is forbidden: node "n1" can only update pod status for pods with spec.nodeName set to itself"#
        )
    );
    // Judged by where the pod ran, not where the new body says.
    assert!(
        refusal(admit(
            &n1(),
            pods,
            "status",
            Op::Update,
            &mine,
            Some(&theirs)
        ))
        .is_some()
    );
    let relabelled = pod("n1", json!({"app": "db"}));
    assert_eq!(
        refusal(admit(
            &n1(),
            pods,
            "status",
            Op::Update,
            &relabelled,
            Some(&mine)
        ))
        .as_deref(),
        Some(r#"pods "web" is forbidden: node "n1" cannot update labels through pod status"#)
    );
    let mut claimed = mine.clone();
    claimed["status"]["resourceClaimStatuses"] =
        json!([{"name": "gpu", "resourceClaimName": "other"}]);
    assert!(
        refusal(admit(
            &n1(),
            pods,
            "status",
            Op::Update,
            &claimed,
            Some(&mine)
        ))
        .is_some()
    );
    assert_eq!(
        refusal(admit(&n1(), pods, "", Op::Create, &mine, None)).as_deref(),
        Some(
            r#"pods "web" is forbidden: pod does not have "kubernetes.io/config.mirror" annotation, node "n1" can only create mirror pods"#
        )
    );
    let mut mirror = mine.clone();
    mirror["metadata"]["annotations"] = json!({"kubernetes.io/config.mirror": "hash"});
    assert!(
        refusal(admit(&n1(), pods, "", Op::Create, &mirror, None))
            .unwrap()
            .contains("mirror pods are not supported")
    );
    assert!(refusal(admit(&n1(), pods, "", Op::Update, &mine, Some(&mine))).is_some());
    assert!(
        refusal(admit(
            &n1(),
            pods,
            "ephemeralcontainers",
            Op::Update,
            &mine,
            Some(&mine)
        ))
        .is_some()
    );
}

#[test]
fn claim_status_only_capacity_and_conditions() {
    let pvcs = resource("", "v1", "persistentvolumeclaims");
    let old = json!({
        "metadata": {"name": "data", "resourceVersion": "5", "labels": {"a": "b"}},
        "spec": {"resources": {"requests": {"storage": "1Gi"}}},
        "status": {"phase": "Bound", "capacity": {"storage": "1Gi"}},
    });
    let mut grown = old.clone();
    grown["metadata"]["resourceVersion"] = json!("6");
    grown["status"]["capacity"] = json!({"storage": "2Gi"});
    grown["status"]["conditions"] = json!([{"type": "Resizing", "status": "True"}]);
    assert_eq!(
        refusal(admit(&n1(), pvcs, "status", Op::Update, &grown, Some(&old))),
        None
    );
    let mut rephased = old.clone();
    rephased["status"]["phase"] = json!("Lost");
    assert_eq!(
        refusal(admit(
            &n1(),
            pvcs,
            "status",
            Op::Update,
            &rephased,
            Some(&old)
        ))
        .as_deref(),
        Some(
            r#"persistentvolumeclaims "data" is forbidden: node "n1" is not allowed to update fields other than status.capacity and status.conditions: status"#
        )
    );
    assert_eq!(
        refusal(admit(&n1(), pvcs, "", Op::Update, &old, Some(&old))).as_deref(),
        Some(r#"persistentvolumeclaims "data" is forbidden: may only update PVC status"#)
    );
}

#[test]
fn bodies_of_any_shape_are_judged_without_panicking() {
    for obj in [
        json!(null),
        json!("x"),
        json!([1]),
        json!({"metadata": 3, "spec": "s"}),
    ] {
        for r in [
            nodes(),
            resource("", "v1", "pods"),
            resource("coordination.k8s.io", "v1", "leases"),
        ] {
            for sub in ["", "status"] {
                let _ = admit(&n1(), r, sub, Op::Create, &obj, None);
                let _ = admit(&n1(), r, sub, Op::Update, &obj, Some(&obj));
            }
        }
    }
}

#[test]
fn a_nodes_token_must_be_bound_to_its_own_pod() {
    let pods = |name: &str| match name {
        "web" => {
            Some(json!({"metadata": {"name": "web", "uid": "u-web"}, "spec": {"nodeName": "n1"}}))
        }
        "far" => {
            Some(json!({"metadata": {"name": "far", "uid": "u-far"}, "spec": {"nodeName": "n2"}}))
        }
        _ => None,
    };
    let pod_ref = |name: &str, uid: &str| BoundObjectRef {
        api_version: "v1".into(),
        kind: "Pod".into(),
        name: name.into(),
        uid: uid.into(),
    };
    let check = |r: Option<BoundObjectRef>| admit_token_request(&n1(), "app", r.as_ref(), &pods);
    assert!(check(Some(pod_ref("web", "u-web"))).is_ok());
    let cases = [
        (None, "node requested token not bound to a pod"),
        (
            Some(BoundObjectRef {
                kind: "Secret".into(),
                ..pod_ref("web", "u-web")
            }),
            "node requested token not bound to a pod",
        ),
        (
            Some(BoundObjectRef {
                api_version: "".into(),
                ..pod_ref("web", "u-web")
            }),
            "node requested token not bound to a pod",
        ),
        (
            Some(pod_ref("web", "")),
            "node requested token with a pod binding without a uid",
        ),
        (
            Some(pod_ref("web", "u-old")),
            "the UID in the bound object reference (u-old) does not match the UID in record. The object might have been deleted and then recreated",
        ),
        (
            Some(pod_ref("far", "u-far")),
            "node requested token bound to a pod scheduled on a different node",
        ),
    ];
    for (r, why) in cases {
        assert_eq!(
            refusal(check(r)),
            Some(format!(r#"serviceaccounts "app" is forbidden: {why}"#))
        );
    }
    assert!(matches!(
        check(Some(pod_ref("gone", "u"))),
        Err(ApiError::NotFound { .. })
    ));
    // Anyone else is left to the TokenRequest handler.
    let admin = user("admin", &["system:masters"]);
    assert!(admit_token_request(&admin, "app", None, &pods).is_ok());
}

use serde_json::{Value, json};

use super::*;
use crate::testing::{mutations, samples};

fn messages(api_version: &str, kind: &str, obj: &Value, old: Option<&Value>) -> Vec<String> {
    validate(api_version, kind, obj, old)
        .iter()
        .map(FieldError::message)
        .collect()
}

fn sample(kind: &str) -> (&'static str, Value) {
    let (v, _, obj) = samples()
        .into_iter()
        .find(|(_, k, _)| *k == kind)
        .expect("sample");
    (v, obj)
}

/// Applies `edit` to the sample of `kind` and checks the errors start with `want` (all of them, in order).
fn expect(kind: &str, edit: impl FnOnce(&mut Value), want: &[&str]) {
    let (v, mut obj) = sample(kind);
    edit(&mut obj);
    let got = messages(v, kind, &obj, None);
    assert_eq!(got.len(), want.len(), "{kind}: {got:#?}");
    for (g, w) in got.iter().zip(want) {
        assert!(g.starts_with(w), "{kind}: got {g:?}, want {w:?}");
    }
}

#[test]
fn samples_are_valid() {
    for (v, k, obj) in samples() {
        assert_eq!(messages(v, k, &obj, None), Vec::<String>::new(), "{k}");
        assert_eq!(
            messages(v, k, &obj, Some(&obj)),
            Vec::<String>::new(),
            "{k} update"
        );
    }
}

#[test]
fn pods() {
    expect(
        "Pod",
        |o| o["spec"]["containers"] = json!([]),
        &["spec.containers: Required value"],
    );
    expect(
        "Pod",
        |o| o["spec"]["containers"][0]["image"] = json!(""),
        &["spec.containers[0].image: Required value"],
    );
    expect(
        "Pod",
        |o| {
            let c = o["spec"]["containers"][0].clone();
            o["spec"]["containers"]
                .as_array_mut()
                .expect("list")
                .push(c);
        },
        &["spec.containers[1].name: Duplicate value: \"web\""],
    );
    expect(
        "Pod",
        |o| o["spec"]["containers"][0]["name"] = json!("Web_1"),
        &["spec.containers[0].name: Invalid value: \"Web_1\": a lowercase RFC 1123 label"],
    );
    expect(
        "Pod",
        |o| o["spec"]["containers"][0]["ports"][0]["containerPort"] = json!(70000),
        &[
            "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
        ],
    );
    expect(
        "Pod",
        |o| o["spec"]["containers"][0]["ports"][0]["protocol"] = json!("tcp"),
        &[
            "spec.containers[0].ports[0].protocol: Unsupported value: \"tcp\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
        ],
    );
    expect(
        "Pod",
        |o| o["spec"]["restartPolicy"] = json!("Sometimes"),
        &[
            "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
        ],
    );
    expect(
        "Pod",
        |o| o["spec"]["containers"][0]["resources"]["requests"]["cpu"] = json!("2"),
        &[
            "spec.containers[0].resources.requests[cpu]: Invalid value: \"2\": must be less than or equal to cpu limit of 1",
        ],
    );
    expect(
        "Pod",
        |o| o["spec"]["containers"][0]["resources"]["limits"]["memory"] = json!("1Gb"),
        &[
            "spec.containers[0].resources.limits[memory]: Invalid value: \"1Gb\": quantities must match the regular expression",
        ],
    );
    expect(
        "Pod",
        |o| o["spec"]["containers"][0]["resources"]["limits"]["cpu"] = json!("-1"),
        &[
            "spec.containers[0].resources.limits[cpu]: Invalid value: \"-1\": must be greater than or equal to 0",
        ],
    );
    expect(
        "Pod",
        |o| o["spec"]["containers"][0]["env"][0]["name"] = json!("A=B"),
        &["spec.containers[0].env[0].name: Invalid value: \"A=B\""],
    );
    expect(
        "Pod",
        |o| o["spec"]["containers"][0]["volumeMounts"][0]["name"] = json!("nope"),
        &["spec.containers[0].volumeMounts[0].name: Not found: \"nope\""],
    );
    expect(
        "Pod",
        |o| {
            o["spec"]["volumes"]
                .as_array_mut()
                .expect("list")
                .push(json!({"name": "data", "emptyDir": {}}));
        },
        &["spec.volumes[1].name: Duplicate value: \"data\""],
    );
    expect(
        "Pod",
        |o| o["spec"]["volumes"][0] = json!({"name": "data"}),
        &["spec.volumes[0]: Required value: must specify a volume type"],
    );
    expect(
        "Pod",
        |o| o["spec"]["tolerations"][0]["value"] = json!("v"),
        &[
            "spec.tolerations[0].operator: Invalid value: \"v\": value must be empty when `operator` is 'Exists'",
        ],
    );
    expect(
        "Pod",
        |o| o["metadata"]["name"] = json!("Foo"),
        &[
            "metadata.name: Invalid value: \"Foo\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        ],
    );
}

#[test]
fn pod_scheduling_gates_and_os() {
    let qualified = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
    let gates = |names: Value| move |o: &mut Value| o["spec"]["schedulingGates"] = names;
    expect(
        "Pod",
        gates(json!([{"name": "example.com/gate"}, {"name": "Gate_2.x"}])),
        &[],
    );
    expect(
        "Pod",
        gates(json!([{"name": "bad gate"}])),
        &[&format!(
            "spec.schedulingGates[0]: Invalid value: \"bad gate\": {qualified}"
        )],
    );
    expect(
        "Pod",
        gates(json!([{"name": "a"}, {"name": "b"}, {"name": "a"}])),
        &["spec.schedulingGates[2]: Duplicate value: \"a\""],
    );
    expect(
        "Pod",
        gates(json!([{"name": "g".repeat(64)}])),
        &["spec.schedulingGates[0]: Invalid value: \"gggg"],
    );
    expect(
        "Pod",
        gates(json!([{"name": "Example.com/gate"}])),
        &[
            "spec.schedulingGates[0]: Invalid value: \"Example.com/gate\": prefix part a lowercase RFC 1123 subdomain",
        ],
    );
    expect(
        "Pod",
        gates(json!([{}])),
        &[
            "spec.schedulingGates[0]: Invalid value: \"\": name part must be non-empty",
            &format!("spec.schedulingGates[0]: Invalid value: \"\": {qualified}"),
        ],
    );
    let os = |v: Value| move |o: &mut Value| o["spec"]["os"] = v;
    expect("Pod", os(json!({"name": "linux"})), &[]);
    expect("Pod", os(json!({"name": "windows"})), &[]);
    expect("Pod", os(json!(null)), &[]);
    expect(
        "Pod",
        os(json!({"name": "plan9"})),
        &["spec.os.name: Unsupported value: \"plan9\": supported values: \"linux\", \"windows\""],
    );
    expect(
        "Pod",
        os(json!({})),
        &["spec.os.name: Required value: cannot be empty"],
    );
    expect(
        "Deployment",
        |o| o["spec"]["template"]["spec"]["os"] = json!({"name": "Linux"}),
        &["spec.template.spec.os.name: Unsupported value: \"Linux\""],
    );
    let (v, mut pod) = sample("Pod");
    pod["spec"]["os"] = json!({"name": "plan9"});
    let errs = validate(v, "Pod", &pod, None);
    assert_eq!(errs[0].reason(), "FieldValueNotSupported");
    assert_eq!(errs[0].field, "spec.os.name");
}

#[test]
fn pod_updates() {
    let (_, old) = sample("Pod");
    let mut new = old.clone();
    new["spec"]["containers"][0]["image"] = json!("nginx:1.26");
    new["spec"]["tolerations"]
        .as_array_mut()
        .expect("list")
        .push(json!({"operator": "Exists"}));
    new["spec"]["activeDeadlineSeconds"] = json!(30);
    assert!(messages("v1", "Pod", &new, Some(&old)).is_empty());
    new["spec"]["containers"][0]["ports"] = json!([]);
    new["spec"]["tolerations"] = json!([]);
    assert_eq!(messages("v1", "Pod", &new, Some(&old)).len(), 1);
    assert!(
        messages("v1", "Pod", &new, Some(&old))[0]
            .starts_with("spec: Forbidden: pod updates may not change fields other than")
    );
    let mut renamed = old.clone();
    renamed["metadata"]["name"] = json!("other");
    assert_eq!(
        messages("v1", "Pod", &renamed, Some(&old)),
        vec!["metadata.name: Invalid value: \"other\": field is immutable"]
    );
}

#[test]
fn node_updates_keep_pod_cidrs_and_provider_id() {
    let (_, mut old) = sample("Node");
    old["spec"]["podCIDRs"] = json!(["10.42.0.0/24"]);
    old["spec"]["providerID"] = json!("flotilla://n1");
    let mut new = old.clone();
    new["spec"]["unschedulable"] = json!(true);
    assert!(messages("v1", "Node", &new, Some(&old)).is_empty());
    // Moved, or taken away.
    for cidrs in [json!(["10.99.0.0/24"]), json!([])] {
        let mut moved = old.clone();
        moved["spec"]["podCIDR"] = cidrs.get(0).cloned().unwrap_or(json!(""));
        moved["spec"]["podCIDRs"] = cidrs.clone();
        assert_eq!(
            messages("v1", "Node", &moved, Some(&old)),
            vec![
                r#"spec.podCIDRs: Forbidden: node updates may not change podCIDR except from "" to valid"#
            ],
            "{cidrs}"
        );
    }
    // Only the singular field changed: still a change.
    let mut moved = old.clone();
    moved["spec"]["podCIDR"] = json!("10.99.0.0/24");
    assert_eq!(messages("v1", "Node", &moved, Some(&old)).len(), 1);
    let mut reprovided = old.clone();
    reprovided["spec"]["providerID"] = json!("other://n1");
    assert_eq!(
        messages("v1", "Node", &reprovided, Some(&old)),
        vec![
            r#"spec.providerID: Forbidden: node updates may not change providerID except from "" to valid"#
        ]
    );
    // From empty to set is how both are assigned.
    let mut fresh = old.clone();
    fresh["spec"] = json!({});
    assert!(messages("v1", "Node", &old, Some(&fresh)).is_empty());
}

#[test]
fn services() {
    expect(
        "Service",
        |o| o["spec"]["ports"] = json!([]),
        &["spec.ports: Required value"],
    );
    expect(
        "Service",
        |o| {
            o["spec"]["ports"] = json!([]);
            o["spec"]["clusterIP"] = json!("None");
        },
        &[],
    );
    expect(
        "Service",
        |o| o["spec"]["type"] = json!("Magic"),
        &["spec.type: Unsupported value: \"Magic\""],
    );
    expect(
        "Service",
        |o| o["spec"]["ports"][0]["port"] = json!(0),
        &["spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive"],
    );
    expect(
        "Service",
        |o| o["spec"]["ports"][0]["protocol"] = json!("HTTP"),
        &["spec.ports[0].protocol: Unsupported value: \"HTTP\""],
    );
    expect(
        "Service",
        |o| o["spec"]["ports"][0]["targetPort"] = json!(99999),
        &["spec.ports[0].targetPort: Invalid value: 99999"],
    );
    expect(
        "Service",
        |o| o["spec"]["ports"] = json!([{"port": 80}, {"port": 81}]),
        &[
            "spec.ports[0].name: Required value",
            "spec.ports[1].name: Required value",
        ],
    );
    expect(
        "Service",
        |o| o["metadata"]["name"] = json!("1web"),
        &["metadata.name: Invalid value: \"1web\": a DNS-1035 label"],
    );
    expect(
        "Service",
        |o| o["spec"] = json!({"type": "ExternalName"}),
        &["spec.externalName: Required value"],
    );
    let (_, mut old) = sample("Service");
    old["spec"]["clusterIP"] = json!("10.43.0.5");
    let mut new = old.clone();
    new["spec"]["clusterIP"] = json!("10.43.0.6");
    let got = messages("v1", "Service", &new, Some(&old));
    assert!(
        got.iter()
            .any(|m| m == "spec.clusterIP: Invalid value: \"10.43.0.6\": field is immutable"),
        "{got:?}"
    );
}

#[test]
fn config_maps_and_secrets() {
    expect(
        "ConfigMap",
        |o| o["data"]["a/b"] = json!("x"),
        &[
            "data[a/b]: Invalid value: \"a/b\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
        ],
    );
    expect(
        "ConfigMap",
        |o| o["data"]["big"] = json!("x".repeat(MAX_DATA_SIZE)),
        &[": Too long: may not be more than 1048576 bytes"],
    );
    expect(
        "Secret",
        |o| o["type"] = json!("kubernetes.io/tls"),
        &[
            "data[tls.crt]: Required value",
            "data[tls.key]: Required value",
        ],
    );
    let (_, old) = sample("Secret");
    let mut new = old.clone();
    new["type"] = json!("kubernetes.io/basic-auth");
    new["data"] = json!({"username": "eA=="});
    assert_eq!(
        messages("v1", "Secret", &new, Some(&old)),
        vec!["type: Invalid value: \"kubernetes.io/basic-auth\": field is immutable"]
    );
    let (_, mut old) = sample("ConfigMap");
    old["immutable"] = json!(true);
    let mut new = old.clone();
    new["data"]["a.conf"] = json!("y");
    assert_eq!(
        messages("v1", "ConfigMap", &new, Some(&old)),
        vec!["data: Forbidden: field is immutable when `immutable` is set"]
    );
}

#[test]
fn workloads() {
    expect(
        "Deployment",
        |o| o["spec"]["selector"] = json!(null),
        &["spec.selector: Required value"],
    );
    expect(
        "Deployment",
        |o| o["spec"]["selector"] = json!({}),
        &["spec.selector: Invalid value: {}: empty selector is invalid for deployment"],
    );
    expect(
        "Deployment",
        |o| o["spec"]["selector"]["matchLabels"]["app"] = json!("db"),
        &[
            "spec.template.metadata.labels: Invalid value: {\"app\":\"web\"}: `selector` does not match template `labels`",
        ],
    );
    expect(
        "Deployment",
        |o| o["spec"]["replicas"] = json!(-1),
        &["spec.replicas: Invalid value: -1: must be greater than or equal to 0"],
    );
    expect(
        "Deployment",
        |o| o["spec"]["strategy"]["type"] = json!("Blue"),
        &["spec.strategy.type: Unsupported value: \"Blue\""],
    );
    expect(
        "Deployment",
        |o| o["spec"]["strategy"]["rollingUpdate"]["maxSurge"] = json!(0),
        &[
            "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0",
        ],
    );
    expect(
        "Deployment",
        |o| o["spec"]["strategy"]["rollingUpdate"]["maxSurge"] = json!("150%"),
        &[
            "spec.strategy.rollingUpdate.maxSurge: Invalid value: \"150%\": must not be greater than 100%",
        ],
    );
    expect(
        "Deployment",
        |o| o["spec"]["template"]["spec"]["containers"][0]["image"] = json!(null),
        &["spec.template.spec.containers[0].image: Required value"],
    );
    expect(
        "Deployment",
        |o| o["spec"]["template"]["spec"]["restartPolicy"] = json!("Never"),
        &[
            "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
        ],
    );
    expect(
        "StatefulSet",
        |o| o["spec"]["podManagementPolicy"] = json!("Random"),
        &["spec.podManagementPolicy: Unsupported value"],
    );
    expect(
        "DaemonSet",
        |o| o["spec"]["updateStrategy"] = json!({"type": "Sometimes"}),
        &["spec.updateStrategy.type: Unsupported value"],
    );
    expect(
        "Job",
        |o| o["spec"]["template"]["spec"]["restartPolicy"] = json!("Always"),
        &[
            "spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\"",
        ],
    );
    expect(
        "Job",
        |o| o["spec"]["backoffLimit"] = json!(-2),
        &["spec.backoffLimit: Invalid value: -2"],
    );
    expect(
        "CronJob",
        |o| o["spec"]["schedule"] = json!(""),
        &["spec.schedule: Required value"],
    );
    expect(
        "CronJob",
        |o| o["spec"]["schedule"] = json!("* * *"),
        &["spec.schedule: Invalid value: \"* * *\": expected exactly 5 fields"],
    );
    expect(
        "CronJob",
        |o| o["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"] = json!([]),
        &["spec.jobTemplate.spec.template.spec.containers: Required value"],
    );
    expect(
        "CronJob",
        |o| o["metadata"]["name"] = json!("a".repeat(53)),
        &["metadata.name: Invalid value: \"aaaa"],
    );

    let (_, old) = sample("Deployment");
    let mut new = old.clone();
    new["spec"]["selector"]["matchLabels"]["tier"] = json!("x");
    new["spec"]["template"]["metadata"]["labels"]["tier"] = json!("x");
    assert_eq!(
        messages("apps/v1", "Deployment", &new, Some(&old)),
        vec![
            "spec.selector: Invalid value: {\"matchLabels\":{\"app\":\"web\",\"tier\":\"x\"}}: field is immutable"
        ]
    );
    let (_, old) = sample("StatefulSet");
    let mut new = old.clone();
    new["spec"]["serviceName"] = json!("other");
    assert!(
        messages("apps/v1", "StatefulSet", &new, Some(&old))[0]
            .starts_with("spec: Forbidden: updates to statefulset spec")
    );
    let (_, old) = sample("Job");
    let mut new = old.clone();
    new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("other");
    assert!(
        messages("batch/v1", "Job", &new, Some(&old))[0]
            .starts_with("spec.template: Invalid value:")
    );
}

#[test]
fn small_kinds() {
    expect(
        "Namespace",
        |o| o["metadata"]["name"] = json!("a.b"),
        &["metadata.name: Invalid value: \"a.b\": must not contain dots"],
    );
    expect(
        "Namespace",
        |o| o["metadata"]["namespace"] = json!("x"),
        &["metadata.namespace: Forbidden: not allowed on this type"],
    );
    expect(
        "Node",
        |o| o["spec"]["taints"][0]["effect"] = json!("Never"),
        &["spec.taints[0].effect: Unsupported value: \"Never\""],
    );
    expect(
        "Node",
        |o| o["spec"]["podCIDR"] = json!("10.42.0.0"),
        &["spec.podCIDR: Invalid value: \"10.42.0.0\""],
    );
    expect(
        "Lease",
        |o| o["spec"]["leaseDurationSeconds"] = json!(0),
        &["spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"],
    );
    expect(
        "Ingress",
        |o| o["spec"]["rules"][0]["http"]["paths"][0]["pathType"] = json!("Glob"),
        &[
            "spec.rules[0].http.paths[0].pathType: Unsupported value: \"Glob\": supported values: \"Exact\", \"ImplementationSpecific\", \"Prefix\"",
        ],
    );
    expect(
        "Ingress",
        |o| o["spec"]["rules"][0]["http"]["paths"] = json!([]),
        &["spec.rules[0].http.paths: Required value"],
    );
    expect(
        "Ingress",
        |o| o["spec"]["rules"][0]["http"]["paths"][0]["path"] = json!("api"),
        &["spec.rules[0].http.paths[0].path: Invalid value: \"api\": must be an absolute path"],
    );
}

#[test]
fn reasons_map_to_status_causes() {
    let (v, mut obj) = sample("Pod");
    obj["spec"]["containers"][0]["image"] = json!("");
    let errs = validate(v, "Pod", &obj, None);
    assert_eq!(errs[0].reason(), "FieldValueRequired");
    assert_eq!(errs[0].field, "spec.containers[0].image");
}

#[test]
fn malformed_objects_never_panic() {
    for (v, k, obj) in samples() {
        for m in mutations(&obj) {
            let _ = validate(v, k, &m, None);
            let _ = validate(v, k, &m, Some(&obj));
            let _ = validate(v, k, &obj, Some(&m));
        }
    }
}

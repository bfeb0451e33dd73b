use serde_json::{Value, json};

use super::*;
use crate::testing::{mutations, samples};

fn defaulted(api_version: &str, kind: &str, mut obj: Value) -> Value {
    apply_defaults(api_version, kind, &mut obj);
    obj
}

#[test]
fn pods_get_kubernetes_defaults() {
    let pod = defaulted(
        "v1",
        "Pod",
        json!({"metadata": {"name": "p"}, "spec": {"containers": [
        {"name": "a", "image": "nginx", "ports": [{"containerPort": 80}],
         "resources": {"limits": {"cpu": "0.5", "memory": "1024Mi"}},
         "livenessProbe": {"httpGet": {"port": 80}}},
        {"name": "b", "image": "registry:5000/app:v1"},
        {"name": "c", "image": "app@sha256:abc"},
        {"name": "d", "image": "app:latest", "imagePullPolicy": "Never"}
    ], "volumes": [{"name": "v"}, {"name": "s", "secret": {"secretName": "x"}}]}}),
    );
    let spec = &pod["spec"];
    assert_eq!(spec["restartPolicy"], "Always");
    assert_eq!(spec["dnsPolicy"], "ClusterFirst");
    assert_eq!(spec["schedulerName"], "default-scheduler");
    assert_eq!(spec["terminationGracePeriodSeconds"], 30);
    assert_eq!(spec["securityContext"], json!({}));
    assert_eq!(spec["enableServiceLinks"], true);
    assert_eq!(spec["priority"], 0);
    assert_eq!(spec["preemptionPolicy"], "PreemptLowerPriority");
    let a = &spec["containers"][0];
    assert_eq!(a["imagePullPolicy"], "Always");
    assert_eq!(a["terminationMessagePath"], "/dev/termination-log");
    assert_eq!(a["terminationMessagePolicy"], "File");
    assert_eq!(a["ports"][0]["protocol"], "TCP");
    assert_eq!(
        a["resources"],
        json!({"limits": {"cpu": "500m", "memory": "1Gi"}, "requests": {"cpu": "500m", "memory": "1Gi"}})
    );
    assert_eq!(
        a["livenessProbe"],
        json!({"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"},
        "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3})
    );
    assert_eq!(spec["containers"][1]["imagePullPolicy"], "IfNotPresent");
    assert_eq!(spec["containers"][1]["resources"], json!({}));
    assert_eq!(spec["containers"][2]["imagePullPolicy"], "IfNotPresent");
    assert_eq!(spec["containers"][3]["imagePullPolicy"], "Never");
    assert_eq!(spec["volumes"][0], json!({"name": "v", "emptyDir": {}}));
    assert_eq!(spec["volumes"][1]["secret"]["defaultMode"], 420);
}

#[test]
fn tolerations_for_unready_nodes() {
    let mut pod = json!({"spec": {"tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}]}});
    default_tolerations(&mut pod);
    let t = pod["spec"]["tolerations"].as_array().expect("list");
    assert_eq!(t.len(), 2);
    assert_eq!(
        t[1],
        json!({"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300})
    );
    let mut bare = json!({"spec": {}});
    default_tolerations(&mut bare);
    assert_eq!(
        bare["spec"]["tolerations"].as_array().map(Vec::len),
        Some(2)
    );
}

#[test]
fn services() {
    let svc = defaulted(
        "v1",
        "Service",
        json!({"spec": {"ports": [{"port": 80}, {"port": 443, "targetPort": "https"}]}}),
    );
    assert_eq!(
        svc["spec"],
        json!({
            "type": "ClusterIP", "sessionAffinity": "None", "internalTrafficPolicy": "Cluster",
            "ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv4"],
            "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}, {"port": 443, "protocol": "TCP", "targetPort": "https"}]
        })
    );
    let lb = defaulted(
        "v1",
        "Service",
        json!({"spec": {"type": "LoadBalancer", "sessionAffinity": "ClientIP"}}),
    );
    assert_eq!(lb["spec"]["externalTrafficPolicy"], "Cluster");
    assert_eq!(lb["spec"]["allocateLoadBalancerNodePorts"], true);
    assert_eq!(
        lb["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"],
        10800
    );
    let ext = defaulted(
        "v1",
        "Service",
        json!({"spec": {"type": "ExternalName", "externalName": "x.com"}}),
    );
    assert!(ext["spec"].get("ipFamilies").is_none());

    let old = json!({"spec": {"type": "NodePort", "clusterIP": "10.43.0.7", "clusterIPs": ["10.43.0.7"],
        "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}]}});
    let mut new = json!({"spec": {"type": "NodePort", "ports": [{"port": 80, "protocol": "TCP"}]}});
    carry_over_service_allocations(&mut new, &old);
    assert_eq!(new["spec"]["clusterIP"], "10.43.0.7");
    assert_eq!(new["spec"]["ports"][0]["nodePort"], 30080);
}

#[test]
fn workloads() {
    let d = defaulted(
        "apps/v1",
        "Deployment",
        json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "x:1"}]}}}}),
    );
    assert_eq!(d["spec"]["replicas"], 1);
    assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
    assert_eq!(d["spec"]["progressDeadlineSeconds"], 600);
    assert_eq!(
        d["spec"]["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
    );
    let tspec = &d["spec"]["template"]["spec"];
    assert_eq!(tspec["restartPolicy"], "Always");
    assert!(
        tspec.get("enableServiceLinks").is_none(),
        "pod-only default leaked into a template"
    );
    let recreate = defaulted(
        "apps/v1",
        "Deployment",
        json!({"spec": {"strategy": {"type": "Recreate"}}}),
    );
    assert!(recreate["spec"]["strategy"].get("rollingUpdate").is_none());

    let s = defaulted(
        "apps/v1",
        "StatefulSet",
        json!({"spec": {"volumeClaimTemplates": [{"spec": {}}]}}),
    );
    assert_eq!(s["spec"]["podManagementPolicy"], "OrderedReady");
    assert_eq!(
        s["spec"]["updateStrategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
    );
    assert_eq!(
        s["spec"]["persistentVolumeClaimRetentionPolicy"],
        json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
    );
    assert_eq!(
        s["spec"]["volumeClaimTemplates"][0],
        json!({"spec": {"volumeMode": "Filesystem"}, "status": {"phase": "Pending"}})
    );
    assert!(s["spec"].get("serviceName").is_none());

    let ds = defaulted("apps/v1", "DaemonSet", json!({"spec": {}}));
    assert_eq!(
        ds["spec"]["updateStrategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
    );

    let mut j = defaulted(
        "batch/v1",
        "Job",
        json!({"metadata": {"name": "pi"}, "spec": {"template": {"metadata": {"labels": {"x": "y"}}, "spec": {}}}}),
    );
    assert_eq!(j["spec"]["completions"], 1);
    assert_eq!(j["spec"]["parallelism"], 1);
    assert_eq!(j["spec"]["backoffLimit"], 6);
    assert_eq!(j["spec"]["completionMode"], "NonIndexed");
    assert_eq!(j["spec"]["suspend"], false);
    assert_eq!(j["spec"]["manualSelector"], false);
    assert_eq!(j["spec"]["podReplacementPolicy"], "TerminatingOrFailed");
    assert_eq!(j["metadata"]["labels"], json!({"x": "y"}));
    job_selector_and_labels(&mut j, "u-1");
    assert_eq!(
        j["spec"]["selector"],
        json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}})
    );
    assert_eq!(
        j["spec"]["template"]["metadata"]["labels"]["job-name"],
        "pi"
    );
    let parallel = defaulted("batch/v1", "Job", json!({"spec": {"parallelism": 3}}));
    assert!(parallel["spec"].get("completions").is_none());

    let cj = defaulted(
        "batch/v1",
        "CronJob",
        json!({"spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": {}}}}}}),
    );
    assert_eq!(cj["spec"]["concurrencyPolicy"], "Allow");
    assert_eq!(cj["spec"]["successfulJobsHistoryLimit"], 3);
    assert_eq!(cj["spec"]["failedJobsHistoryLimit"], 1);
    assert_eq!(
        cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["dnsPolicy"],
        "ClusterFirst"
    );
}

#[test]
fn other_kinds() {
    let ns = defaulted("v1", "Namespace", json!({"metadata": {"name": "team"}}));
    assert_eq!(
        ns,
        json!({"metadata": {"name": "team", "labels": {"kubernetes.io/metadata.name": "team"}},
        "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
    );
    assert_eq!(defaulted("v1", "Secret", json!({}))["type"], "Opaque");
    assert_eq!(
        defaulted("v1", "PersistentVolumeClaim", json!({}))["spec"]["volumeMode"],
        "Filesystem"
    );
    let node = defaulted("v1", "Node", json!({"status": {"capacity": {"cpu": "2"}}}));
    assert_eq!(node["status"]["allocatable"], json!({"cpu": "2"}));
    assert_eq!(
        defaulted("example.com/v1", "Widget", json!({"a": 1})),
        json!({"a": 1})
    );
}

#[test]
fn defaulting_is_idempotent_and_samples_stay_valid() {
    for (v, k, obj) in samples() {
        let once = defaulted(v, k, obj);
        let twice = defaulted(v, k, once.clone());
        assert_eq!(once, twice, "{k}");
        let errs = crate::validation::validate(v, k, &once, None);
        assert!(errs.is_empty(), "{k}: {errs:?}");
    }
}

#[test]
fn malformed_objects_never_panic() {
    for (v, k, obj) in samples() {
        for m in mutations(&obj) {
            let mut m = m;
            apply_defaults(v, k, &mut m);
            default_tolerations(&mut m);
            job_selector_and_labels(&mut m, "u");
            carry_over_service_allocations(&mut m, &obj);
        }
    }
}

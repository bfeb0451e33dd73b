use std::time::{Duration, SystemTime, UNIX_EPOCH};

use apimachinery::resources::{BUILTIN, Resource, builtin_by_kind};
use expect_test::{Expect, expect};
use serde_json::{Value, json};

use super::{IncludeObject, to_table};

/// 2024-01-01T01:00:00Z: every fixture is created an hour or less before it.
fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_704_070_800)
}

fn resource(api_version: &str, kind: &str) -> &'static Resource {
    builtin_by_kind(api_version, kind).unwrap_or_else(|| panic!("{kind} is built in"))
}

/// The table as `kubectl get` (or `-o wide`) would lay it out.
fn render(table: &Value, wide: bool) -> String {
    let columns = table["columnDefinitions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let shown: Vec<usize> = (0..columns.len())
        .filter(|&i| wide || columns[i]["priority"] == 0)
        .collect();
    let mut lines: Vec<Vec<String>> = vec![
        shown
            .iter()
            .map(|&i| columns[i]["name"].as_str().unwrap_or("").to_uppercase())
            .collect(),
    ];
    for row in table["rows"].as_array().into_iter().flatten() {
        lines.push(
            shown
                .iter()
                .map(|&i| match &row["cells"][i] {
                    Value::String(s) => s.clone(),
                    Value::Null => "<none>".into(),
                    other => other.to_string(),
                })
                .collect(),
        );
    }
    let widths: Vec<usize> = (0..shown.len())
        .map(|c| lines.iter().map(|l| l[c].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for line in lines {
        let cells: Vec<String> = line
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:w$}"))
            .collect();
        out.push_str(cells.join("   ").trim_end());
        out.push('\n');
    }
    out
}

fn check(r: &Resource, items: &[Value], wide: bool, want: Expect) {
    let refs: Vec<&Value> = items.iter().collect();
    let table = to_table(
        r,
        &refs,
        IncludeObject::None,
        json!({"resourceVersion": "7"}),
        now(),
    );
    want.assert_eq(&render(&table, wide));
}

fn pod(name: &str, spec: Value, status: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": "default", "creationTimestamp": "2024-01-01T00:10:00Z"},
           "spec": spec, "status": status})
}

fn one_container() -> Value {
    json!({"containers": [{"name": "app", "image": "busybox"}], "nodeName": "node-1"})
}

#[test]
fn pods_show_the_status_kubectl_shows() {
    let running = pod(
        "running",
        one_container(),
        json!({"phase": "Running", "podIP": "10.42.0.5", "podIPs": [{"ip": "10.42.0.5"}],
               "conditions": [{"type": "Ready", "status": "True"}],
               "containerStatuses": [{"name": "app", "ready": true, "restartCount": 2,
                   "state": {"running": {"startedAt": "2024-01-01T00:55:00Z"}},
                   "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2024-01-01T00:55:00Z"}}}]}),
    );
    let pending = pod(
        "pending",
        json!({"containers": [{"name": "app"}]}),
        json!({"phase": "Pending"}),
    );
    let creating = pod(
        "creating",
        one_container(),
        json!({"phase": "Pending", "containerStatuses": [{"name": "app", "ready": false, "restartCount": 0,
               "state": {"waiting": {"reason": "ContainerCreating"}}}]}),
    );
    let completed = pod(
        "completed",
        one_container(),
        json!({"phase": "Succeeded", "containerStatuses": [{"name": "app", "ready": false, "restartCount": 0,
               "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}),
    );
    let crashing = pod(
        "crashing",
        one_container(),
        json!({"phase": "Running", "containerStatuses": [{"name": "app", "ready": false, "restartCount": 5,
               "state": {"waiting": {"reason": "CrashLoopBackOff"}},
               "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": "2024-01-01T00:58:00Z"}}}]}),
    );
    let mut terminating = running.clone();
    terminating["metadata"]["name"] = json!("terminating");
    terminating["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:59:00Z");
    let init_pending = pod(
        "init",
        json!({"initContainers": [{"name": "setup"}], "containers": [{"name": "app"}]}),
        json!({"phase": "Pending", "initContainerStatuses": [{"name": "setup", "ready": false, "restartCount": 0,
               "state": {"waiting": {"reason": "PodInitializing"}}}]}),
    );
    let init_failed = pod(
        "init-failed",
        json!({"initContainers": [{"name": "setup"}], "containers": [{"name": "app"}]}),
        json!({"phase": "Pending", "initContainerStatuses": [{"name": "setup", "ready": false, "restartCount": 3,
               "state": {"terminated": {"exitCode": 2, "reason": "Error"}}}]}),
    );
    let sidecar = pod(
        "sidecar",
        json!({"initContainers": [{"name": "proxy", "restartPolicy": "Always"}], "containers": [{"name": "app"}],
               "readinessGates": [{"conditionType": "example.com/lb"}]}),
        json!({"phase": "Running", "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}],
               "initContainerStatuses": [{"name": "proxy", "ready": true, "started": true, "restartCount": 0, "state": {"running": {}}}],
               "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0, "state": {"running": {}}}]}),
    );
    let items = [
        running,
        pending,
        creating,
        completed,
        crashing,
        terminating,
        init_pending,
        init_failed,
        sidecar,
    ];
    check(
        resource("v1", "Pod"),
        &items,
        false,
        expect![[r#"
            NAME          READY   STATUS              RESTARTS     AGE
            running       1/1     Running             2 (5m ago)   50m
            pending       0/1     Pending             0            50m
            creating      0/1     ContainerCreating   0            50m
            completed     0/1     Completed           0            50m
            crashing      0/1     CrashLoopBackOff    5 (2m ago)   50m
            terminating   1/1     Terminating         2 (5m ago)   50m
            init          0/1     Init:0/1            0            50m
            init-failed   0/1     Init:Error          3            50m
            sidecar       2/2     Running             0            50m
        "#]],
    );
    check(
        resource("v1", "Pod"),
        &items[..1],
        true,
        expect![[r#"
            NAME      READY   STATUS    RESTARTS     AGE   IP          NODE     NOMINATED NODE   READINESS GATES
            running   1/1     Running   2 (5m ago)   50m   10.42.0.5   node-1   <none>           <none>
        "#]],
    );
}

#[test]
fn finished_pods_carry_the_completed_row_condition() {
    let done = pod("done", one_container(), json!({"phase": "Succeeded"}));
    let table = to_table(
        resource("v1", "Pod"),
        &[&done],
        IncludeObject::Metadata,
        json!({}),
        now(),
    );
    assert_eq!(table["rows"][0]["conditions"][0]["type"], "Completed");
    assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    assert_eq!(table["rows"][0]["object"]["metadata"]["name"], "done");
}

#[test]
fn deployments_and_replica_sets() {
    let deploy = json!({"metadata": {"name": "web", "creationTimestamp": "2023-12-30T22:00:00Z"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"spec": {"containers": [{"name": "httpd", "image": "busybox:1.36"}, {"name": "log", "image": "alpine"}]}}},
        "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
    check(
        resource("apps/v1", "Deployment"),
        std::slice::from_ref(&deploy),
        true,
        expect![[r#"
            NAME   READY   UP-TO-DATE   AVAILABLE   AGE   CONTAINERS   IMAGES                SELECTOR
            web    2/3     3            2           27h   httpd,log    busybox:1.36,alpine   app=web
        "#]],
    );
    check(
        resource("apps/v1", "ReplicaSet"),
        &[deploy],
        false,
        expect![[r#"
            NAME   DESIRED   CURRENT   READY   AGE
            web    3         0         2       27h
        "#]],
    );
}

#[test]
fn services_nodes_and_jobs() {
    let svc = json!({"metadata": {"name": "web", "creationTimestamp": "2024-01-01T00:59:30Z"},
        "spec": {"type": "NodePort", "clusterIP": "10.43.0.20", "clusterIPs": ["10.43.0.20"], "selector": {"app": "web"},
                 "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]}});
    check(
        resource("v1", "Service"),
        &[svc],
        true,
        expect![[r#"
            NAME   TYPE       CLUSTER-IP   EXTERNAL-IP   PORT(S)               AGE   SELECTOR
            web    NodePort   10.43.0.20   <none>        80:30080/TCP,53/UDP   30s   app=web
        "#]],
    );
    let node = json!({"metadata": {"name": "node-1", "creationTimestamp": "2023-12-01T00:00:00Z",
            "labels": {"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/master": ""}},
        "spec": {"unschedulable": true},
        "status": {"conditions": [{"type": "Ready", "status": "True"}],
                   "addresses": [{"type": "InternalIP", "address": "192.168.1.10"}],
                   "nodeInfo": {"kubeletVersion": "v1.33.0", "osImage": "Debian GNU/Linux 13", "kernelVersion": "6.1.0",
                                "containerRuntimeVersion": "runc://1.1"}}});
    check(
        resource("v1", "Node"),
        &[node],
        true,
        expect![[r#"
            NAME     STATUS                     ROLES                  AGE   VERSION   INTERNAL-IP    EXTERNAL-IP   OS-IMAGE              KERNEL-VERSION   CONTAINER-RUNTIME
            node-1   Ready,SchedulingDisabled   control-plane,master   31d   v1.33.0   192.168.1.10   <none>        Debian GNU/Linux 13   6.1.0            runc://1.1
        "#]],
    );
    let job = json!({"metadata": {"name": "pi", "creationTimestamp": "2024-01-01T00:00:00Z"},
        "spec": {"completions": 1, "template": {"spec": {"containers": [{"name": "pi", "image": "perl"}]}}},
        "status": {"succeeded": 1, "startTime": "2024-01-01T00:00:00Z", "completionTime": "2024-01-01T00:00:42Z",
                   "conditions": [{"type": "Complete", "status": "True"}]}});
    check(
        resource("batch/v1", "Job"),
        &[job],
        false,
        expect![[r#"
            NAME   STATUS     COMPLETIONS   DURATION   AGE
            pi     Complete   1/1           42s        60m
        "#]],
    );
}

#[test]
fn events_configmaps_and_default_tables() {
    let event = json!({"metadata": {"name": "web.1", "creationTimestamp": "2024-01-01T00:59:00Z"},
        "involvedObject": {"kind": "Pod", "name": "web-abc"}, "reason": "Pulled", "type": "Normal",
        "message": "Container image already present ", "firstTimestamp": "2024-01-01T00:58:00Z",
        "lastTimestamp": "2024-01-01T00:59:00Z", "count": 2, "source": {"component": "kubelet", "host": "node-1"}});
    check(
        resource("v1", "Event"),
        &[event],
        false,
        expect![[r#"
            LAST SEEN   TYPE     REASON   OBJECT        MESSAGE
            60s         Normal   Pulled   pod/web-abc   Container image already present
        "#]],
    );
    let cm = json!({"metadata": {"name": "cfg", "creationTimestamp": "2024-01-01T00:00:00Z"}, "data": {"a": "1", "b": "2"}});
    check(
        resource("v1", "ConfigMap"),
        std::slice::from_ref(&cm),
        false,
        expect![[r#"
            NAME   DATA   AGE
            cfg    2      60m
        "#]],
    );
    check(
        resource("rbac.authorization.k8s.io/v1", "ClusterRole"),
        std::slice::from_ref(&cm),
        false,
        expect![[r#"
            NAME   CREATED AT
            cfg    2024-01-01T00:00:00Z
        "#]],
    );
    let custom = Resource {
        group: "example.com".into(),
        kind: "Widget".into(),
        ..BUILTIN[0].clone()
    };
    check(
        &custom,
        &[cm],
        false,
        expect![[r#"
            NAME   AGE
            cfg    60m
        "#]],
    );
}

#[test]
fn every_builtin_prints_any_object_without_panicking() {
    let odd = [
        json!(null),
        json!([]),
        json!({"metadata": 5, "spec": "x", "status": {"conditions": 7}}),
        json!({}),
    ];
    let refs: Vec<&Value> = odd.iter().collect();
    for r in BUILTIN {
        let table = to_table(r, &refs, IncludeObject::Object, Value::Null, now());
        let width = table["columnDefinitions"].as_array().map(Vec::len);
        for row in table["rows"].as_array().into_iter().flatten() {
            assert_eq!(
                row["cells"].as_array().map(Vec::len),
                width,
                "{} cells match columns",
                r.kind
            );
        }
    }
}

//! End to end: `flotilla server` with its node agent runs pods as real
//! containers (runc, overlayfs, CNI bridge), reports their status as the
//! kubelet does, and releases everything when they are deleted. Needs root.

mod common;
mod node;

use std::time::Duration;

use node::{Node, log_of, pod};
use serde_json::Value;

const PODS: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {greeting: hello-from-configmap}
---
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: httpd
    image: busybox
    command: ["sh", "-c", "mkdir -p /www && echo ok-from-web > /www/index.html && echo \"$GREETING from $(hostname)\" && exec httpd -f -p 8080 -h /www"]
    env:
    - name: GREETING
      valueFrom: {configMapKeyRef: {name: settings, key: greeting}}
    resources:
      limits: {memory: 64Mi, cpu: 250m}
---
apiVersion: v1
kind: Pod
metadata: {name: fails}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "exit 3"]
"#;

#[test]
fn pods_run_as_real_containers_and_leave_nothing_when_deleted() {
    let node = Node::start("e2e-run", &[]);
    let c = node.cluster();
    c.ok_in(None, &["apply", "-f", "-"], Some(PODS));
    c.ok(&["wait", "--for=condition=Ready", "pod/web", "--timeout=60s"]);

    // Pod and Service ranges are held on this machine before any pod runs.
    let routes = std::process::Command::new("ip")
        .args(["route", "show", "type", "unreachable"])
        .output()
        .unwrap();
    let routes = String::from_utf8_lossy(&routes.stdout);
    assert!(
        routes.contains("10.42.0.0/16") && routes.contains("10.43.0.0/16"),
        "{routes}"
    );

    let web = pod(&node, "web");
    let ip = web["status"]["podIP"].as_str().expect("podIP").to_owned();
    assert!(
        ip.starts_with("10.42."),
        "pod IP {ip} from the node's pod CIDR"
    );
    assert_eq!(web["status"]["hostIP"], "127.0.0.1");
    let status = &web["status"]["containerStatuses"][0];
    assert_eq!(status["ready"], true);
    assert!(
        status["containerID"]
            .as_str()
            .unwrap()
            .starts_with("flotilla://")
    );
    assert!(status["imageID"].as_str().unwrap().contains("sha256:"));

    // The container's output reached its CRI log, with the env from the ConfigMap.
    node.wait_for("the web pod's log line", Duration::from_secs(10), || {
        log_of(&node, &web, "httpd").contains("stdout F hello-from-configmap from web")
    });

    // Its cgroup carries the limits.
    let uid = web["metadata"]["uid"].as_str().unwrap();
    let cid = status["containerID"]
        .as_str()
        .unwrap()
        .trim_start_matches("flotilla://");
    // Limits alone make requests equal to them: a Guaranteed pod, whose
    // cgroup sits right under kubepods.
    assert_eq!(web["status"]["qosClass"], "Guaranteed");
    let cg = format!("flotilla/{}/kubepods/pod{uid}/{cid}", node.name);
    let limit =
        std::fs::read_to_string(format!("/sys/fs/cgroup/memory/{cg}/memory.limit_in_bytes"))
            .expect("the container's memory cgroup (cgroup v1 memory hierarchy)");
    assert_eq!(limit.trim(), (64u64 << 20).to_string());
    let quota = std::fs::read_to_string(format!("/sys/fs/cgroup/cpu/{cg}/cpu.cfs_quota_us"))
        .expect("the container's cpu cgroup");
    assert_eq!(quota.trim(), "25000");

    // Another pod reaches it over the pod network.
    let client = format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"client"}},
            "spec":{{"restartPolicy":"Never","containers":[{{"name":"get","image":"busybox",
            "command":["sh","-c","timeout 10 wget -q -O- http://{ip}:8080/"]}}]}}}}"#
    );
    c.ok_in(None, &["apply", "-f", "-"], Some(&client));
    node.wait_for("the client pod to succeed", Duration::from_secs(60), || {
        pod(&node, "client")["status"]["phase"] == "Succeeded"
    });
    let client_pod = pod(&node, "client");
    assert!(
        log_of(&node, &client_pod, "get").contains("stdout F ok-from-web"),
        "{}",
        log_of(&node, &client_pod, "get")
    );

    // A failing container under restartPolicy Never fails the pod.
    node.wait_for("the failing pod to fail", Duration::from_secs(60), || {
        pod(&node, "fails")["status"]["phase"] == "Failed"
    });
    let fails = pod(&node, "fails");
    let term = &fails["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(term["exitCode"], 3);
    assert_eq!(term["reason"], "Error");

    // Events as the kubelet writes them.
    let events = c.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=web",
        "-o",
        "json",
    ]);
    let events: Value = serde_json::from_str(&events).unwrap();
    let reasons: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["reason"].as_str())
        .collect();
    for r in ["Pulled", "Created", "Started"] {
        assert!(reasons.contains(&r), "event {r} in {reasons:?}");
    }

    // Deleting the pods releases containers, mounts, cgroups and addresses.
    c.ok(&["delete", "pod", "--all", "--timeout=60s"]);
    node.assert_released();
}

const CRASHER: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: crasher}
spec:
  terminationGracePeriodSeconds: 1
  initContainers:
  - name: init
    image: busybox
    command: ["sh", "-c", "echo init-ran > /tmp/x"]
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "echo attempt; exit 2"]
"#;

#[test]
fn a_crashing_container_is_restarted_with_back_off() {
    let node = Node::start("e2e-crash", &[]);
    let c = node.cluster();
    c.ok_in(None, &["apply", "-f", "-"], Some(CRASHER));
    // The first restart is immediate, the next waits 10 s: by then the pod
    // shows CrashLoopBackOff with the last exit.
    node.wait_for("CrashLoopBackOff", Duration::from_secs(60), || {
        pod(&node, "crasher")["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
            == "CrashLoopBackOff"
    });
    let p = pod(&node, "crasher");
    let s = &p["status"]["containerStatuses"][0];
    assert!(s["restartCount"].as_u64().unwrap() >= 1, "{s}");
    assert_eq!(s["lastState"]["terminated"]["exitCode"], 2);
    assert_eq!(p["status"]["phase"], "Running");
    assert_eq!(
        p["status"]["initContainerStatuses"][0]["state"]["terminated"]["reason"],
        "Completed"
    );
    let events = c.ok(&[
        "get",
        "events",
        "--field-selector",
        "reason=BackOff",
        "-o",
        "name",
    ]);
    assert!(!events.trim().is_empty(), "a BackOff event");
}

#[test]
fn a_restarted_agent_adopts_running_containers() {
    let mut node = Node::start("e2e-adopt", &[]);
    node.cluster()
        .ok_in(None, &["apply", "-f", "-"], Some(PODS));
    node.cluster()
        .ok(&["wait", "--for=condition=Ready", "pod/web", "--timeout=60s"]);
    let before = pod(&node, "web")["status"]["containerStatuses"][0].clone();

    node.restart();
    node.cluster().ok(&[
        "wait",
        "--for=condition=Ready",
        &format!("node/{}", node.name),
        "--timeout=60s",
    ]);
    // The same container keeps running: same ID, no restart.
    let after = pod(&node, "web")["status"]["containerStatuses"][0].clone();
    assert_eq!(after["containerID"], before["containerID"]);
    assert_eq!(after["restartCount"], 0);
    assert_eq!(after["ready"], true);
    assert_eq!(
        node.oci_containers().len(),
        2,
        "web and the exited `fails` container"
    );
    // And is still released on deletion.
    node.cluster()
        .ok(&["delete", "pod", "--all", "--timeout=60s"]);
    assert!(
        node.oci_containers().is_empty(),
        "{:?}",
        node.oci_containers()
    );
    assert!(node.mounts().is_empty(), "{:?}", node.mounts());
}

#[test]
fn a_hundred_pods_created_and_deleted_leave_nothing_behind() {
    let node = Node::start("e2e-cycles", &[]);
    let c = node.cluster();
    for round in 0..10 {
        let mut manifest = String::new();
        for i in 0..10 {
            manifest.push_str(&format!(
                "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: p{round}-{i}, labels: {{cycle: \"yes\"}}}}\n\
                 spec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: busybox\n    \
                 command: [\"sleep\", \"3600\"]\n"
            ));
        }
        c.ok_in(None, &["apply", "-f", "-"], Some(&manifest));
        c.ok(&[
            "wait",
            "--for=condition=Ready",
            "pod",
            "-l",
            "cycle=yes",
            "--timeout=120s",
        ]);
        c.ok(&["delete", "pod", "-l", "cycle=yes", "--timeout=120s"]);
    }
    node.assert_released();
}

#[test]
fn volumes_reach_the_containers_and_go_away_with_the_pod() {
    let node = Node::start("e2e-vol", &[]);
    let c = node.cluster();
    let host_dir = node.data.join("host-data");
    let manifest = format!(
        r#"
apiVersion: v1
kind: ConfigMap
metadata: {{name: cfg}}
data: {{app.conf: "mode=fast"}}
---
apiVersion: v1
kind: Secret
metadata: {{name: creds}}
stringData: {{password: s3cret}}
---
apiVersion: v1
kind: Pod
metadata: {{name: vols, labels: {{app: vols}}}}
spec:
  terminationGracePeriodSeconds: 1
  initContainers:
  - name: seed
    image: busybox
    command: ["sh", "-c", "echo seeded > /shared/seed && echo on-host > /host/file"]
    volumeMounts:
    - {{name: shared, mountPath: /shared}}
    - {{name: host, mountPath: /host}}
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "cat /shared/seed /etc/cfg/app.conf /etc/creds/password /etc/info/labels /etc/sub/app.conf; echo; grep -c . /var/run/token/token; while true; do echo \"conf $(cat /etc/cfg/app.conf)\"; sleep 0.5; done"]
    volumeMounts:
    - {{name: shared, mountPath: /shared}}
    - {{name: cfg, mountPath: /etc/cfg, readOnly: true}}
    - {{name: creds, mountPath: /etc/creds, readOnly: true}}
    - {{name: info, mountPath: /etc/info}}
    - {{name: cfg, mountPath: /etc/sub/app.conf, subPath: app.conf}}
    - {{name: token, mountPath: /var/run/token}}
    - {{name: mem, mountPath: /scratch}}
  volumes:
  - {{name: shared, emptyDir: {{}}}}
  - {{name: mem, emptyDir: {{medium: Memory, sizeLimit: 8Mi}}}}
  - {{name: host, hostPath: {{path: {host}, type: DirectoryOrCreate}}}}
  - {{name: cfg, configMap: {{name: cfg}}}}
  - {{name: creds, secret: {{secretName: creds}}}}
  - name: info
    downwardAPI:
      items: [{{path: labels, fieldRef: {{fieldPath: metadata.labels}}}}]
  - name: token
    projected:
      sources: [{{serviceAccountToken: {{path: token, expirationSeconds: 3600}}}}]
"#,
        host = host_dir.display()
    );
    c.ok_in(None, &["apply", "-f", "-"], Some(&manifest));
    c.ok(&["wait", "--for=condition=Ready", "pod/vols", "--timeout=60s"]);
    let p = pod(&node, "vols");
    node.wait_for(
        "the volumes' contents in the log",
        Duration::from_secs(10),
        || {
            let log = log_of(&node, &p, "main");
            log.contains("stdout F seeded")
                && log.contains("stdout F mode=fast")
                && log.contains("s3cret")
                && log.contains("app=\"vols\"")
                && log.contains("stdout F 1")
        },
    );
    assert_eq!(
        std::fs::read_to_string(host_dir.join("file")).unwrap(),
        "on-host\n"
    );
    let uid = p["metadata"]["uid"].as_str().unwrap();
    let tmpfs: Vec<_> = node
        .mounts()
        .into_iter()
        .filter(|m| m.to_string_lossy().contains(uid))
        .collect();
    assert_eq!(
        tmpfs.len(),
        3,
        "secret, projected and memory emptyDir on tmpfs: {tmpfs:?}"
    );

    c.ok(&["delete", "pod", "vols", "--timeout=60s"]);
    assert!(node.mounts().is_empty(), "mounts left: {:?}", node.mounts());
    assert!(
        !node.data.join("agent/pods").join(uid).exists(),
        "pod dir removed"
    );
    assert!(host_dir.join("file").exists(), "hostPath data stays");
}

const PROBED: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: healthy}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: busybox
    command: ["sh", "-c", "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www"]
    ports: [{name: http, containerPort: 8080}]
    readinessProbe: {httpGet: {path: /index.html, port: http}, periodSeconds: 1}
    livenessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Pod
metadata: {name: never-ready}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: busybox
    command: ["sleep", "3600"]
    readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Pod
metadata: {name: unhealthy}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: busybox
    command: ["sleep", "3600"]
    livenessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1, failureThreshold: 2}
"#;

#[test]
fn probes_gate_readiness_and_restart_unhealthy_containers() {
    let node = Node::start("e2e-probe", &[]);
    let c = node.cluster();
    c.ok_in(None, &["apply", "-f", "-"], Some(PROBED));
    c.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/healthy",
        "--timeout=60s",
    ]);
    node.wait_for(
        "the unhealthy container to be restarted",
        Duration::from_secs(60),
        || {
            pod(&node, "unhealthy")["status"]["containerStatuses"][0]["restartCount"]
                .as_u64()
                .is_some_and(|n| n >= 1)
        },
    );
    let never = pod(&node, "never-ready");
    assert_eq!(never["status"]["phase"], "Running");
    assert_eq!(never["status"]["containerStatuses"][0]["ready"], false);
    assert_eq!(never["status"]["containerStatuses"][0]["started"], true);
    let ready = never["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap()
        .clone();
    assert_eq!(ready["status"], "False", "{ready}");
    let healthy = pod(&node, "healthy");
    assert_eq!(healthy["status"]["containerStatuses"][0]["restartCount"], 0);
    let events = c.ok(&["get", "events", "-o", "json"]);
    let events: Value = serde_json::from_str(&events).unwrap();
    let has = |reason: &str, obj: &str, text: &str| {
        events["items"].as_array().unwrap().iter().any(|e| {
            e["reason"] == reason
                && e["involvedObject"]["name"] == obj
                && e["message"].as_str().unwrap_or_default().contains(text)
        })
    };
    assert!(
        has("Unhealthy", "unhealthy", "Liveness probe failed"),
        "{events}"
    );
    assert!(
        has("Killing", "unhealthy", "failed liveness probe"),
        "{events}"
    );
    assert!(
        has("Unhealthy", "never-ready", "Readiness probe failed"),
        "{events}"
    );
}

#[test]
fn hooks_deadlines_and_sidecars() {
    let node = Node::start("e2e-life", &[]);
    let c = node.cluster();
    let recorder = r#"
apiVersion: v1
kind: Pod
metadata: {name: recorder}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: httpd
    image: busybox
    command: ["sh", "-c", "mkdir -p /www && echo ok > /www/prestop && exec httpd -f -vv -p 8080 -h /www"]
"#;
    c.ok_in(None, &["apply", "-f", "-"], Some(recorder));
    c.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/recorder",
        "--timeout=60s",
    ]);
    let recorder_ip = pod(&node, "recorder")["status"]["podIP"]
        .as_str()
        .unwrap()
        .to_owned();
    let pods = format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: hooked}}
spec:
  terminationGracePeriodSeconds: 5
  containers:
  - name: main
    image: busybox
    command: ["sleep", "3600"]
    lifecycle:
      postStart: {{sleep: {{seconds: 1}}}}
      preStop: {{httpGet: {{host: "{recorder_ip}", port: 8080, path: /prestop}}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: deadline}}
spec:
  terminationGracePeriodSeconds: 1
  activeDeadlineSeconds: 3
  containers:
  - {{name: main, image: busybox, command: ["sleep", "3600"]}}
---
apiVersion: v1
kind: Pod
metadata: {{name: sidecar}}
spec:
  terminationGracePeriodSeconds: 1
  initContainers:
  - name: helper
    image: busybox
    restartPolicy: Always
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
    lifecycle:
      preStop: {{httpGet: {{host: "{recorder_ip}", port: 8080, path: /prestop-sidecar}}}}
  - {{name: setup, image: busybox, command: ["true"]}}
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
    lifecycle:
      preStop: {{httpGet: {{host: "{recorder_ip}", port: 8080, path: /prestop-main}}}}
"#
    );
    c.ok_in(None, &["apply", "-f", "-"], Some(&pods));
    c.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/hooked",
        "pod/sidecar",
        "--timeout=60s",
    ]);
    let sidecar = pod(&node, "sidecar");
    let inits = &sidecar["status"]["initContainerStatuses"];
    assert!(inits[0]["state"]["running"].is_object(), "{inits}");
    assert_eq!(inits[1]["state"]["terminated"]["exitCode"], 0, "{inits}");

    node.wait_for(
        "the deadline to fail the pod",
        Duration::from_secs(30),
        || pod(&node, "deadline")["status"]["phase"] == "Failed",
    );
    assert_eq!(
        pod(&node, "deadline")["status"]["reason"],
        "DeadlineExceeded"
    );

    let rec = pod(&node, "recorder");
    c.ok(&["delete", "pod", "hooked", "--timeout=60s"]);
    node.wait_for(
        "the preStop request at the recorder",
        Duration::from_secs(10),
        || log_of(&node, &rec, "httpd").contains("/prestop"),
    );

    // A pod with a sidecar stops its containers first, then the sidecar.
    c.ok(&["delete", "pod", "sidecar", "--timeout=60s"]);
    let log = log_of(&node, &rec, "httpd");
    let (main, side) = (log.find("/prestop-main"), log.find("/prestop-sidecar"));
    assert!(
        main.is_some() && side.is_some() && main < side,
        "preStop of main before the sidecar's: {log}"
    );
}

#[test]
fn memory_pressure_evicts_best_effort_pods_first() {
    // A threshold no machine meets: the node is under memory pressure at once.
    let node = Node::start("e2e-evict", &["--eviction-hard", "memory.available<100Ti"]);
    let c = node.cluster();
    let pods = r#"
apiVersion: v1
kind: Pod
metadata: {name: burstable}
spec:
  terminationGracePeriodSeconds: 1
  # The node is tainted for its memory pressure; these pods come anyway.
  tolerations: [{key: node.kubernetes.io/memory-pressure, operator: Exists, effect: NoSchedule}]
  containers:
  - name: c
    image: busybox
    command: ["sleep", "3600"]
    # No memory request: allocatable memory is nil under this threshold.
    resources: {requests: {cpu: 100m}}
---
apiVersion: v1
kind: Pod
metadata: {name: best-effort}
spec:
  terminationGracePeriodSeconds: 1
  # The node is tainted for its memory pressure; these pods come anyway.
  tolerations: [{key: node.kubernetes.io/memory-pressure, operator: Exists, effect: NoSchedule}]
  containers:
  - {name: c, image: busybox, command: ["sleep", "3600"]}
"#;
    c.ok_in(None, &["apply", "-f", "-"], Some(pods));
    c.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/burstable",
        "--timeout=60s",
    ]);
    node.wait_for(
        "the best-effort pod's eviction",
        Duration::from_secs(60),
        || pod(&node, "best-effort")["status"]["reason"] == "Evicted",
    );
    let evicted = pod(&node, "best-effort");
    assert_eq!(evicted["status"]["phase"], "Failed");
    assert!(
        evicted["status"]["message"]
            .as_str()
            .unwrap()
            .contains("low on resource: memory"),
        "{}",
        evicted["status"]
    );
    let b = pod(&node, "burstable");
    assert_eq!(
        b["status"]["phase"], "Running",
        "the Burstable pod goes later: {}",
        b["status"]
    );
    let node_json: Value =
        serde_json::from_str(&c.ok(&["get", "node", &node.name, "-o", "json"])).unwrap();
    let pressure = node_json["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "MemoryPressure")
        .unwrap()
        .clone();
    assert_eq!(pressure["status"], "True");
    // And the node controller keeps new pods without a toleration away.
    node.wait_for("the memory-pressure taint", Duration::from_secs(30), || {
        let n: Value =
            serde_json::from_str(&c.ok(&["get", "node", &node.name, "-o", "json"])).unwrap();
        n["spec"]["taints"].as_array().is_some_and(|ts| {
            ts.iter().any(|t| {
                t["key"] == "node.kubernetes.io/memory-pressure" && t["effect"] == "NoSchedule"
            })
        })
    });
}

/// `GET /` on `addr`, the body; empty when nothing answers.
fn http_get(addr: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) =
        std::net::TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(2))
    else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = write!(s, "GET / HTTP/1.0\r\nHost: x\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn host_network_and_host_ports_reach_the_node() {
    let node = Node::start("e2e-hostnet", &[]);
    let c = node.cluster();
    let pods = r#"
apiVersion: v1
kind: Pod
metadata: {name: on-host}
spec:
  terminationGracePeriodSeconds: 1
  hostNetwork: true
  containers:
  - name: web
    image: busybox
    command: ["sh", "-c", "mkdir -p /www && echo host-network > /www/index.html && exec httpd -f -p 18080 -h /www"]
---
apiVersion: v1
kind: Pod
metadata: {name: host-port}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: busybox
    command: ["sh", "-c", "mkdir -p /www && echo host-port > /www/index.html && exec httpd -f -p 8080 -h /www"]
    ports: [{containerPort: 8080, hostPort: 18081}]
"#;
    c.ok_in(None, &["apply", "-f", "-"], Some(pods));
    c.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/on-host",
        "pod/host-port",
        "--timeout=60s",
    ]);
    let on_host = pod(&node, "on-host");
    assert_eq!(
        on_host["status"]["podIP"], "127.0.0.1",
        "a host-network pod has the node's IP"
    );
    node.wait_for(
        "the host-network pod on the node's port",
        Duration::from_secs(10),
        || http_get("127.0.0.1:18080").contains("host-network"),
    );
    let pod_ip = pod(&node, "host-port")["status"]["podIP"]
        .as_str()
        .unwrap()
        .to_owned();
    // The hostPort is mapped on the node's addresses; the pod network's
    // gateway address is one of them.
    let gateway = format!("{}.1", pod_ip.rsplit_once('.').unwrap().0);
    node.wait_for("the hostPort on the node", Duration::from_secs(10), || {
        http_get(&format!("{gateway}:18081")).contains("host-port")
    });
    c.ok(&["delete", "pod", "--all", "--timeout=60s"]);
    node.assert_released();
}

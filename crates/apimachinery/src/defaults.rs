//! Defaulting as Kubernetes' `SetDefaults_*` functions (and the few admission and
//! registry steps every cluster runs) fill in omitted fields.

use serde_json::{Map, Value, json};

use crate::json::{array_ptr, bool_at, bool_ptr, meta, object_at, str_at, str_opt};
use crate::quantity::Quantity;

/// Fills in the defaults of a built-in kind. Unknown kinds and malformed parts are left alone.
pub fn apply_defaults(api_version: &str, kind: &str, obj: &mut Value) {
    if !obj.is_object() {
        return;
    }
    match (api_version, kind) {
        ("v1", "Pod") => {
            if let Some(spec) = obj_at(obj, &["spec"]) {
                pod_spec(spec);
                pod_only(spec);
            }
        }
        ("v1", "PodTemplate") => template_at(obj, &["template"]),
        ("v1", "ReplicationController") => {
            if let Some(spec) = obj_at(obj, &["spec"]) {
                set(spec, "replicas", json!(1));
            }
            template_at(obj, &["spec", "template"]);
        }
        ("v1", "Service") => service(obj),
        ("v1", "Namespace") => namespace(obj),
        ("v1", "Secret") => {
            if let Some(m) = obj.as_object_mut() {
                set(m, "type", json!("Opaque"));
            }
        }
        ("v1", "Node") => node(obj),
        ("v1", "PersistentVolumeClaim") => {
            if let Some(spec) = obj_at(obj, &["spec"]) {
                set(spec, "volumeMode", json!("Filesystem"));
            }
            if let Some(status) = obj_at(obj, &["status"]) {
                set(status, "phase", json!("Pending"));
            }
        }
        ("v1", "PersistentVolume") => {
            if let Some(spec) = obj_at(obj, &["spec"]) {
                set(spec, "persistentVolumeReclaimPolicy", json!("Retain"));
                set(spec, "volumeMode", json!("Filesystem"));
            }
            if let Some(status) = obj_at(obj, &["status"]) {
                set(status, "phase", json!("Pending"));
            }
        }
        ("apps/v1", "Deployment") => deployment(obj),
        ("apps/v1", "ReplicaSet") => {
            if let Some(spec) = obj_at(obj, &["spec"]) {
                set(spec, "replicas", json!(1));
            }
            template_at(obj, &["spec", "template"]);
        }
        ("apps/v1", "StatefulSet") => stateful_set(obj),
        ("apps/v1", "DaemonSet") => daemon_set(obj),
        ("batch/v1", "Job") => job(obj),
        ("batch/v1", "CronJob") => cron_job(obj),
        _ => {}
    }
}

/// The object map at a path, creating missing objects on the way; `None` if a
/// value of another type is in the way.
fn obj_at<'a>(v: &'a mut Value, path: &[&str]) -> Option<&'a mut Map<String, Value>> {
    let mut cur = v;
    for key in path {
        let m = cur.as_object_mut()?;
        let next = m.entry(key.to_string()).or_insert_with(|| json!({}));
        if next.is_null() {
            *next = json!({});
        }
        cur = next;
    }
    cur.as_object_mut()
}

/// The object map at a path only if it already exists.
fn existing<'a>(v: &'a mut Value, path: &[&str]) -> Option<&'a mut Map<String, Value>> {
    let mut cur = v;
    for key in path {
        cur = cur.get_mut(*key)?;
    }
    cur.as_object_mut()
}

/// The object under `key`, created when absent or `null`; `None` if it has another type.
fn child_obj<'a>(m: &'a mut Map<String, Value>, key: &str) -> Option<&'a mut Map<String, Value>> {
    let v = m.entry(key.to_string()).or_insert(Value::Null);
    if v.is_null() {
        *v = json!({});
    }
    v.as_object_mut()
}

/// Sets `key` when absent, `null` or the empty string.
fn set(m: &mut Map<String, Value>, key: &str, value: Value) {
    let missing = match m.get(key) {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        _ => false,
    };
    if missing {
        m.insert(key.to_string(), value);
    }
}

fn each_in<'a>(
    m: &'a mut Map<String, Value>,
    key: &str,
) -> impl Iterator<Item = &'a mut Map<String, Value>> {
    m.get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
}

fn template_at(obj: &mut Value, path: &[&str]) {
    let mut spec_path = path.to_vec();
    spec_path.push("spec");
    if existing(obj, path).is_some()
        && let Some(spec) = obj_at(obj, &spec_path)
    {
        pod_spec(spec);
    }
}

/// `SetDefaults_PodSpec` and everything under a pod spec; applies to templates too.
fn pod_spec(spec: &mut Map<String, Value>) {
    set(spec, "dnsPolicy", json!("ClusterFirst"));
    set(spec, "restartPolicy", json!("Always"));
    set(spec, "securityContext", json!({}));
    set(spec, "terminationGracePeriodSeconds", json!(30));
    set(spec, "schedulerName", json!("default-scheduler"));
    for key in ["containers", "initContainers", "ephemeralContainers"] {
        for c in each_in(spec, key) {
            container(c);
        }
    }
    for v in each_in(spec, "volumes") {
        volume(v);
    }
}

fn container(c: &mut Map<String, Value>) {
    let image = str_at(c, "image");
    let policy = if image_tag(image).is_none_or(|t| t == "latest") {
        "Always"
    } else {
        "IfNotPresent"
    };
    set(c, "imagePullPolicy", json!(policy));
    set(c, "terminationMessagePath", json!("/dev/termination-log"));
    set(c, "terminationMessagePolicy", json!("File"));
    set(c, "resources", json!({}));
    for p in each_in(c, "ports") {
        set(p, "protocol", json!("TCP"));
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(probe).and_then(Value::as_object_mut) {
            for (k, v) in [
                ("timeoutSeconds", 1),
                ("periodSeconds", 10),
                ("successThreshold", 1),
                ("failureThreshold", 3),
            ] {
                if p.get(k).is_none_or(|x| x.is_null() || x == 0) {
                    p.insert(k.to_string(), json!(v));
                }
            }
            if let Some(h) = p.get_mut("httpGet").and_then(Value::as_object_mut) {
                set(h, "path", json!("/"));
                set(h, "scheme", json!("HTTP"));
            }
        }
    }
    for e in each_in(c, "env") {
        if let Some(f) = e
            .get_mut("valueFrom")
            .and_then(|v| v.get_mut("fieldRef"))
            .and_then(Value::as_object_mut)
        {
            set(f, "apiVersion", json!("v1"));
        }
    }
    if let Some(res) = c.get_mut("resources").and_then(Value::as_object_mut) {
        for key in ["limits", "requests"] {
            if let Some(list) = res.get_mut(key).and_then(Value::as_object_mut) {
                canonical_quantities(list);
            }
        }
    }
}

/// Quantities are stored rounded up to milli-units and in canonical form.
fn canonical_quantities(list: &mut Map<String, Value>) {
    for v in list.values_mut() {
        if let Some(q) = v.as_str().and_then(|s| Quantity::parse(s).ok()) {
            let milli = Quantity::from_milli(q.milli_value(), q.format());
            *v = json!(milli.to_canonical_string());
        } else if let Some(n) = v.as_i64() {
            *v = json!(n.to_string());
        }
    }
}

/// The tag of an image reference, if it has one (a digest counts as none).
fn image_tag(image: &str) -> Option<&str> {
    let without_digest = image.split('@').next().unwrap_or_default();
    let last = without_digest.rsplit('/').next().unwrap_or_default();
    if image.contains('@') && !last.contains(':') {
        return Some("");
    }
    last.split_once(':').map(|(_, tag)| tag)
}

fn volume(v: &mut Map<String, Value>) {
    if v.keys().all(|k| k == "name") {
        v.insert("emptyDir".into(), json!({}));
    }
    for source in ["secret", "configMap", "downwardAPI", "projected"] {
        if let Some(s) = v.get_mut(source).and_then(Value::as_object_mut) {
            set(s, "defaultMode", json!(420));
        }
    }
    if let Some(h) = v.get_mut("hostPath").and_then(Value::as_object_mut)
        && h.get("type").is_none_or(Value::is_null)
    {
        h.insert("type".into(), json!(""));
    }
    if let Some(sources) = v
        .get_mut("projected")
        .and_then(|p| p.get_mut("sources"))
        .and_then(Value::as_array_mut)
    {
        for s in sources {
            if let Some(t) = s
                .get_mut("serviceAccountToken")
                .and_then(Value::as_object_mut)
            {
                set(t, "expirationSeconds", json!(3600));
            }
        }
    }
}

/// Defaults only a Pod gets, not a template: `SetDefaults_Pod` and the priority admission step.
fn pod_only(spec: &mut Map<String, Value>) {
    set(spec, "enableServiceLinks", json!(true));
    set(spec, "priority", json!(0));
    set(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
    let host_network = bool_at(spec, "hostNetwork");
    for key in ["containers", "initContainers"] {
        for c in each_in(spec, key) {
            if let Some(res) = c.get_mut("resources").and_then(Value::as_object_mut)
                && let Some(limits) = object_at(res, "limits").cloned()
                && let Some(requests) = child_obj(res, "requests")
            {
                for (k, v) in limits {
                    requests.entry(k).or_insert(v);
                }
            }
            if host_network {
                for p in each_in(c, "ports") {
                    if p.get("hostPort").is_none_or(|h| h.is_null() || h == 0) {
                        let port = p.get("containerPort").cloned().unwrap_or(Value::Null);
                        p.insert("hostPort".into(), port);
                    }
                }
            }
        }
    }
}

/// The tolerations the `DefaultTolerationSeconds` admission step adds to pods:
/// not-ready and unreachable nodes are tolerated for 300 seconds.
pub fn default_tolerations(obj: &mut Value) {
    let Some(spec) = existing(obj, &["spec"]) else {
        return;
    };
    let tolerations = spec.entry("tolerations").or_insert_with(|| json!([]));
    if tolerations.is_null() {
        *tolerations = json!([]);
    }
    let Some(list) = tolerations.as_array_mut() else {
        return;
    };
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ] {
        let tolerated = list.iter().any(|t| {
            let op = str_opt(t, "operator").unwrap_or("Equal");
            let k = str_at(t, "key");
            let effect = str_at(t, "effect");
            (k == key || (k.is_empty() && op == "Exists"))
                && (effect.is_empty() || effect == "NoExecute")
        });
        if !tolerated {
            list.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
        }
    }
}

fn service(obj: &mut Value) {
    let Some(spec) = obj_at(obj, &["spec"]) else {
        return;
    };
    set(spec, "type", json!("ClusterIP"));
    set(spec, "sessionAffinity", json!("None"));
    let ty = str_at(spec, "type").to_string();
    match str_opt(spec, "sessionAffinity") {
        Some("None") => {
            spec.remove("sessionAffinityConfig");
        }
        Some("ClientIP") => {
            let timeout = spec
                .get("sessionAffinityConfig")
                .and_then(|c| c.pointer("/clientIP/timeoutSeconds"))
                .cloned();
            if timeout.is_none_or(|t| t.is_null()) {
                spec.insert(
                    "sessionAffinityConfig".into(),
                    json!({"clientIP": {"timeoutSeconds": 10800}}),
                );
            }
        }
        _ => {}
    }
    for p in each_in(spec, "ports") {
        set(p, "protocol", json!("TCP"));
        let unset = p
            .get("targetPort")
            .is_none_or(|t| t.is_null() || t == 0 || t == "");
        if unset && let Some(port) = p.get("port").cloned() {
            p.insert("targetPort".into(), port);
        }
    }
    if matches!(ty.as_str(), "NodePort" | "LoadBalancer") {
        set(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if matches!(ty.as_str(), "NodePort" | "LoadBalancer" | "ClusterIP") {
        set(spec, "internalTrafficPolicy", json!("Cluster"));
        set(spec, "ipFamilyPolicy", json!("SingleStack"));
        if spec
            .get("ipFamilies")
            .is_none_or(|f| f.as_array().is_none_or(Vec::is_empty))
        {
            spec.insert("ipFamilies".into(), json!(["IPv4"]));
        }
    }
    if ty == "LoadBalancer" {
        set(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
}

/// Copies what the server allocated for a Service (cluster IPs, node ports) into
/// an update that omitted them, as Kubernetes' service registry does.
pub fn carry_over_service_allocations(new: &mut Value, old: &Value) {
    let Some(spec) = existing(new, &["spec"]) else {
        return;
    };
    let same_type = spec.get("type") == old.pointer("/spec/type") || spec.get("type").is_none();
    if !same_type {
        return;
    }
    for key in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
        if spec
            .get(key)
            .is_none_or(|v| v.is_null() || v == "" || v.as_array().is_some_and(Vec::is_empty))
            && let Some(v) = old.pointer(&format!("/spec/{key}"))
        {
            spec.insert(key.to_string(), v.clone());
        }
    }
    let old_ports = array_ptr(old, "/spec/ports").to_vec();
    for p in each_in(spec, "ports") {
        if p.get("nodePort").is_some_and(|n| !n.is_null() && n != 0) {
            continue;
        }
        let matching = old_ports
            .iter()
            .find(|o| o.get("port") == p.get("port") && o.get("protocol") == p.get("protocol"));
        if let Some(np) = matching.and_then(|o| o.get("nodePort")) {
            p.insert("nodePort".into(), np.clone());
        }
    }
}

fn namespace(obj: &mut Value) {
    let name = meta::name(obj).to_string();
    if !name.is_empty()
        && let Some(labels) = obj_at(obj, &["metadata", "labels"])
    {
        labels.insert("kubernetes.io/metadata.name".into(), json!(name));
    }
    if let Some(spec) = obj_at(obj, &["spec"]) {
        set(spec, "finalizers", json!(["kubernetes"]));
    }
    if let Some(status) = obj_at(obj, &["status"]) {
        set(status, "phase", json!("Active"));
    }
}

fn node(obj: &mut Value) {
    let Some(status) = existing(obj, &["status"]) else {
        return;
    };
    if status.get("allocatable").is_none_or(Value::is_null)
        && let Some(capacity) = status.get("capacity").filter(|c| c.is_object()).cloned()
    {
        status.insert("allocatable".into(), capacity);
    }
}

fn deployment(obj: &mut Value) {
    if let Some(spec) = obj_at(obj, &["spec"]) {
        set(spec, "replicas", json!(1));
        set(spec, "revisionHistoryLimit", json!(10));
        set(spec, "progressDeadlineSeconds", json!(600));
        if let Some(strategy) = child_obj(spec, "strategy") {
            set(strategy, "type", json!("RollingUpdate"));
            if str_at(strategy, "type") == "RollingUpdate"
                && let Some(ru) = child_obj(strategy, "rollingUpdate")
            {
                set(ru, "maxUnavailable", json!("25%"));
                set(ru, "maxSurge", json!("25%"));
            }
        }
    }
    template_at(obj, &["spec", "template"]);
}

fn stateful_set(obj: &mut Value) {
    if let Some(spec) = obj_at(obj, &["spec"]) {
        set(spec, "replicas", json!(1));
        set(spec, "podManagementPolicy", json!("OrderedReady"));
        set(spec, "revisionHistoryLimit", json!(10));
        if let Some(us) = child_obj(spec, "updateStrategy") {
            set(us, "type", json!("RollingUpdate"));
            if str_at(us, "type") == "RollingUpdate"
                && let Some(ru) = child_obj(us, "rollingUpdate")
            {
                set(ru, "partition", json!(0));
            }
        }
        if let Some(policy) = child_obj(spec, "persistentVolumeClaimRetentionPolicy") {
            set(policy, "whenDeleted", json!("Retain"));
            set(policy, "whenScaled", json!("Retain"));
        }
        for pvc in each_in(spec, "volumeClaimTemplates") {
            if let Some(s) = pvc.get_mut("spec").and_then(Value::as_object_mut) {
                set(s, "volumeMode", json!("Filesystem"));
            }
            if let Some(status) = child_obj(pvc, "status") {
                set(status, "phase", json!("Pending"));
            }
        }
    }
    template_at(obj, &["spec", "template"]);
}

fn daemon_set(obj: &mut Value) {
    if let Some(spec) = obj_at(obj, &["spec"]) {
        set(spec, "revisionHistoryLimit", json!(10));
        if let Some(us) = child_obj(spec, "updateStrategy") {
            set(us, "type", json!("RollingUpdate"));
            if str_at(us, "type") == "RollingUpdate"
                && let Some(ru) = child_obj(us, "rollingUpdate")
            {
                set(ru, "maxUnavailable", json!(1));
                set(ru, "maxSurge", json!(0));
            }
        }
    }
    template_at(obj, &["spec", "template"]);
}

fn job(obj: &mut Value) {
    let template_labels = obj
        .pointer("/spec/template/metadata/labels")
        .filter(|l| l.is_object())
        .cloned();
    if let Some(spec) = obj_at(obj, &["spec"]) {
        let unset = |m: &Map<String, Value>, k: &str| m.get(k).is_none_or(Value::is_null);
        if unset(spec, "completions") && unset(spec, "parallelism") {
            spec.insert("completions".into(), json!(1));
        }
        set(spec, "parallelism", json!(1));
        let backoff = if unset(spec, "backoffLimitPerIndex") {
            6
        } else {
            i64::from(i32::MAX)
        };
        set(spec, "backoffLimit", json!(backoff));
        set(spec, "completionMode", json!("NonIndexed"));
        set(spec, "suspend", json!(false));
        let replacement = if unset(spec, "podFailurePolicy") {
            "TerminatingOrFailed"
        } else {
            "Failed"
        };
        set(spec, "podReplacementPolicy", json!(replacement));
        set(spec, "manualSelector", json!(false));
    }
    if let Some(labels) = template_labels
        && let Some(meta) = obj_at(obj, &["metadata"])
        && meta
            .get("labels")
            .is_none_or(|l| l.as_object().is_none_or(Map::is_empty))
    {
        meta.insert("labels".into(), labels);
    }
    template_at(obj, &["spec", "template"]);
}

/// What the Job registry sets at create: unless `manualSelector` is true, a
/// selector on the job's uid and the matching labels on its pod template.
pub fn job_selector_and_labels(obj: &mut Value, uid: &str) {
    if bool_ptr(obj, "/spec/manualSelector") {
        return;
    }
    let name = meta::name(obj).to_string();
    if let Some(spec) = obj_at(obj, &["spec"]) {
        spec.insert(
            "selector".into(),
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}),
        );
    }
    if let Some(labels) = obj_at(obj, &["spec", "template", "metadata", "labels"]) {
        for (k, v) in [
            ("batch.kubernetes.io/controller-uid", uid),
            ("batch.kubernetes.io/job-name", name.as_str()),
            ("controller-uid", uid),
            ("job-name", name.as_str()),
        ] {
            labels.insert(k.into(), json!(v));
        }
    }
}

fn cron_job(obj: &mut Value) {
    if let Some(spec) = obj_at(obj, &["spec"]) {
        set(spec, "concurrencyPolicy", json!("Allow"));
        set(spec, "suspend", json!(false));
        set(spec, "successfulJobsHistoryLimit", json!(3));
        set(spec, "failedJobsHistoryLimit", json!(1));
    }
    template_at(obj, &["spec", "jobTemplate", "spec", "template"]);
}

#[cfg(test)]
#[path = "defaults_tests.rs"]
mod tests;

//! Pod specs, wherever they appear: pods, and the templates of workloads.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::json::{check_enum, check_min, push_all};
use super::meta::validate_labels;
use super::{
    FieldError, Path, is_dns1123_label, is_dns1123_subdomain, is_env_var_name, is_qualified_name,
};
use super::{is_valid_port_name, is_valid_port_num};
use crate::json::{array_at, child, i64_at, object_at, str_at, str_opt, str_ptr};
use crate::quantity::Quantity;

const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];
const DNS_POLICIES: &[&str] = &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];
const PULL_POLICIES: &[&str] = &["Always", "IfNotPresent", "Never"];
const TERMINATION_MESSAGE_POLICIES: &[&str] = &["File", "FallbackToLogsOnError"];
const TAINT_EFFECTS: &[&str] = &["NoSchedule", "PreferNoSchedule", "NoExecute"];
const STANDARD_RESOURCES: &[&str] = &["cpu", "memory", "ephemeral-storage", "storage"];
const OS_NAMES: &[&str] = &["linux", "windows"];

/// Validates a pod spec found at `path` (e.g. `spec` or `spec.template.spec`).
pub fn validate_pod_spec(spec: &Value, path: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if !spec.is_object() {
        errs.push(FieldError::required(path, ""));
        return errs;
    }
    let volumes = validate_volumes(array_at(spec, "volumes"), &path.child("volumes"), &mut errs);
    let containers = array_at(spec, "containers");
    if containers.is_empty() {
        errs.push(FieldError::required(path.child("containers"), ""));
    }
    let mut names = BTreeSet::new();
    for (key, list) in [
        ("initContainers", array_at(spec, "initContainers")),
        ("containers", containers),
    ] {
        for (i, c) in list.iter().enumerate() {
            validate_container(
                c,
                &path.child(key).index(i),
                &volumes,
                &mut names,
                &mut errs,
            );
        }
    }
    for (i, c) in array_at(spec, "ephemeralContainers").iter().enumerate() {
        validate_container(
            c,
            &path.child("ephemeralContainers").index(i),
            &volumes,
            &mut names,
            &mut errs,
        );
    }
    check_enum(&mut errs, path, spec, "restartPolicy", RESTART_POLICIES);
    check_enum(&mut errs, path, spec, "dnsPolicy", DNS_POLICIES);
    if let Some(n) =
        i64_at(spec, "activeDeadlineSeconds").filter(|n| !(1..=i64::from(i32::MAX)).contains(n))
    {
        errs.push(FieldError::invalid(
            path.child("activeDeadlineSeconds"),
            n,
            "must be between 1 and 2147483647, inclusive",
        ));
    }
    check_min(&mut errs, path, spec, "terminationGracePeriodSeconds", 0);
    errs.extend(validate_labels(
        spec.get("nodeSelector"),
        &path.child("nodeSelector"),
    ));
    for key in ["hostname", "subdomain"] {
        if let Some(v) = str_opt(spec, key).filter(|v| !v.is_empty()) {
            push_all(&mut errs, path.child(key), v, is_dns1123_label(v));
        }
    }
    for key in ["serviceAccountName", "nodeName", "priorityClassName"] {
        if let Some(v) = str_opt(spec, key).filter(|v| !v.is_empty()) {
            push_all(&mut errs, path.child(key), v, is_dns1123_subdomain(v));
        }
    }
    for (i, t) in array_at(spec, "tolerations").iter().enumerate() {
        validate_toleration(t, &path.child("tolerations").index(i), &mut errs);
    }
    for (i, s) in array_at(spec, "imagePullSecrets").iter().enumerate() {
        if str_at(s, "name").is_empty() {
            errs.push(FieldError::required(
                path.child("imagePullSecrets").index(i).child("name"),
                "",
            ));
        }
    }
    validate_scheduling_gates(
        array_at(spec, "schedulingGates"),
        &path.child("schedulingGates"),
        &mut errs,
    );
    validate_os(spec, &path.child("os"), &mut errs);
    errs
}

/// Scheduling gates: qualified names (as label keys), each at most once.
fn validate_scheduling_gates(gates: &[Value], path: &Path, errs: &mut Vec<FieldError>) {
    let mut seen = BTreeSet::new();
    for (i, gate) in gates.iter().enumerate() {
        let p = path.index(i);
        let name = str_at(gate, "name");
        push_all(errs, &p, name, is_qualified_name(name));
        if !seen.insert(name) {
            errs.push(FieldError::duplicate(&p, name));
        }
    }
}

/// `os`, when set, names an operating system Kubernetes supports.
fn validate_os(spec: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    if object_at(spec, "os").is_none() {
        return;
    }
    match str_ptr(spec, "/os/name") {
        "" => errs.push(FieldError::required(path.child("name"), "cannot be empty")),
        name if !OS_NAMES.contains(&name) => {
            errs.push(FieldError::not_supported(
                path.child("name"),
                name,
                OS_NAMES,
            ));
        }
        _ => {}
    }
}

/// Checks volumes and returns their names, for the mounts to refer to.
fn validate_volumes(
    volumes: &[Value],
    path: &Path,
    errs: &mut Vec<FieldError>,
) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (i, v) in volumes.iter().enumerate() {
        let p = path.index(i);
        match str_at(v, "name") {
            "" => errs.push(FieldError::required(p.child("name"), "")),
            name => {
                push_all(errs, p.child("name"), name, is_dns1123_label(name));
                if !names.insert(name.to_string()) {
                    errs.push(FieldError::duplicate(p.child("name"), name));
                }
            }
        }
        let sources: Vec<&String> = v
            .as_object()
            .map(|o| o.keys().filter(|k| *k != "name").collect())
            .unwrap_or_default();
        match sources.as_slice() {
            [] => errs.push(FieldError::required(&p, "must specify a volume type")),
            [_] => {}
            [_, rest @ ..] => {
                for s in rest {
                    errs.push(FieldError::forbidden(
                        p.child(s),
                        "may not specify more than 1 volume type",
                    ));
                }
            }
        }
    }
    names
}

fn validate_container(
    c: &Value,
    path: &Path,
    volumes: &BTreeSet<String>,
    names: &mut BTreeSet<String>,
    errs: &mut Vec<FieldError>,
) {
    match str_at(c, "name") {
        "" => errs.push(FieldError::required(path.child("name"), "")),
        name => {
            push_all(errs, path.child("name"), name, is_dns1123_label(name));
            if !names.insert(name.to_string()) {
                errs.push(FieldError::duplicate(path.child("name"), name));
            }
        }
    }
    let image = str_at(c, "image");
    if image.trim().is_empty() {
        errs.push(FieldError::required(path.child("image"), ""));
    } else if image.trim() != image {
        errs.push(FieldError::invalid(
            path.child("image"),
            image,
            "must not have leading or trailing whitespace",
        ));
    }
    check_enum(errs, path, c, "imagePullPolicy", PULL_POLICIES);
    check_enum(
        errs,
        path,
        c,
        "terminationMessagePolicy",
        TERMINATION_MESSAGE_POLICIES,
    );
    validate_ports(array_at(c, "ports"), &path.child("ports"), errs);
    validate_env(array_at(c, "env"), &path.child("env"), errs);
    let mut mount_paths = BTreeSet::new();
    for (i, m) in array_at(c, "volumeMounts").iter().enumerate() {
        let p = path.child("volumeMounts").index(i);
        match str_at(m, "name") {
            "" => errs.push(FieldError::required(p.child("name"), "")),
            name if !volumes.contains(name) => {
                errs.push(FieldError::not_found(p.child("name"), name))
            }
            _ => {}
        }
        match str_at(m, "mountPath") {
            "" => errs.push(FieldError::required(p.child("mountPath"), "")),
            mp if !mount_paths.insert(mp.to_string()) => {
                errs.push(FieldError::invalid(
                    p.child("mountPath"),
                    mp,
                    "must be unique",
                ));
            }
            _ => {}
        }
    }
    validate_resources(child(c, "resources"), &path.child("resources"), errs);
}

fn validate_ports(ports: &[Value], path: &Path, errs: &mut Vec<FieldError>) {
    let mut names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let p = path.index(i);
        if let Some(name) = str_opt(port, "name").filter(|n| !n.is_empty()) {
            push_all(errs, p.child("name"), name, is_valid_port_name(name));
            if !names.insert(name) {
                errs.push(FieldError::duplicate(p.child("name"), name));
            }
        }
        match i64_at(port, "containerPort") {
            None => errs.push(FieldError::required(p.child("containerPort"), "")),
            Some(n) => {
                for m in is_valid_port_num(n) {
                    errs.push(FieldError::invalid(p.child("containerPort"), n, m));
                }
            }
        }
        if let Some(n) = i64_at(port, "hostPort").filter(|n| *n != 0) {
            for m in is_valid_port_num(n) {
                errs.push(FieldError::invalid(p.child("hostPort"), n, m));
            }
        }
        check_enum(errs, &p, port, "protocol", PROTOCOLS);
    }
}

fn validate_env(env: &[Value], path: &Path, errs: &mut Vec<FieldError>) {
    for (i, e) in env.iter().enumerate() {
        let p = path.index(i);
        match str_at(e, "name") {
            "" => errs.push(FieldError::required(p.child("name"), "")),
            name => push_all(errs, p.child("name"), name, is_env_var_name(name)),
        }
        let Some(from) = object_at(e, "valueFrom") else {
            continue;
        };
        if str_opt(e, "value").is_some_and(|v| !v.is_empty()) {
            errs.push(FieldError::invalid(
                p.child("valueFrom"),
                "",
                "may not be specified when `value` is not empty",
            ));
        }
        let sources: Vec<&String> = from.keys().collect();
        if sources.len() > 1 {
            errs.push(FieldError::invalid(
                p.child("valueFrom"),
                "",
                "may not have more than one field specified at a time",
            ));
        }
        for (src, needs) in [
            ("configMapKeyRef", &["key"][..]),
            ("secretKeyRef", &["key"][..]),
            ("fieldRef", &["fieldPath"][..]),
            ("resourceFieldRef", &["resource"][..]),
        ] {
            let Some(r) = from.get(src) else { continue };
            for key in needs {
                if str_at(r, key).is_empty() {
                    errs.push(FieldError::required(
                        p.child("valueFrom").child(src).child(key),
                        "",
                    ));
                }
            }
        }
    }
}

fn is_resource_name(name: &str) -> bool {
    STANDARD_RESOURCES.contains(&name)
        || name.starts_with("hugepages-")
        || (name.contains('/') && is_qualified_name(name).is_empty())
}

/// Parses a `limits` or `requests` map, reporting bad names and quantities.
fn quantities(
    v: &Value,
    key: &str,
    path: &Path,
    errs: &mut Vec<FieldError>,
) -> BTreeMap<String, Quantity> {
    let mut out = BTreeMap::new();
    for (name, q) in object_at(v, key).into_iter().flatten() {
        let p = path.child(key).key(name);
        if !is_resource_name(name) {
            errs.push(FieldError::invalid(
                &p,
                name.as_str(),
                "must be a standard resource type or fully qualified",
            ));
        }
        let parsed = match q {
            Value::String(s) => Quantity::parse(s).map_err(|e| (q, e.to_string())),
            Value::Number(n) => Quantity::parse(&n.to_string()).map_err(|e| (q, e.to_string())),
            other => Err((other, "must be a quantity".to_string())),
        };
        match parsed {
            Ok(q) if q.is_negative() => {
                errs.push(FieldError::invalid(
                    &p,
                    q.to_string(),
                    "must be greater than or equal to 0",
                ));
            }
            Ok(q) => {
                out.insert(name.clone(), q);
            }
            Err((v, msg)) => errs.push(FieldError::invalid(&p, v, msg)),
        }
    }
    out
}

/// Quantities must parse and be non-negative; a request may not exceed its limit.
pub fn validate_resources(res: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let limits = quantities(res, "limits", path, errs);
    let requests = quantities(res, "requests", path, errs);
    for (name, req) in &requests {
        if let Some(limit) = limits.get(name).filter(|l| req > *l) {
            errs.push(FieldError::invalid(
                path.child("requests").key(name),
                req.to_string(),
                format!("must be less than or equal to {name} limit of {limit}"),
            ));
        }
    }
}

fn validate_toleration(t: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let key = str_at(t, "key");
    if !key.is_empty() {
        push_all(errs, path.child("key"), key, is_qualified_name(key));
    }
    let op = str_at(t, "operator");
    match op {
        "" | "Equal" => {
            if key.is_empty() && !op.is_empty() {
                errs.push(FieldError::invalid(
                    path.child("operator"),
                    op,
                    "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
                ));
            }
        }
        "Exists" => {
            if let Some(v) = str_opt(t, "value").filter(|v| !v.is_empty()) {
                errs.push(FieldError::invalid(
                    path.child("operator"),
                    v,
                    "value must be empty when `operator` is 'Exists'",
                ));
            }
        }
        other => errs.push(FieldError::not_supported(
            path.child("operator"),
            other,
            &["Equal", "Exists"],
        )),
    }
    if let Some(e) = str_opt(t, "effect").filter(|e| !e.is_empty() && !TAINT_EFFECTS.contains(e)) {
        errs.push(FieldError::not_supported(
            path.child("effect"),
            e,
            TAINT_EFFECTS,
        ));
    }
    if t.get("tolerationSeconds").is_some_and(|s| !s.is_null())
        && str_opt(t, "effect") != Some("NoExecute")
    {
        errs.push(FieldError::invalid(
            path.child("effect"),
            str_at(t, "effect"),
            "effect must be 'NoExecute' when `tolerationSeconds` is set",
        ));
    }
}

/// A taint list of a node: keys, effects, no two taints with the same key and effect.
pub fn validate_taints(taints: &[Value], path: &Path, errs: &mut Vec<FieldError>) {
    let mut seen = BTreeSet::new();
    for (i, t) in taints.iter().enumerate() {
        let p = path.index(i);
        let key = str_at(t, "key");
        push_all(errs, p.child("key"), key, is_qualified_name(key));
        let effect = str_at(t, "effect");
        if effect.is_empty() {
            errs.push(FieldError::required(p.child("effect"), ""));
        } else if !TAINT_EFFECTS.contains(&effect) {
            errs.push(FieldError::not_supported(
                p.child("effect"),
                effect,
                TAINT_EFFECTS,
            ));
        }
        if !seen.insert((key, effect)) {
            errs.push(FieldError::duplicate(&p, format!("{key}:{effect}")));
        }
    }
}

/// What a pod update may change: container images, a shorter deadline, added
/// tolerations, and a negative grace period set to 1. Everything else is fixed.
pub fn validate_pod_spec_update(new: &Value, old: &Value, path: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut masked = new.clone();
    for key in ["containers", "initContainers"] {
        let (Some(n), Some(o)) = (
            masked.get_mut(key).and_then(Value::as_array_mut),
            old.get(key).and_then(Value::as_array),
        ) else {
            continue;
        };
        for (nc, oc) in n.iter_mut().zip(o) {
            if let (Some(nc), Some(image)) = (nc.as_object_mut(), oc.get("image")) {
                nc.insert("image".into(), image.clone());
            }
        }
    }
    if let Some(m) = masked.as_object_mut() {
        let new_deadline = i64_at(new, "activeDeadlineSeconds");
        let old_deadline = i64_at(old, "activeDeadlineSeconds");
        match (new_deadline, old_deadline) {
            (Some(n), Some(o)) if n > o => errs.push(FieldError::invalid(
                path.child("activeDeadlineSeconds"),
                n,
                "must be less than or equal to previous value",
            )),
            (None, Some(_)) => errs.push(FieldError::invalid(
                path.child("activeDeadlineSeconds"),
                Value::Null,
                "must not update from a positive integer to nil value",
            )),
            _ => {}
        }
        restore(m, old, "activeDeadlineSeconds");
        let old_tol = array_at(old, "tolerations");
        if old_tol
            .iter()
            .all(|t| array_at(new, "tolerations").contains(t))
        {
            restore(m, old, "tolerations");
        }
        if i64_at(old, "terminationGracePeriodSeconds").is_some_and(|g| g < 0)
            && i64_at(new, "terminationGracePeriodSeconds") == Some(1)
        {
            restore(m, old, "terminationGracePeriodSeconds");
        }
    }
    if &masked != old {
        errs.push(FieldError::forbidden(
            path,
            "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
        ));
    }
    errs
}

fn restore(m: &mut serde_json::Map<String, Value>, old: &Value, key: &str) {
    match old.get(key) {
        Some(v) => m.insert(key.to_string(), v.clone()),
        None => m.remove(key),
    };
}

//! Core and small kinds: Namespace, Service, ConfigMap, Secret, Node, Lease, Ingress.

use std::collections::BTreeSet;

use serde_json::Value;

use super::json::{check_enum, check_min, push_all};
use super::meta::validate_labels;
use super::pod::validate_taints;
use super::{
    FieldError, Path, is_config_map_key, is_dns1123_label, is_dns1123_subdomain, is_qualified_name,
};
use super::{is_valid_ip, is_valid_port_name, is_valid_port_num};
use crate::json::{array_at, bool_at, child, i64_at, meta, object_at, str_at, str_opt};

/// ConfigMaps and Secrets may hold at most 1 MiB.
pub const MAX_DATA_SIZE: usize = 1024 * 1024;
const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const SERVICE_TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];

pub fn validate_namespace(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, f) in array_at(child(obj, "spec"), "finalizers")
        .iter()
        .enumerate()
    {
        let f = f.as_str().unwrap_or_default();
        let p = Path::new("spec").child("finalizers").index(i);
        push_all(&mut errs, &p, f, is_qualified_name(f));
        if !f.contains('/') && f != "kubernetes" {
            errs.push(FieldError::invalid(
                p,
                f,
                "name is neither a standard finalizer name nor is it fully qualified",
            ));
        }
    }
    errs
}

pub fn validate_service(obj: &Value) -> Vec<FieldError> {
    let spec = child(obj, "spec");
    let path = Path::new("spec");
    let mut errs = Vec::new();
    check_enum(&mut errs, &path, spec, "type", SERVICE_TYPES);
    let ty = str_opt(spec, "type").unwrap_or("ClusterIP");
    let cluster_ip = str_at(spec, "clusterIP");
    let headless = cluster_ip == "None";
    if ty == "ExternalName" {
        match str_at(spec, "externalName") {
            "" => errs.push(FieldError::required(path.child("externalName"), "")),
            name => push_all(
                &mut errs,
                path.child("externalName"),
                name,
                is_dns1123_subdomain(name.trim_end_matches('.')),
            ),
        }
    } else if !headless && !cluster_ip.is_empty() {
        push_all(
            &mut errs,
            path.child("clusterIP"),
            cluster_ip,
            is_valid_ip(cluster_ip),
        );
    }
    let ports = array_at(spec, "ports");
    if ports.is_empty() && ty != "ExternalName" && !headless {
        errs.push(FieldError::required(path.child("ports"), ""));
    }
    let mut names = BTreeSet::new();
    let mut port_protocols = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let p = path.child("ports").index(i);
        match str_at(port, "name") {
            "" if ports.len() > 1 => errs.push(FieldError::required(p.child("name"), "")),
            "" => {}
            name => {
                push_all(&mut errs, p.child("name"), name, is_dns1123_label(name));
                if !names.insert(name) {
                    errs.push(FieldError::duplicate(p.child("name"), name));
                }
            }
        }
        let number = i64_at(port, "port");
        match number {
            None => errs.push(FieldError::required(p.child("port"), "")),
            Some(n) => is_valid_port_num(n)
                .into_iter()
                .for_each(|m| errs.push(FieldError::invalid(p.child("port"), n, m))),
        }
        check_enum(&mut errs, &p, port, "protocol", PROTOCOLS);
        let protocol = str_opt(port, "protocol").unwrap_or("TCP");
        if let Some(n) = number
            && !port_protocols.insert((n, protocol))
        {
            errs.push(FieldError::duplicate(&p, format!("{n}/{protocol}")));
        }
        match port.get("targetPort") {
            Some(Value::Number(n)) => {
                let n = n.as_i64().unwrap_or(0);
                is_valid_port_num(n)
                    .into_iter()
                    .for_each(|m| errs.push(FieldError::invalid(p.child("targetPort"), n, m)));
            }
            Some(Value::String(s)) => {
                push_all(&mut errs, p.child("targetPort"), s, is_valid_port_name(s))
            }
            _ => {}
        }
        if let Some(np) = i64_at(port, "nodePort").filter(|n| *n != 0) {
            if ty == "ClusterIP" || ty == "ExternalName" {
                errs.push(FieldError::forbidden(
                    p.child("nodePort"),
                    format!("may not be used when `type` is '{ty}'"),
                ));
            } else {
                is_valid_port_num(np)
                    .into_iter()
                    .for_each(|m| errs.push(FieldError::invalid(p.child("nodePort"), np, m)));
            }
        }
    }
    errs.extend(validate_labels(
        spec.get("selector"),
        &path.child("selector"),
    ));
    check_enum(
        &mut errs,
        &path,
        spec,
        "sessionAffinity",
        &["ClientIP", "None"],
    );
    check_enum(
        &mut errs,
        &path,
        spec,
        "ipFamilyPolicy",
        &["SingleStack", "PreferDualStack", "RequireDualStack"],
    );
    check_enum(
        &mut errs,
        &path,
        spec,
        "internalTrafficPolicy",
        &["Cluster", "Local"],
    );
    check_enum(
        &mut errs,
        &path,
        spec,
        "externalTrafficPolicy",
        &["Cluster", "Local"],
    );
    if spec
        .get("externalTrafficPolicy")
        .is_some_and(|v| !v.is_null())
        && !matches!(ty, "NodePort" | "LoadBalancer")
    {
        errs.push(FieldError::invalid(
            path.child("externalTrafficPolicy"),
            child(spec, "externalTrafficPolicy"),
            "may only be set for externally-accessible services",
        ));
    }
    for (i, f) in array_at(spec, "ipFamilies").iter().enumerate() {
        if !matches!(f.as_str(), Some("IPv4" | "IPv6")) {
            errs.push(FieldError::not_supported(
                path.child("ipFamilies").index(i),
                f,
                &["IPv4", "IPv6"],
            ));
        }
    }
    errs
}

/// Service updates: an allocated cluster IP stays.
pub fn validate_service_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let (ns, os) = (child(new, "spec"), child(old, "spec"));
    let old_ip = str_at(os, "clusterIP");
    let new_ip = str_at(ns, "clusterIP");
    let to_external_name = str_opt(ns, "type") == Some("ExternalName");
    if !old_ip.is_empty() && new_ip != old_ip && !to_external_name {
        errs.push(FieldError::invalid(
            "spec.clusterIPs[0]",
            array_at(ns, "clusterIPs")
                .to_vec()
                .into_iter()
                .collect::<Value>(),
            "may not change once set",
        ));
        errs.push(FieldError::invalid(
            "spec.clusterIP",
            new_ip,
            "field is immutable",
        ));
    }
    errs
}

fn data_keys(obj: &Value, decode_base64: bool) -> (Vec<FieldError>, usize) {
    let mut errs = Vec::new();
    let mut total = 0;
    let data_keys: BTreeSet<&str> = object_at(obj, "data")
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    for field in ["data", "binaryData", "stringData"] {
        for (k, v) in object_at(obj, field).into_iter().flatten() {
            push_all(&mut errs, Path::new(field).key(k), k, is_config_map_key(k));
            if field == "binaryData" && data_keys.contains(k.as_str()) {
                errs.push(FieldError::invalid(
                    Path::new(field).key(k),
                    k.as_str(),
                    "duplicate of key present in data",
                ));
            }
            let s = v.as_str().unwrap_or_default();
            total += if (decode_base64 && field == "data") || field == "binaryData" {
                s.len() / 4 * 3
            } else {
                s.len()
            };
        }
    }
    (errs, total)
}

pub fn validate_config_map(obj: &Value) -> Vec<FieldError> {
    let (mut errs, total) = data_keys(obj, false);
    if total > MAX_DATA_SIZE {
        errs.push(FieldError::too_long("", MAX_DATA_SIZE));
    }
    errs
}

pub fn validate_secret(obj: &Value) -> Vec<FieldError> {
    let (mut errs, total) = data_keys(obj, true);
    if total > MAX_DATA_SIZE {
        errs.push(FieldError::too_long("data", MAX_DATA_SIZE));
    }
    let has = |k: &str| {
        object_at(obj, "data").is_some_and(|m| m.contains_key(k))
            || object_at(obj, "stringData").is_some_and(|m| m.contains_key(k))
    };
    let required: &[&str] = match str_opt(obj, "type").unwrap_or("Opaque") {
        "kubernetes.io/dockerconfigjson" => &[".dockerconfigjson"],
        "kubernetes.io/dockercfg" => &[".dockercfg"],
        "kubernetes.io/tls" => &["tls.crt", "tls.key"],
        "kubernetes.io/ssh-auth" => &["ssh-privatekey"],
        "kubernetes.io/service-account-token" => {
            let annotation = "kubernetes.io/service-account.name";
            if meta::annotation(obj, annotation)
                .unwrap_or_default()
                .is_empty()
            {
                errs.push(FieldError::required(
                    Path::new("metadata").child("annotations").key(annotation),
                    "",
                ));
            }
            &[]
        }
        _ => &[],
    };
    for key in required {
        if !has(key) {
            errs.push(FieldError::required(Path::new("data").key(key), ""));
        }
    }
    if str_opt(obj, "type") == Some("kubernetes.io/basic-auth")
        && !has("username")
        && !has("password")
    {
        errs.push(FieldError::required(Path::new("data").key("username"), ""));
        errs.push(FieldError::required(Path::new("data").key("password"), ""));
    }
    errs
}

/// ConfigMap and Secret updates: `immutable` objects keep their data, Secrets their type.
pub fn validate_data_update(kind: &str, new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if kind == "Secret"
        && str_opt(new, "type").unwrap_or("Opaque") != str_opt(old, "type").unwrap_or("Opaque")
    {
        errs.push(FieldError::invalid(
            "type",
            child(new, "type"),
            "field is immutable",
        ));
    }
    if bool_at(old, "immutable") {
        if !bool_at(new, "immutable") {
            errs.push(FieldError::forbidden(
                "immutable",
                "field is immutable when `immutable` is set",
            ));
        }
        for key in ["data", "binaryData"] {
            if new.get(key) != old.get(key) {
                errs.push(FieldError::forbidden(
                    key,
                    "field is immutable when `immutable` is set",
                ));
            }
        }
    }
    errs
}

pub fn validate_node(obj: &Value) -> Vec<FieldError> {
    let spec = child(obj, "spec");
    let path = Path::new("spec");
    let mut errs = Vec::new();
    let mut cidrs: Vec<(Path, &str)> = Vec::new();
    if let Some(c) = str_opt(spec, "podCIDR").filter(|c| !c.is_empty()) {
        cidrs.push((path.child("podCIDR"), c));
    }
    for (i, c) in array_at(spec, "podCIDRs").iter().enumerate() {
        cidrs.push((
            path.child("podCIDRs").index(i),
            c.as_str().unwrap_or_default(),
        ));
    }
    for (p, c) in cidrs {
        if !is_cidr(c) {
            errs.push(FieldError::invalid(
                p,
                c,
                "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
            ));
        }
    }
    validate_taints(array_at(spec, "taints"), &path.child("taints"), &mut errs);
    errs
}

/// What a Node update may not change, for anyone: its pod CIDRs once
/// assigned (node IPAM sets them from empty) and its provider ID once set.
pub fn validate_node_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let before = pod_cidrs(old);
    if !before.is_empty() && pod_cidrs(new) != before {
        errs.push(FieldError::forbidden(
            "spec.podCIDRs",
            "node updates may not change podCIDR except from \"\" to valid",
        ));
    }
    if !provider_id(old).is_empty() && provider_id(new) != provider_id(old) {
        errs.push(FieldError::forbidden(
            "spec.providerID",
            "node updates may not change providerID except from \"\" to valid",
        ));
    }
    errs
}

/// `spec.podCIDRs`, with `spec.podCIDR` first when it is set and differs.
fn pod_cidrs(node: &Value) -> Vec<&str> {
    let spec = child(node, "spec");
    let mut all: Vec<&str> = array_at(spec, "podCIDRs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    if let Some(c) = str_opt(spec, "podCIDR").filter(|c| !c.is_empty())
        && all.first() != Some(&c)
    {
        all.insert(0, c);
    }
    all
}

fn provider_id(node: &Value) -> &str {
    str_opt(child(node, "spec"), "providerID").unwrap_or("")
}

fn is_cidr(s: &str) -> bool {
    let Some((ip, bits)) = s.split_once('/') else {
        return false;
    };
    match (ip.parse::<std::net::IpAddr>(), bits.parse::<u8>()) {
        (Ok(std::net::IpAddr::V4(_)), Ok(b)) => b <= 32,
        (Ok(std::net::IpAddr::V6(_)), Ok(b)) => b <= 128,
        _ => false,
    }
}

pub fn validate_lease(obj: &Value) -> Vec<FieldError> {
    let spec = child(obj, "spec");
    let path = Path::new("spec");
    let mut errs = Vec::new();
    check_min(&mut errs, &path, spec, "leaseDurationSeconds", 1);
    check_min(&mut errs, &path, spec, "leaseTransitions", 0);
    errs
}

pub fn validate_ingress(obj: &Value) -> Vec<FieldError> {
    let spec = child(obj, "spec");
    let path = Path::new("spec");
    let mut errs = Vec::new();
    if let Some(c) = str_opt(spec, "ingressClassName") {
        push_all(
            &mut errs,
            path.child("ingressClassName"),
            c,
            is_dns1123_subdomain(c),
        );
    }
    let rules = array_at(spec, "rules");
    let default = spec.get("defaultBackend").filter(|b| !b.is_null());
    if rules.is_empty() && default.is_none() {
        errs.push(FieldError::invalid(
            &path,
            spec,
            "either `defaultBackend` or `rules` must be specified",
        ));
    }
    if let Some(b) = default {
        validate_backend(b, &path.child("defaultBackend"), &mut errs);
    }
    for (i, rule) in rules.iter().enumerate() {
        let p = path.child("rules").index(i);
        if let Some(host) = str_opt(rule, "host").filter(|h| !h.is_empty()) {
            let bare = host.strip_prefix("*.").unwrap_or(host);
            if is_valid_ip(host).is_empty() {
                errs.push(FieldError::invalid(
                    p.child("host"),
                    host,
                    "must be a DNS name, not an IP address",
                ));
            } else {
                push_all(&mut errs, p.child("host"), host, is_dns1123_subdomain(bare));
            }
        }
        let Some(http) = rule.get("http").filter(|h| !h.is_null()) else {
            continue;
        };
        let hp = p.child("http");
        let paths = array_at(http, "paths");
        if paths.is_empty() {
            errs.push(FieldError::required(hp.child("paths"), ""));
        }
        for (j, hpath) in paths.iter().enumerate() {
            let pp = hp.child("paths").index(j);
            let kind = str_at(hpath, "pathType");
            match kind {
                "" => errs.push(FieldError::required(
                    pp.child("pathType"),
                    "pathType must be specified",
                )),
                "Exact" | "Prefix" | "ImplementationSpecific" => {}
                other => errs.push(FieldError::not_supported(
                    pp.child("pathType"),
                    other,
                    &["Exact", "ImplementationSpecific", "Prefix"],
                )),
            }
            let p_str = str_at(hpath, "path");
            if (kind == "Exact" || kind == "Prefix" || !p_str.is_empty()) && !p_str.starts_with('/')
            {
                errs.push(FieldError::invalid(
                    pp.child("path"),
                    p_str,
                    "must be an absolute path",
                ));
            }
            validate_backend(child(hpath, "backend"), &pp.child("backend"), &mut errs);
        }
    }
    errs
}

fn validate_backend(b: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let service = b.get("service").filter(|s| !s.is_null());
    let resource = b.get("resource").filter(|s| !s.is_null());
    match (service, resource) {
        (Some(_), Some(_)) => errs.push(FieldError::invalid(
            path,
            b,
            "cannot set both resource and service backends",
        )),
        (None, None) => errs.push(FieldError::invalid(
            path,
            b,
            "resource or service backend is required",
        )),
        (None, Some(_)) => {}
        (Some(s), None) => {
            let sp = path.child("service");
            match str_at(s, "name") {
                "" => errs.push(FieldError::required(sp.child("name"), "")),
                name => push_all(errs, sp.child("name"), name, super::is_dns1035_label(name)),
            }
            let port = child(s, "port");
            match (
                str_opt(port, "name").filter(|n| !n.is_empty()),
                i64_at(port, "number").filter(|n| *n != 0),
            ) {
                (Some(_), Some(_)) => errs.push(FieldError::invalid(
                    sp.child("port"),
                    port,
                    "cannot set both port name & port number",
                )),
                (None, None) => errs.push(FieldError::invalid(
                    sp.child("port"),
                    port,
                    "port name or number is required",
                )),
                (Some(n), None) => push_all(
                    errs,
                    sp.child("port").child("name"),
                    n,
                    is_valid_port_name(n),
                ),
                (None, Some(n)) => is_valid_port_num(n).into_iter().for_each(|m| {
                    errs.push(FieldError::invalid(sp.child("port").child("number"), n, m))
                }),
            }
        }
    }
}

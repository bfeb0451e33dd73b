//! apps/v1 and batch/v1 workloads: selectors, templates, strategies, schedules.

use serde_json::Value;

use super::json::{check_enum, check_min};
use super::meta::{check_name_length, validate_annotations, validate_labels};
use super::pod::{validate_pod_spec, validate_pod_spec_update};
use super::{FieldError, Path};
use crate::cron::CronSchedule;
use crate::json::{bool_at, child, child_ptr, i64_at, str_at, str_opt};
use crate::selectors::LabelSelector;

/// Validates the `spec` of a Deployment, ReplicaSet, StatefulSet or DaemonSet.
pub fn validate_apps_spec(kind: &str, spec: &Value) -> Vec<FieldError> {
    let path = Path::new("spec");
    let mut errs = Vec::new();
    if kind != "DaemonSet" {
        check_min(&mut errs, &path, spec, "replicas", 0);
    }
    check_min(&mut errs, &path, spec, "minReadySeconds", 0);
    check_min(&mut errs, &path, spec, "revisionHistoryLimit", 0);
    validate_selector_and_template(kind, spec, &path, &mut errs, &["Always"]);
    match kind {
        "Deployment" => validate_deployment_strategy(spec, &path, &mut errs),
        "StatefulSet" => {
            check_enum(
                &mut errs,
                &path,
                spec,
                "podManagementPolicy",
                &["OrderedReady", "Parallel"],
            );
            let us = child(spec, "updateStrategy");
            check_enum(
                &mut errs,
                &path.child("updateStrategy"),
                us,
                "type",
                &["RollingUpdate", "OnDelete"],
            );
            let ru = child(us, "rollingUpdate");
            check_min(
                &mut errs,
                &path.child("updateStrategy").child("rollingUpdate"),
                ru,
                "partition",
                0,
            );
            let policy = child(spec, "persistentVolumeClaimRetentionPolicy");
            let pp = path.child("persistentVolumeClaimRetentionPolicy");
            check_enum(&mut errs, &pp, policy, "whenDeleted", &["Retain", "Delete"]);
            check_enum(&mut errs, &pp, policy, "whenScaled", &["Retain", "Delete"]);
        }
        "DaemonSet" => {
            let us = child(spec, "updateStrategy");
            check_enum(
                &mut errs,
                &path.child("updateStrategy"),
                us,
                "type",
                &["RollingUpdate", "OnDelete"],
            );
            let rp = path.child("updateStrategy").child("rollingUpdate");
            validate_rolling_update(child(us, "rollingUpdate"), &rp, &mut errs);
        }
        _ => {}
    }
    errs
}

fn validate_selector_and_template(
    kind: &str,
    spec: &Value,
    path: &Path,
    errs: &mut Vec<FieldError>,
    restart_policies: &[&str],
) {
    let template = child(spec, "template");
    let tpath = path.child("template");
    match spec.get("selector") {
        None | Some(Value::Null) => errs.push(FieldError::required(path.child("selector"), "")),
        Some(sel) => match LabelSelector::from_metav1(sel) {
            Err(e) => errs.push(FieldError::invalid(
                path.child("selector"),
                sel,
                e.to_string(),
            )),
            Ok(s) if s.is_empty() => errs.push(FieldError::invalid(
                path.child("selector"),
                sel,
                format!("empty selector is invalid for {}", kind.to_lowercase()),
            )),
            Ok(s) => {
                let labels = child_ptr(template, "/metadata/labels");
                if !s.matches_object(template) {
                    errs.push(FieldError::invalid(
                        tpath.child("metadata").child("labels"),
                        labels,
                        "`selector` does not match template `labels`",
                    ));
                }
            }
        },
    }
    validate_template(template, &tpath, errs, restart_policies);
    if kind != "Job" && !child_ptr(template, "/spec/activeDeadlineSeconds").is_null() {
        errs.push(FieldError::forbidden(
            tpath.child("spec").child("activeDeadlineSeconds"),
            format!("activeDeadlineSeconds in {kind} is not Supported"),
        ));
    }
}

/// A pod template: its labels and annotations, its pod spec, and its restart policy.
fn validate_template(
    template: &Value,
    path: &Path,
    errs: &mut Vec<FieldError>,
    restart_policies: &[&str],
) {
    if !template.is_object() {
        errs.push(FieldError::required(path, ""));
        return;
    }
    let meta = child(template, "metadata");
    errs.extend(validate_labels(
        meta.get("labels"),
        &path.child("metadata").child("labels"),
    ));
    errs.extend(validate_annotations(
        meta.get("annotations"),
        &path.child("metadata").child("annotations"),
    ));
    let spec = child(template, "spec");
    errs.extend(validate_pod_spec(spec, &path.child("spec")));
    if let Some(rp) = str_opt(spec, "restartPolicy").filter(|rp| !restart_policies.contains(rp)) {
        errs.push(FieldError::not_supported(
            path.child("spec").child("restartPolicy"),
            rp,
            restart_policies,
        ));
    }
}

fn validate_deployment_strategy(spec: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let strategy = child(spec, "strategy");
    let sp = path.child("strategy");
    check_enum(errs, &sp, strategy, "type", &["Recreate", "RollingUpdate"]);
    let ru = child(strategy, "rollingUpdate");
    if str_opt(strategy, "type") == Some("Recreate") && !ru.is_null() {
        errs.push(FieldError::forbidden(
            sp.child("rollingUpdate"),
            "may not be specified when strategy `type` is 'Recreate'",
        ));
    }
    validate_rolling_update(ru, &sp.child("rollingUpdate"), errs);
    if let (Some(p), m) = (
        i64_at(spec, "progressDeadlineSeconds"),
        i64_at(spec, "minReadySeconds").unwrap_or(0),
    ) && p <= m
    {
        errs.push(FieldError::invalid(
            path.child("progressDeadlineSeconds"),
            p,
            "must be greater than minReadySeconds",
        ));
    }
}

/// Returns the amount if it is zero-valued (`0` or `"0%"`), checking its form.
fn int_or_percent(v: &Value, path: &Path, errs: &mut Vec<FieldError>) -> Option<bool> {
    match v {
        Value::Number(n) => {
            let n = n.as_i64().unwrap_or(-1);
            if n < 0 {
                errs.push(FieldError::invalid(
                    path,
                    n,
                    "must be greater than or equal to 0",
                ));
            }
            Some(n == 0)
        }
        Value::String(s) => {
            let Some(pct) = s
                .strip_suffix('%')
                .filter(|d| !d.is_empty() && d.bytes().all(|c| c.is_ascii_digit()))
            else {
                errs.push(FieldError::invalid(path, s.as_str(), "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"));
                return None;
            };
            let n: u64 = pct.parse().unwrap_or(u64::MAX);
            if n > 100 {
                errs.push(FieldError::invalid(
                    path,
                    s.as_str(),
                    "must not be greater than 100%",
                ));
            }
            Some(n == 0)
        }
        _ => None,
    }
}

fn validate_rolling_update(ru: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let unavailable = int_or_percent(
        child(ru, "maxUnavailable"),
        &path.child("maxUnavailable"),
        errs,
    );
    let surge = int_or_percent(child(ru, "maxSurge"), &path.child("maxSurge"), errs);
    if unavailable == Some(true) && surge == Some(true) {
        errs.push(FieldError::invalid(
            path.child("maxUnavailable"),
            child(ru, "maxUnavailable"),
            "may not be 0 when `maxSurge` is 0",
        ));
    }
}

/// apps/v1 updates: the selector is fixed; a StatefulSet may change only some fields.
pub fn validate_apps_update(kind: &str, new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let (ns, os) = (child(new, "spec"), child(old, "spec"));
    if ns.get("selector") != os.get("selector") {
        errs.push(FieldError::invalid(
            "spec.selector",
            child(ns, "selector"),
            "field is immutable",
        ));
    }
    if kind == "StatefulSet" {
        let mutable = [
            "replicas",
            "ordinals",
            "template",
            "updateStrategy",
            "persistentVolumeClaimRetentionPolicy",
            "minReadySeconds",
            "selector",
        ];
        let strip = |s: &Value| {
            let mut s = s.clone();
            if let Some(m) = s.as_object_mut() {
                m.retain(|k, _| !mutable.contains(&k.as_str()));
            }
            s
        };
        if strip(ns) != strip(os) {
            errs.push(FieldError::forbidden("spec", "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"));
        }
    }
    errs
}

/// Validates a Job `spec` found at `path`. A CronJob's job template has no selector yet.
pub fn validate_job_spec(spec: &Value, path: &Path, has_selector: bool) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for key in [
        "parallelism",
        "completions",
        "backoffLimit",
        "ttlSecondsAfterFinished",
    ] {
        check_min(&mut errs, path, spec, key, 0);
    }
    check_min(&mut errs, path, spec, "activeDeadlineSeconds", 1);
    check_enum(
        &mut errs,
        path,
        spec,
        "completionMode",
        &["NonIndexed", "Indexed"],
    );
    if str_opt(spec, "completionMode") == Some("Indexed") && i64_at(spec, "completions").is_none() {
        errs.push(FieldError::required(
            path.child("completions"),
            "when completion mode is Indexed",
        ));
    }
    let restart = &["OnFailure", "Never"];
    if has_selector {
        validate_selector_and_template("Job", spec, path, &mut errs, restart);
    } else {
        validate_template(
            child(spec, "template"),
            &path.child("template"),
            &mut errs,
            restart,
        );
    }
    let template = child(spec, "template");
    if template.is_object() && child_ptr(template, "/spec/restartPolicy").is_null() {
        let rp = path.child("template").child("spec").child("restartPolicy");
        errs.push(FieldError::not_supported(rp, "", restart));
    }
    errs
}

/// Job updates: the pod template, selector, completion mode and (mostly) completions are fixed.
pub fn validate_job_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let (ns, os) = (child(new, "spec"), child(old, "spec"));
    for key in ["selector", "completionMode"] {
        if ns.get(key) != os.get(key) {
            errs.push(FieldError::invalid(
                Path::new("spec").child(key),
                child(ns, key),
                "field is immutable",
            ));
        }
    }
    let suspended = bool_at(os, "suspend");
    let (nt, ot) = (child(ns, "template"), child(os, "template"));
    if nt != ot {
        // A suspended job may still change where its pods run.
        let mut masked = nt.clone();
        if suspended && let Some(spec) = masked.get_mut("spec").and_then(Value::as_object_mut) {
            for key in ["nodeSelector", "affinity", "tolerations", "schedulingGates"] {
                match ot.pointer(&format!("/spec/{key}")) {
                    Some(v) => spec.insert(key.to_string(), v.clone()),
                    None => spec.remove(key),
                };
            }
            if let Some(labels) = ot.pointer("/metadata/labels") {
                masked["metadata"]["labels"] = labels.clone();
            }
        }
        if &masked != ot {
            errs.push(FieldError::invalid(
                "spec.template",
                nt,
                "field is immutable",
            ));
        }
    }
    let elastic = str_opt(os, "completionMode") == Some("Indexed")
        && i64_at(ns, "completions") == i64_at(ns, "parallelism");
    if ns.get("completions") != os.get("completions") && !elastic {
        errs.push(FieldError::invalid(
            "spec.completions",
            child(ns, "completions"),
            "field is immutable",
        ));
    }
    errs
}

/// A CronJob: schedule, policies, and the job template under `spec.jobTemplate.spec`.
pub fn validate_cronjob(obj: &Value) -> Vec<FieldError> {
    let path = Path::new("spec");
    let spec = child(obj, "spec");
    let mut errs = Vec::new();
    check_name_length(&mut errs, child(obj, "metadata"), 52);
    match str_at(spec, "schedule") {
        "" => errs.push(FieldError::required(path.child("schedule"), "")),
        s if s.contains("TZ") => errs.push(FieldError::invalid(
            path.child("schedule"),
            s,
            "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
        )),
        s => {
            if let Err(e) = CronSchedule::parse(s) {
                errs.push(FieldError::invalid(path.child("schedule"), s, e));
            }
        }
    }
    check_enum(
        &mut errs,
        &path,
        spec,
        "concurrencyPolicy",
        &["Allow", "Forbid", "Replace"],
    );
    for key in [
        "startingDeadlineSeconds",
        "successfulJobsHistoryLimit",
        "failedJobsHistoryLimit",
    ] {
        check_min(&mut errs, &path, spec, key, 0);
    }
    let jt = path.child("jobTemplate");
    let job_template = child(spec, "jobTemplate");
    let meta = child(job_template, "metadata");
    errs.extend(validate_labels(
        meta.get("labels"),
        &jt.child("metadata").child("labels"),
    ));
    errs.extend(validate_job_spec(
        child(job_template, "spec"),
        &jt.child("spec"),
        false,
    ));
    errs
}

/// Pod updates: only the spec fields a running pod can take.
pub fn validate_pod_update(new: &Value, old: &Value) -> Vec<FieldError> {
    validate_pod_spec_update(child(new, "spec"), child(old, "spec"), &Path::new("spec"))
}

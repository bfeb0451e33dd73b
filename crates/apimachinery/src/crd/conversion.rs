//! Versions changing over a CRD's life: the conversion strategy between served versions,
//! and the versions objects may still be stored in.

use serde_json::Value;

use crate::json::{array_at, bool_at, str_at, str_opt};
use crate::validation::{FieldError, Path, is_dns1035_label};

pub(crate) fn validate_conversion(conversion: &Value, p: &Path, errs: &mut Vec<FieldError>) {
    let strategy = str_at(conversion, "strategy");
    match strategy {
        "" => errs.push(FieldError::required(p.child("strategy"), "")),
        "None" | "Webhook" => {}
        other => errs.push(FieldError::not_supported(
            p.child("strategy"),
            other,
            &["None", "Webhook"],
        )),
    }
    let webhook = conversion.get("webhook").unwrap_or(&Value::Null);
    let config = webhook.get("clientConfig").filter(|c| !c.is_null());
    let review_versions = array_at(webhook, "conversionReviewVersions");
    if strategy != "Webhook" {
        let detail = "should not be set when strategy is not set to Webhook";
        if config.is_some() {
            errs.push(FieldError::forbidden(
                p.child("webhookClientConfig"),
                detail,
            ));
        }
        if !review_versions.is_empty() {
            errs.push(FieldError::forbidden(
                p.child("conversionReviewVersions"),
                detail,
            ));
        }
        return;
    }
    let cp = p.child("webhookClientConfig");
    match config {
        None => errs.push(FieldError::required(
            &cp,
            "required when strategy is set to Webhook",
        )),
        Some(c) => match (
            str_opt(c, "url"),
            c.get("service").filter(|s| s.is_object()),
        ) {
            (Some(url), None) => {
                let scheme = url.split_once("://").map_or("", |(s, _)| s);
                if scheme != "https" {
                    errs.push(FieldError::invalid(
                        cp.child("url"),
                        scheme,
                        "'https' is the only allowed URL scheme",
                    ));
                }
            }
            (None, Some(service)) => {
                for key in ["name", "namespace"] {
                    if str_at(service, key).is_empty() {
                        errs.push(FieldError::required(
                            cp.child("service").child(key),
                            format!("service {key} is required"),
                        ));
                    }
                }
            }
            _ => errs.push(FieldError::required(
                &cp,
                "exactly one of url or service is required",
            )),
        },
    }
    let rp = p.child("conversionReviewVersions");
    if review_versions.is_empty() {
        errs.push(FieldError::required(&rp, ""));
        return;
    }
    let mut seen: Vec<&str> = Vec::new();
    for (i, v) in review_versions.iter().enumerate() {
        let v = v.as_str().unwrap_or_default();
        if seen.contains(&v) {
            errs.push(FieldError::invalid(rp.index(i), v, "duplicate version"));
            continue;
        }
        seen.push(v);
        for problem in is_dns1035_label(v) {
            errs.push(FieldError::invalid(rp.index(i), v, problem));
        }
    }
    if !seen.iter().any(|v| matches!(*v, "v1" | "v1beta1")) {
        errs.push(FieldError::invalid(
            &rp,
            Value::Array(review_versions.to_vec()),
            "must include at least one of v1, v1beta1",
        ));
    }
}

pub(crate) fn validate_stored_versions(
    stored: &[Value],
    versions: &[Value],
    errs: &mut Vec<FieldError>,
) {
    let p = Path::new("status").child("storedVersions");
    let stored_names: Vec<&str> = stored
        .iter()
        .map(|v| v.as_str().unwrap_or_default())
        .collect();
    if stored_names.is_empty() {
        errs.push(FieldError::invalid(
            &p,
            Value::Array(Vec::new()),
            "must have at least one stored version",
        ));
        return;
    }
    for v in versions {
        let name = str_at(v, "name");
        if bool_at(v, "storage") && !stored_names.contains(&name) {
            let detail = format!("must have the storage version {name}");
            errs.push(FieldError::invalid(
                &p,
                Value::Array(stored.to_vec()),
                detail,
            ));
        }
    }
    for (i, name) in stored_names.iter().enumerate() {
        if !versions.iter().any(|v| str_at(v, "name") == *name) {
            let detail = format!(
                "missing from spec.versions; {name} was previously a storage version, and must remain in spec.versions until a storage migration ensures no data remains persisted in {name} and removes {name} from status.storedVersions"
            );
            errs.push(FieldError::invalid(p.index(i), *name, detail));
        }
    }
}

//! The request options every handler relies on, checked once before any work:
//! `dryRun`, `fieldValidation`, `fieldManager` (Create/Update/Patch/DeleteOptions),
//! the list and watch options (`resourceVersionMatch`, `sendInitialEvents`), and
//! content negotiation (415 for a body type the server cannot read, 406 for a
//! response type it cannot write). Kubernetes answers the option errors with a
//! 422 naming the options kind (`CreateOptions.meta.k8s.io "" is invalid: ...`).

use serde_json::Value;

use super::{Call, Query};
use crate::error::{ApiError, ApiResult, Cause};

/// The only dry-run directive Kubernetes defines.
pub const DRY_RUN_ALL: &str = "All";
/// Longest `fieldManager` Kubernetes accepts, in bytes.
pub const FIELD_MANAGER_MAX_BYTES: usize = 128;

/// How unknown fields in a request body are treated (`fieldValidation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldValidation {
    /// Dropped silently.
    Ignore,
    /// Dropped, with a `Warning` header naming each (the default).
    Warn,
    /// The request fails with a 400 naming each.
    Strict,
}

impl FieldValidation {
    /// The directive in force for `query`; invalid values were refused by [`check`].
    pub fn of(query: &Query) -> FieldValidation {
        match query.get("fieldValidation").map(String::as_str) {
            Some("Ignore") => FieldValidation::Ignore,
            Some("Strict") => FieldValidation::Strict,
            _ => FieldValidation::Warn,
        }
    }
}

fn cause(reason: &str, field: &str, message: String) -> Cause {
    Cause {
        reason: reason.into(),
        message,
        field: field.into(),
    }
}

fn options_invalid(kind: &str, causes: Vec<Cause>) -> ApiResult<()> {
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid("meta.k8s.io", kind, "", causes))
    }
}

/// Kubernetes' message for a dryRun list that is not `["All"]`.
fn dry_run_cause(values: &[&str]) -> Option<Cause> {
    if values.iter().all(|v| *v == DRY_RUN_ALL) {
        return None;
    }
    let quoted: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
    Some(cause(
        "FieldValueNotSupported",
        "dryRun",
        format!(
            "dryRun: Unsupported value: []string{{{}}}: supported values: \"All\"",
            quoted.join(", ")
        ),
    ))
}

/// Whether a `DeleteOptions` body asks for a dry run; a directive other than
/// `All` is refused as Kubernetes does.
pub fn body_dry_run(options: Option<&Value>) -> ApiResult<bool> {
    let Some(v) = options.and_then(|o| o.get("dryRun")) else {
        return Ok(false);
    };
    let values: Vec<&str> = match v {
        Value::Null => return Ok(false),
        Value::Array(a) => {
            let strings: Option<Vec<&str>> = a.iter().map(Value::as_str).collect();
            strings.ok_or_else(|| {
                ApiError::BadRequest("dryRun: must be a list of strings such as [\"All\"]".into())
            })?
        }
        _ => {
            return Err(ApiError::BadRequest(
                "dryRun: must be a list of strings such as [\"All\"]".into(),
            ));
        }
    };
    options_invalid(
        "DeleteOptions",
        dry_run_cause(&values).into_iter().collect(),
    )?;
    Ok(!values.is_empty())
}

/// The options kind Kubernetes names in errors for a verb.
fn options_kind(verb: &str) -> Option<&'static str> {
    Some(match verb {
        "create" => "CreateOptions",
        "update" => "UpdateOptions",
        "patch" => "PatchOptions",
        "delete" | "deletecollection" => "DeleteOptions",
        _ => return None,
    })
}

/// Checks the request's options and content types before any handler runs.
pub fn check(call: &Call<'_>) -> ApiResult<()> {
    let verb = call.info.verb.as_str();
    check_accept(call.accept())?;
    match verb {
        "list" | "watch" => return check_list(call, verb == "watch"),
        "get" => return Ok(()),
        _ => {}
    }
    let Some(kind) = options_kind(verb) else {
        return Ok(());
    };
    let mut causes = Vec::new();
    if let Some(v) = call.query.get("dryRun") {
        causes.extend(dry_run_cause(&[v.as_str()]));
    }
    if verb != "delete" && verb != "deletecollection" {
        if let Some(v) = call.query.get("fieldValidation")
            && !matches!(v.as_str(), "" | "Ignore" | "Warn" | "Strict")
        {
            causes.push(cause(
                "FieldValueNotSupported",
                "fieldValidation",
                format!(
                    "fieldValidation: Unsupported value: {v:?}: supported values: \"\", \"Ignore\", \"Strict\", \"Warn\""
                ),
            ));
        }
        if let Some(m) = call.query.get("fieldManager") {
            if m.len() > FIELD_MANAGER_MAX_BYTES {
                causes.push(cause(
                    "FieldValueTooLong",
                    "fieldManager",
                    format!(
                        "fieldManager: Too long: may not be more than {FIELD_MANAGER_MAX_BYTES} bytes"
                    ),
                ));
            } else if m.chars().any(|c| c.is_control()) {
                causes.push(cause(
                    "FieldValueInvalid",
                    "fieldManager",
                    format!(
                        "fieldManager: Invalid value: {m:?}: may only contain printable characters"
                    ),
                ));
            }
        }
    }
    options_invalid(kind, causes)?;
    if matches!(verb, "create" | "update") && !call.body.is_empty() {
        check_content_type(call.content_type())?;
    }
    Ok(())
}

/// Kubernetes' ValidateListOptions: `resourceVersionMatch` and `sendInitialEvents`.
fn check_list(call: &Call<'_>, watch: bool) -> ApiResult<()> {
    let q = |k: &str| {
        call.query
            .get(k)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    let rv_match = q("resourceVersionMatch");
    let send_initial = q("sendInitialEvents");
    let cont = q("continue");
    let mut causes = Vec::new();
    let forbidden = |field: &str, why: &str| {
        cause(
            "FieldValueForbidden",
            field,
            format!("{field}: Forbidden: {why}"),
        )
    };
    if let Some(s) = send_initial
        && !matches!(s, "true" | "false")
    {
        return Err(ApiError::BadRequest(format!(
            "sendInitialEvents: invalid value {s:?}: must be true or false"
        )));
    }
    if watch {
        if send_initial.is_some() && rv_match != Some("NotOlderThan") {
            causes.push(forbidden(
                "resourceVersionMatch",
                "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            ));
        }
        if let Some(m) = rv_match {
            if send_initial.is_none() {
                causes.push(forbidden(
                    "resourceVersionMatch",
                    "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
                ));
            }
            if m != "NotOlderThan" {
                causes.push(cause(
                    "FieldValueNotSupported",
                    "resourceVersionMatch",
                    format!(
                        "resourceVersionMatch: Unsupported value: {m:?}: supported values: \"NotOlderThan\""
                    ),
                ));
            }
            if cont.is_some() {
                causes.push(forbidden(
                    "resourceVersionMatch",
                    "resourceVersionMatch is forbidden when continue is provided",
                ));
            }
        }
    } else {
        if let Some(m) = rv_match {
            if q("resourceVersion").is_none() {
                causes.push(forbidden(
                    "resourceVersionMatch",
                    "resourceVersionMatch is forbidden unless resourceVersion is provided",
                ));
            }
            if cont.is_some() {
                causes.push(forbidden(
                    "resourceVersionMatch",
                    "resourceVersionMatch is forbidden when continue is provided",
                ));
            }
            match m {
                "Exact" if q("resourceVersion") == Some("0") => causes.push(forbidden(
                    "resourceVersionMatch",
                    "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
                )),
                "Exact" | "NotOlderThan" => {}
                other => causes.push(cause(
                    "FieldValueNotSupported",
                    "resourceVersionMatch",
                    format!(
                        "resourceVersionMatch: Unsupported value: {other:?}: supported values: \"Exact\", \"NotOlderThan\", \"\""
                    ),
                )),
            }
        }
        if send_initial.is_some() {
            causes.push(forbidden(
                "sendInitialEvents",
                "sendInitialEvents is forbidden for list",
            ));
        }
    }
    options_invalid("ListOptions", causes)
}

/// The body types a create or update can be read from.
fn check_content_type(content_type: &str) -> ApiResult<()> {
    let media = media_type(content_type);
    if media.is_empty()
        || matches!(
            media.as_str(),
            "application/json" | "application/yaml" | crate::protobuf::CONTENT_TYPE
        )
    {
        return Ok(());
    }
    Err(ApiError::UnsupportedMediaType(format!(
        "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got {media})"
    )))
}

/// The response types this server can answer with. It writes JSON (its Table and
/// metadata views are JSON too), which is also valid YAML; a client asking for
/// protobuf gets JSON, which client-go decodes by the response's Content-Type.
fn check_accept(accept: &str) -> ApiResult<()> {
    let acceptable = accept.split(',').any(|entry| {
        matches!(
            media_type(entry).as_str(),
            "" | "*/*"
                | "application/*"
                | "application/json"
                | "application/yaml"
                | crate::protobuf::CONTENT_TYPE
        )
    });
    if acceptable {
        return Ok(());
    }
    Err(ApiError::NotAcceptable(format!(
        "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf (asked for {accept})"
    )))
}

/// `type/subtype` of a media type, lower-cased, without parameters.
fn media_type(value: &str) -> String {
    value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn dry_run_in_delete_options() {
        assert!(!body_dry_run(None).unwrap());
        assert!(!body_dry_run(Some(&json!({}))).unwrap());
        assert!(!body_dry_run(Some(&json!({"dryRun": null}))).unwrap());
        assert!(!body_dry_run(Some(&json!({"dryRun": []}))).unwrap());
        assert!(body_dry_run(Some(&json!({"dryRun": ["All"]}))).unwrap());
        let err = body_dry_run(Some(&json!({"dryRun": ["true"]}))).unwrap_err();
        assert_eq!(err.code().as_u16(), 422);
        assert!(
            err.to_string().contains("dryRun: Unsupported value"),
            "{err}"
        );
        assert_eq!(
            body_dry_run(Some(&json!({"dryRun": "All"})))
                .unwrap_err()
                .code()
                .as_u16(),
            400
        );
    }

    #[test]
    fn media_types() {
        assert!(check_content_type("application/json; charset=utf-8").is_ok());
        assert!(check_content_type("application/yaml").is_ok());
        assert!(check_content_type("").is_ok());
        assert_eq!(
            check_content_type("text/plain")
                .unwrap_err()
                .code()
                .as_u16(),
            415
        );
        assert!(check_accept("application/vnd.kubernetes.protobuf, */*").is_ok());
        assert!(
            check_accept("application/json;as=Table;v=v1;g=meta.k8s.io, application/json").is_ok()
        );
        assert!(check_accept("").is_ok());
        assert_eq!(check_accept("text/html").unwrap_err().code().as_u16(), 406);
        assert!(check_accept("application/vnd.kubernetes.protobuf").is_ok());
        assert_eq!(
            check_accept("text/plain, image/png")
                .unwrap_err()
                .code()
                .as_u16(),
            406
        );
    }
}

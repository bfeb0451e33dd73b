//! The create-only virtual resources: access reviews, token reviews, who-am-I, and
//! the ServiceAccount token subresource. Nothing here is stored.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::{Api, Call, decode_body, json_value};
use crate::auth::{Attributes, Decision, UserInfo};
use crate::error::{ApiError, ApiResult};

fn str_at<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

/// The strings of an array at `pointer`; anything else counts as empty.
fn strings_at(v: &Value, pointer: &str) -> Vec<String> {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn user_json(u: &UserInfo) -> Value {
    let mut v = json!({"username": u.name, "groups": u.groups});
    if !u.uid.is_empty() {
        v["uid"] = json!(u.uid);
    }
    if !u.extra.is_empty() {
        v["extra"] = json!(u.extra);
    }
    v
}

pub async fn create(api: &Api, call: &Call<'_>) -> ApiResult<Response> {
    let mut review = decode_body(&call.body, call.content_type())?;
    super::strategy::check_type(&mut review, call.resource)?;
    match call.resource.plural.as_ref() {
        "selfsubjectaccessreviews" => access_review(api, call.user, &mut review, None),
        "subjectaccessreviews" | "localsubjectaccessreviews" => {
            let subject = UserInfo {
                name: str_at(&review, "/spec/user").to_string(),
                uid: str_at(&review, "/spec/uid").to_string(),
                groups: strings_at(&review, "/spec/groups"),
                extra: Default::default(),
            };
            let ns = call.namespace().map(str::to_string);
            if let Some(ns) = &ns {
                let given = str_at(&review, "/spec/resourceAttributes/namespace");
                if !given.is_empty() && given != ns {
                    return Err(ApiError::BadRequest(format!(
                        "spec.resourceAttributes.namespace must match the request namespace {ns:?}"
                    )));
                }
            }
            access_review(api, &subject, &mut review, ns.as_deref())
        }
        "selfsubjectrulesreviews" => {
            let ns = str_at(&review, "/spec/namespace").to_string();
            let (mut resource_rules, mut non_resource_rules) = (Vec::new(), Vec::new());
            for rule in api.authz.rules_for(call.user, &ns) {
                match &rule.non_resource_urls {
                    Some(urls) if !urls.is_empty() => {
                        non_resource_rules
                            .push(json!({"verbs": rule.verbs, "nonResourceURLs": urls}));
                    }
                    _ => {
                        let mut r = json!({
                            "verbs": rule.verbs,
                            "apiGroups": rule.api_groups.clone().unwrap_or_default(),
                            "resources": rule.resources.clone().unwrap_or_default(),
                        });
                        if let Some(names) = rule.resource_names.as_ref().filter(|n| !n.is_empty())
                        {
                            r["resourceNames"] = json!(names);
                        }
                        resource_rules.push(r);
                    }
                }
            }
            review["status"] = json!({
                "resourceRules": resource_rules,
                "nonResourceRules": non_resource_rules,
                "incomplete": false,
            });
            json_value(StatusCode::CREATED, &review)
        }
        "tokenreviews" => {
            let token = str_at(&review, "/spec/token").to_string();
            let audiences = strings_at(&review, "/spec/audiences");
            review["status"] = match api.authn.review_token(&token, &audiences) {
                Ok((user, auds)) => {
                    json!({"authenticated": true, "user": user_json(&user), "audiences": auds})
                }
                Err(e) => json!({"authenticated": false, "error": e.to_string()}),
            };
            json_value(StatusCode::CREATED, &review)
        }
        "selfsubjectreviews" => {
            review["status"] = json!({"userInfo": user_json(call.user)});
            json_value(StatusCode::CREATED, &review)
        }
        other => Err(ApiError::MethodNotAllowed(format!(
            "create is not supported on {other}"
        ))),
    }
}

fn access_review(
    api: &Api,
    user: &UserInfo,
    review: &mut Value,
    ns: Option<&str>,
) -> ApiResult<Response> {
    let spec = review.get("spec").cloned().unwrap_or_else(|| json!({}));
    let decision = if let Some(ra) = spec.get("resourceAttributes") {
        let namespace = ns
            .map(str::to_string)
            .unwrap_or_else(|| str_at(ra, "/namespace").to_string());
        let attrs = Attributes {
            user,
            verb: str_at(ra, "/verb"),
            api_group: str_at(ra, "/group"),
            resource: str_at(ra, "/resource"),
            subresource: str_at(ra, "/subresource"),
            namespace: &namespace,
            name: str_at(ra, "/name"),
            path: "",
            is_resource_request: true,
        };
        api.authz.authorize(&attrs)
    } else if let Some(nra) = spec.get("nonResourceAttributes") {
        let attrs = Attributes {
            user,
            verb: str_at(nra, "/verb"),
            api_group: "",
            resource: "",
            subresource: "",
            namespace: "",
            name: "",
            path: str_at(nra, "/path"),
            is_resource_request: false,
        };
        api.authz.authorize(&attrs)
    } else {
        return Err(ApiError::invalid(
            "authorization.k8s.io",
            review.get("kind").and_then(Value::as_str).unwrap_or("SubjectAccessReview"),
            "",
            vec![crate::error::Cause {
                reason: "FieldValueRequired".into(),
                message: "spec.resourceAttributes: Required value: exactly one of nonResourceAttributes or resourceAttributes must be specified".into(),
                field: "spec.resourceAttributes".into(),
            }],
        ));
    };
    review["status"] = match decision {
        Decision::Allow => json!({"allowed": true}),
        Decision::Deny { reason } => json!({"allowed": false, "reason": reason}),
    };
    json_value(StatusCode::CREATED, review)
}

/// POST serviceaccounts/NAME/token (TokenRequest): a signed token for that account.
pub async fn service_account_token(api: &Api, call: &Call<'_>) -> ApiResult<Response> {
    let mut req = decode_body(&call.body, call.content_type())?;
    api.consistent().await?;
    let key = call.resource.key(call.namespace(), &call.info.name);
    let sa = api
        .cache
        .get(&key)
        .ok_or_else(|| call.not_found(&call.info.name))?
        .value()?;
    let uid = str_at(&sa, "/metadata/uid").to_string();
    let audiences = strings_at(&req, "/spec/audiences");
    let expiration = req
        .pointer("/spec/expirationSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(3600);
    if expiration < 600 {
        return Err(ApiError::invalid(
            "authentication.k8s.io",
            "TokenRequest",
            &call.info.name,
            vec![crate::error::Cause {
                reason: "FieldValueInvalid".into(),
                message: format!(
                    "spec.expirationSeconds: Invalid value: {expiration}: may not specify a duration less than 10 minutes"
                ),
                field: "spec.expirationSeconds".into(),
            }],
        ));
    }
    let ns = call.namespace().unwrap_or("");
    let token = api
        .authn
        .issue_service_account_token(ns, &call.info.name, &uid, &audiences, expiration)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    req["kind"] = json!("TokenRequest");
    req["apiVersion"] = json!("authentication.k8s.io/v1");
    req["metadata"] = json!({"name": call.info.name, "namespace": ns, "creationTimestamp": null});
    req["spec"]["expirationSeconds"] = json!(expiration);
    req["status"] = json!({"token": token, "expirationTimestamp": super::strategy::format_rfc3339(now + expiration)});
    json_value(StatusCode::CREATED, &req)
}

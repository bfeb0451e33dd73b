//! The create-only virtual resources: access reviews, token reviews, who-am-I, and
//! the ServiceAccount token subresource. Nothing here is stored.

use apimachinery::json::{self, str_ptr};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::{Api, Call, decode_body, json_value};
use crate::auth::{Attributes, Decision, UserInfo};
use crate::error::{ApiError, ApiResult};

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
                name: str_ptr(&review, "/spec/user").to_string(),
                uid: str_ptr(&review, "/spec/uid").to_string(),
                groups: strings_at(&review, "/spec/groups"),
                extra: Default::default(),
            };
            let ns = call.namespace().map(str::to_string);
            if let Some(ns) = &ns {
                let given = str_ptr(&review, "/spec/resourceAttributes/namespace");
                if !given.is_empty() && given != ns {
                    return Err(ApiError::BadRequest(format!(
                        "spec.resourceAttributes.namespace must match the request namespace {ns:?}"
                    )));
                }
            }
            access_review(api, &subject, &mut review, ns.as_deref())
        }
        "selfsubjectrulesreviews" => {
            let ns = str_ptr(&review, "/spec/namespace").to_string();
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
            let token = str_ptr(&review, "/spec/token").to_string();
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
            .unwrap_or_else(|| str_ptr(ra, "/namespace").to_string());
        let attrs = Attributes {
            user,
            verb: str_ptr(ra, "/verb"),
            api_group: str_ptr(ra, "/group"),
            resource: str_ptr(ra, "/resource"),
            subresource: str_ptr(ra, "/subresource"),
            namespace: &namespace,
            name: str_ptr(ra, "/name"),
            path: "",
            is_resource_request: true,
        };
        api.authz.authorize(&attrs)
    } else if let Some(nra) = spec.get("nonResourceAttributes") {
        let attrs = Attributes {
            user,
            verb: str_ptr(nra, "/verb"),
            api_group: "",
            resource: "",
            subresource: "",
            namespace: "",
            name: "",
            path: str_ptr(nra, "/path"),
            is_resource_request: false,
        };
        api.authz.authorize(&attrs)
    } else {
        return Err(ApiError::invalid(
            "authorization.k8s.io",
            json::str_opt(&*review, "kind").unwrap_or("SubjectAccessReview"),
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

/// TokenRequest's bounds on `spec.expirationSeconds`: ten minutes to 2^32 s.
const MIN_TOKEN_SECONDS: i64 = 10 * 60;
const MAX_TOKEN_SECONDS: i64 = 1 << 32;
/// What `spec.expirationSeconds` defaults to.
const DEFAULT_TOKEN_SECONDS: i64 = 60 * 60;

/// A TokenRequest's `spec.boundObjectRef`.
#[derive(Clone, Debug, Default)]
pub struct BoundObjectRef {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub uid: String,
}

impl BoundObjectRef {
    /// The API group `apiVersion` names (`""` for `v1`).
    fn group(&self) -> &str {
        match self.api_version.split_once('/') {
            Some((group, version)) if !version.contains('/') => group,
            _ => "",
        }
    }

    /// Kubernetes' `GroupVersionKind.String()`: `apps/v1, Kind=Deployment`.
    fn gvk(&self) -> String {
        let (group, version) = self
            .api_version
            .split_once('/')
            .unwrap_or(("", &self.api_version));
        format!("{group}/{version}, Kind={}", self.kind)
    }

    fn to_json(&self) -> Value {
        let mut out = serde_json::Map::new();
        for (key, value) in [
            ("kind", &self.kind),
            ("apiVersion", &self.api_version),
            ("name", &self.name),
            ("uid", &self.uid),
        ] {
            if !value.is_empty() {
                out.insert(key.into(), json!(value));
            }
        }
        Value::Object(out)
    }
}

/// What a TokenRequest asks for, read field by field: a body of the wrong
/// shape is a 400 naming the field, as Kubernetes' decoder says it.
struct TokenRequestSpec {
    audiences: Vec<String>,
    /// Not yet validated: anything an int64 holds.
    expiration_seconds: i64,
    bound: Option<BoundObjectRef>,
}

/// Kubernetes' decoding error for a JSON value of the wrong type.
fn cannot_unmarshal(value: &Value, owner: &str, field: &str, go_type: &str) -> ApiError {
    let what = match value {
        Value::Null => "null".to_string(),
        Value::Bool(_) => "bool".to_string(),
        Value::Number(n) => format!("number {n}"),
        Value::String(_) => "string".to_string(),
        Value::Array(_) => "array".to_string(),
        Value::Object(_) => "object".to_string(),
    };
    ApiError::BadRequest(format!(
        "TokenRequest in version \"v1\" cannot be handled as a TokenRequest: json: cannot unmarshal {what} into Go struct field {owner}.{field} of type {go_type}"
    ))
}

/// The string at `obj[key]`, absent or null meaning empty.
fn string_field(obj: &Value, key: &str, owner: &str, path: &str) -> ApiResult<String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(cannot_unmarshal(other, owner, path, "string")),
    }
}

impl TokenRequestSpec {
    fn parse(req: &Value) -> ApiResult<Self> {
        let spec = match req.get("spec") {
            None | Some(Value::Null) => return Ok(Self::default_spec()),
            Some(spec @ Value::Object(_)) => spec,
            Some(other) => {
                return Err(cannot_unmarshal(
                    other,
                    "TokenRequest",
                    "spec",
                    "v1.TokenRequestSpec",
                ));
            }
        };
        let owner = "TokenRequestSpec";
        let audiences = match spec.get("audiences") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|a| match a {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(cannot_unmarshal(other, owner, "spec.audiences", "string")),
                })
                .collect::<ApiResult<_>>()?,
            Some(other) => {
                return Err(cannot_unmarshal(other, owner, "spec.audiences", "[]string"));
            }
        };
        let expiration_seconds = match spec.get("expirationSeconds") {
            None | Some(Value::Null) => DEFAULT_TOKEN_SECONDS,
            Some(v) => v
                .as_i64()
                .ok_or_else(|| cannot_unmarshal(v, owner, "spec.expirationSeconds", "int64"))?,
        };
        let bound = match spec.get("boundObjectRef") {
            None | Some(Value::Null) => None,
            Some(r @ Value::Object(_)) => {
                let owner = "BoundObjectReference";
                let field =
                    |key: &str| string_field(r, key, owner, &format!("spec.boundObjectRef.{key}"));
                Some(BoundObjectRef {
                    api_version: field("apiVersion")?,
                    kind: field("kind")?,
                    name: field("name")?,
                    uid: field("uid")?,
                })
            }
            Some(other) => {
                return Err(cannot_unmarshal(
                    other,
                    owner,
                    "spec.boundObjectRef",
                    "v1.BoundObjectReference",
                ));
            }
        };
        Ok(TokenRequestSpec {
            audiences,
            expiration_seconds,
            bound,
        })
    }

    fn default_spec() -> Self {
        TokenRequestSpec {
            audiences: Vec::new(),
            expiration_seconds: DEFAULT_TOKEN_SECONDS,
            bound: None,
        }
    }
}

fn token_request_invalid(name: &str, field: &str, value: String, why: &str) -> ApiError {
    ApiError::invalid(
        "authentication.k8s.io",
        "TokenRequest",
        name,
        vec![crate::error::Cause {
            reason: "FieldValueInvalid".into(),
            message: format!("{field}: Invalid value: {value}: {why}"),
            field: field.into(),
        }],
    )
}

/// The uid of an object read from the cache.
fn uid_of(obj: &Value) -> String {
    str_ptr(obj, "/metadata/uid").to_string()
}

fn bound_object(o: &Option<(String, String)>) -> Option<crate::auth::BoundObject<'_>> {
    o.as_ref().map(|(name, uid)| crate::auth::BoundObject {
        name: name.as_str(),
        uid: uid.as_str(),
    })
}

/// The bound object the token will name, with its uid checked: a pod (and the
/// node it runs on), a secret, or a node.
struct Binding {
    pod: Option<(String, String)>,
    secret: Option<(String, String)>,
    node: Option<(String, String)>,
}

fn resolve_binding(api: &Api, ns: &str, account: &str, r: &BoundObjectRef) -> ApiResult<Binding> {
    let get = |kind: &str, namespace: Option<&str>| -> ApiResult<Value> {
        if r.name.is_empty() {
            return Err(ApiError::BadRequest("Name parameter required.".into()));
        }
        let key = crate::keys::of("v1", kind, namespace, &r.name);
        api.cache
            .get(&key)
            .ok_or_else(|| {
                let plural = apimachinery::resources::builtin_by_kind("v1", kind)
                    .map_or(kind, |res| &res.plural);
                ApiError::not_found("", plural, &r.name)
            })?
            .value()
    };
    let mut binding = Binding {
        pod: None,
        secret: None,
        node: None,
    };
    let uid = match (r.group(), r.kind.as_str()) {
        ("", "Pod") => {
            let pod = get("Pod", Some(ns))?;
            if crate::auth::graph::pod_service_account(&pod) != account {
                return Err(ApiError::BadRequest(format!(
                    "cannot bind token for serviceaccount {account:?} to pod running with different serviceaccount name."
                )));
            }
            let uid = uid_of(&pod);
            let node = str_ptr(&pod, "/spec/nodeName");
            if !node.is_empty() {
                // A missing node still gives the token its name.
                let node_uid = api
                    .cache
                    .get(&crate::keys::node(node))
                    .and_then(|e| e.value().ok())
                    .map(|n| uid_of(&n))
                    .unwrap_or_default();
                binding.node = Some((node.to_string(), node_uid));
            }
            binding.pod = Some((r.name.clone(), uid.clone()));
            uid
        }
        ("", "Node") => {
            let uid = uid_of(&get("Node", None)?);
            binding.node = Some((r.name.clone(), uid.clone()));
            uid
        }
        ("", "Secret") => {
            let uid = uid_of(&get("Secret", Some(ns))?);
            binding.secret = Some((r.name.clone(), uid.clone()));
            uid
        }
        _ => {
            return Err(ApiError::BadRequest(format!(
                "cannot bind token to object of type {}",
                r.gvk()
            )));
        }
    };
    if !r.uid.is_empty() && r.uid != uid {
        return Err(ApiError::conflict(
            r.group(),
            &r.kind,
            &r.name,
            &format!(
                "the UID in the bound object reference ({}) does not match the UID in record. The object might have been deleted and then recreated",
                r.uid
            ),
        ));
    }
    Ok(binding)
}

/// POST serviceaccounts/NAME/token (TokenRequest): a signed token for that
/// account, bound to a pod, secret or node when asked, checked as Kubernetes
/// does (its validation, NodeRestriction's rules for nodes, the bound
/// object's existence and uid).
pub async fn service_account_token(api: &Api, call: &Call<'_>) -> ApiResult<Response> {
    let req = decode_body(&call.body, call.content_type())?;
    let spec = TokenRequestSpec::parse(&req)?;
    let account = call.info.name.as_str();
    let ns = call.namespace().ok_or_else(|| call.not_found(account))?;
    let meta = match req.get("metadata") {
        None | Some(Value::Null) => json!({}),
        Some(m @ Value::Object(_)) => m.clone(),
        Some(other) => {
            return Err(cannot_unmarshal(
                other,
                "TokenRequest",
                "metadata",
                "v1.ObjectMeta",
            ));
        }
    };
    for (key, want, what) in [("name", account, "name"), ("namespace", ns, "namespace")] {
        let given = string_field(&meta, key, "ObjectMeta", &format!("metadata.{key}"))?;
        if !given.is_empty() && given != want {
            return Err(token_request_invalid(
                account,
                &format!("metadata.{key}"),
                format!("{given:?}"),
                &format!("must match the service account {what} if specified"),
            ));
        }
    }
    api.consistent().await?;
    let sa = api
        .cache
        .get(&call.resource.key(Some(ns), account))
        .ok_or_else(|| call.not_found(account))?
        .value()?;
    let seconds = spec.expiration_seconds;
    if seconds < MIN_TOKEN_SECONDS {
        return Err(token_request_invalid(
            "",
            "spec.expirationSeconds",
            seconds.to_string(),
            "may not specify a duration less than 10 minutes",
        ));
    }
    if seconds > MAX_TOKEN_SECONDS {
        return Err(token_request_invalid(
            "",
            "spec.expirationSeconds",
            seconds.to_string(),
            "may not specify a duration larger than 2^32 seconds",
        ));
    }
    super::node_restriction::admit_token_request(
        call.user,
        account,
        spec.bound.as_ref(),
        &|pod| {
            api.cache
                .get(&crate::keys::pod(ns, pod))
                .and_then(|e| e.value().ok())
        },
    )?;
    let binding = match &spec.bound {
        Some(r) => resolve_binding(api, ns, account, r)?,
        None => Binding {
            pod: None,
            secret: None,
            node: None,
        },
    };
    let audiences = if spec.audiences.is_empty() {
        api.authn.api_audiences().to_vec()
    } else {
        spec.audiences
    };
    let sa_uid = uid_of(&sa);
    // A dry run checks everything and issues no credential.
    let token = if call.dry_run() {
        String::new()
    } else {
        api.authn
            .issue_bound_service_account_token(
                crate::auth::ServiceAccountRef {
                    namespace: ns,
                    name: account,
                    uid: &sa_uid,
                },
                crate::auth::TokenBinding {
                    pod: bound_object(&binding.pod),
                    secret: bound_object(&binding.secret),
                    node: bound_object(&binding.node),
                },
                &audiences,
                seconds,
            )
            .map_err(|e| ApiError::internal_from("failed to generate token", e))?
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let mut out_spec = json!({"audiences": audiences, "expirationSeconds": seconds});
    if let Some(r) = &spec.bound {
        out_spec["boundObjectRef"] = r.to_json();
    }
    let out = json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {
            "name": account,
            "namespace": ns,
            "creationTimestamp": crate::clock::format_rfc3339(now),
        },
        "spec": out_spec,
        "status": {
            "token": token,
            "expirationTimestamp": crate::clock::format_rfc3339(now.saturating_add(seconds)),
        },
    });
    json_value(StatusCode::CREATED, &out)
}

//! Per-kind behaviour on top of the generic handlers: what create and update may
//! change, defaulting, validation, status handling, graceful deletion, and the
//! allocation of Service cluster IPs and node ports.

use apimachinery::resources::Resource;
use serde_json::{Map, Value, json};

use super::{Api, Call};
use crate::error::{ApiError, ApiResult, Cause};

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Create,
    Update,
}

pub fn now_rfc3339() -> String {
    // Seconds precision, UTC, as metav1.Time serializes.
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format_rfc3339(secs as i64)
}

/// Formats Unix seconds as metav1.Time does: `2006-01-02T15:04:05Z`.
pub fn format_rfc3339(secs: i64) -> String {
    let t =
        time::OffsetDateTime::from_unix_timestamp(secs).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn cause(reason: &str, field: &str, message: String) -> Cause {
    Cause {
        reason: reason.into(),
        message,
        field: field.into(),
    }
}

/// Fills in or checks `apiVersion` and `kind` against the URL's resource.
pub fn check_type(obj: &mut Value, r: &Resource) -> ApiResult<()> {
    let want_av = r.api_version();
    let map = obj
        .as_object_mut()
        .ok_or_else(|| ApiError::BadRequest("the body must be an object".into()))?;
    match map.get("kind").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("kind".into(), Value::String(r.kind.to_string()));
        }
        Some(k) if k == r.kind => {}
        Some(k) => {
            return Err(ApiError::BadRequest(format!(
                "the API version in the data ({}) does not match the expected API version ({want_av}), or kind {k} is not {}",
                map.get("apiVersion").and_then(Value::as_str).unwrap_or(""),
                r.kind
            )));
        }
    }
    match map.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("apiVersion".into(), Value::String(want_av));
        }
        Some(av) if av == want_av => {}
        Some(av) => {
            return Err(ApiError::BadRequest(format!(
                "the API version in the data ({av}) does not match the expected API version ({want_av})"
            )));
        }
    }
    Ok(())
}

fn meta_mut(obj: &mut Value) -> ApiResult<&mut Map<String, Value>> {
    let map = obj
        .as_object_mut()
        .ok_or_else(|| ApiError::BadRequest("the body must be an object".into()))?;
    let meta = map.entry("metadata").or_insert_with(|| json!({}));
    meta.as_object_mut()
        .ok_or_else(|| ApiError::BadRequest("metadata must be an object".into()))
}

/// Namespace from the URL, the name (or one generated from generateName), and the
/// server-owned metadata of a new object.
pub fn prepare_meta_for_create(obj: &mut Value, call: &Call<'_>) -> ApiResult<()> {
    let r = call.resource;
    let url_ns = call.namespace().map(str::to_string);
    let meta = meta_mut(obj)?;
    if r.namespaced {
        let Some(ns) = url_ns else {
            return Err(ApiError::BadRequest(format!(
                "the namespace is required to create {}",
                r.plural
            )));
        };
        match meta.get("namespace").and_then(Value::as_str) {
            Some(n) if !n.is_empty() && n != ns => {
                return Err(ApiError::BadRequest(
                    "the namespace of the provided object does not match the namespace sent on the request".into(),
                ));
            }
            _ => {
                meta.insert("namespace".into(), Value::String(ns));
            }
        }
    } else {
        meta.remove("namespace");
    }
    let name = meta
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if name.is_empty() {
        let prefix = meta
            .get("generateName")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if prefix.is_empty() {
            return Err(ApiError::invalid(
                &r.group,
                &r.kind,
                "",
                vec![cause(
                    "FieldValueRequired",
                    "metadata.name",
                    "metadata.name: Required value: name or generateName is required".into(),
                )],
            ));
        }
        meta.insert("name".into(), Value::String(generate_name(&prefix)));
    }
    meta.insert(
        "uid".into(),
        Value::String(uuid::Uuid::new_v4().to_string()),
    );
    meta.insert("creationTimestamp".into(), Value::String(now_rfc3339()));
    for server_owned in [
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
    ] {
        meta.remove(server_owned);
    }
    if has_generation(r) {
        meta.insert("generation".into(), json!(1));
    } else {
        meta.remove("generation");
    }
    Ok(())
}

/// `prefix` plus five random characters from Kubernetes' alphabet (no vowels).
fn generate_name(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let random = uuid::Uuid::new_v4();
    let suffix: String = random.as_bytes()[..5]
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect();
    let max_prefix = 63 - 5;
    let prefix = if prefix.len() > max_prefix {
        &prefix[..max_prefix]
    } else {
        prefix
    };
    format!("{prefix}{suffix}")
}

/// Kinds whose spec changes bump metadata.generation.
fn has_generation(r: &Resource) -> bool {
    let builtin = apimachinery::resources::builtin(&r.group, &r.version, &r.plural).is_some();
    !builtin
        || r.has_subresource("status")
            && !matches!(
                r.plural.as_ref(),
                "pods"
                    | "services"
                    | "nodes"
                    | "namespaces"
                    | "persistentvolumes"
                    | "persistentvolumeclaims"
            )
}

pub fn bump_generation(obj: &mut Value) {
    let g = obj
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    obj["metadata"]["generation"] = json!(g + 1);
}

/// Nothing may be created in a missing or terminating namespace.
pub async fn check_namespace_usable(api: &Api, call: &Call<'_>) -> ApiResult<()> {
    let Some(ns) = call.namespace() else {
        return Ok(());
    };
    api.consistent().await?;
    let Some(entry) = api.cache.get(&format!("/registry/namespaces/{ns}")) else {
        return Err(ApiError::not_found("", "namespaces", ns));
    };
    if entry
        .value()?
        .pointer("/metadata/deletionTimestamp")
        .is_some()
    {
        return Err(ApiError::Forbidden(format!(
            "{} \"{}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
            call.resource.plural, call.info.name
        )));
    }
    Ok(())
}

/// Defaulting, server-owned fields, validation and allocation, for a create or an
/// update (`old` is the stored object).
pub fn prepare(
    api: &Api,
    call: &Call<'_>,
    op: Op,
    obj: &mut Value,
    old: Option<&Value>,
) -> ApiResult<()> {
    super::node_restriction::admit(
        call.user,
        call.resource,
        &call.info.subresource,
        op,
        obj,
        old,
    )?;
    let r = call.resource;
    let av = r.api_version();
    if let Some(old) = old {
        keep_server_meta(obj, old)?;
        if r.group.is_empty() && r.plural == "services" {
            apimachinery::defaults::carry_over_service_allocations(obj, old);
        }
    }
    if r.group.is_empty() && r.plural == "secrets" {
        fold_string_data(obj);
    }
    // What the client wrote itself, before defaulting fills both in.
    let given_priority = (op == Op::Create && r.group.is_empty() && r.plural == "pods")
        .then(|| GivenPriority::of(obj));
    apimachinery::defaults::apply_defaults(&av, &r.kind, obj);
    if op == Op::Create {
        reset_status_on_create(r, obj);
        match (r.group.as_ref(), r.plural.as_ref()) {
            // Admission: pods tolerate not-ready and unreachable nodes for 300 s.
            ("", "pods") => {
                apimachinery::defaults::default_tolerations(obj);
                resolve_priority(api, obj, given_priority.unwrap_or_default())?;
            }
            ("batch", "jobs") => {
                let uid = obj
                    .pointer("/metadata/uid")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                apimachinery::defaults::job_selector_and_labels(obj, &uid);
            }
            _ => {}
        }
    }
    if let Some(old) = old
        && has_generation(r)
        && call.info.subresource.is_empty()
        && spec_of(obj) != spec_of(old)
    {
        bump_generation(obj);
    }
    if let Some(custom) = call.custom {
        super::custom::prepare(call, custom, obj)?;
        super::patch::record_managed_fields(call, obj, old);
        return Ok(());
    }
    if r.group == "apiextensions.k8s.io" && r.plural == "customresourcedefinitions" {
        super::custom::prepare_definition(call, obj, old)?;
    }
    super::patch::record_managed_fields(call, obj, old);
    // The ephemeralcontainers subresource changes that list alone; the pod's
    // immutable-spec rule is checked against the rest of the spec.
    let old_view = old
        .filter(|_| call.info.subresource == "ephemeralcontainers")
        .map(|o| {
            let mut o = o.clone();
            if let (Some(spec), Some(wanted)) = (
                o.get_mut("spec").and_then(Value::as_object_mut),
                obj.pointer("/spec/ephemeralContainers"),
            ) {
                spec.insert("ephemeralContainers".into(), wanted.clone());
            }
            o
        });
    let errors = apimachinery::validation::validate(&av, &r.kind, obj, old_view.as_ref().or(old));
    if !errors.is_empty() {
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let causes = errors
            .iter()
            .map(|e| cause(e.reason(), &e.field, e.message()))
            .collect();
        return Err(ApiError::invalid(&r.group, &r.kind, &name, causes));
    }
    Ok(())
}

/// What a new object holds besides its own key (a Service's cluster IP and node
/// ports), claimed once it has passed every check; a dry run holds nothing.
pub async fn allocate(api: &Api, call: &Call<'_>, obj: &mut Value) -> ApiResult<()> {
    let r = call.resource;
    if r.plural == "services" && r.group.is_empty() && !call.dry_run() {
        crate::alloc::allocate_service(api, obj).await?;
    }
    Ok(())
}

/// `spec.priority` and `spec.preemptionPolicy` as a pod's creator wrote them.
#[derive(Default)]
struct GivenPriority {
    priority: Option<Value>,
    policy: Option<Value>,
}

impl GivenPriority {
    fn of(pod: &Value) -> Self {
        let field = |name: &str| {
            pod.get("spec")
                .and_then(|s| s.get(name))
                .filter(|v| !v.is_null())
                .cloned()
        };
        GivenPriority {
            priority: field("priority"),
            policy: field("preemptionPolicy"),
        }
    }
}

/// The Priority admission step: a pod's `priorityClassName` (or the global
/// default class) becomes its `spec.priority` and `preemptionPolicy`.
fn resolve_priority(api: &Api, pod: &mut Value, given: GivenPriority) -> ApiResult<()> {
    let pod_name = pod
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let name = pod
        .pointer("/spec/priorityClassName")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let class = if name.is_empty() {
        let (_, classes) = api.cache.objects("/registry/priorityclasses/");
        classes
            .iter()
            .filter_map(|e| e.value().ok())
            .find(|c| c.get("globalDefault").and_then(Value::as_bool) == Some(true))
    } else {
        match api.cache.get(&format!("/registry/priorityclasses/{name}")) {
            Some(e) => Some(e.value()?),
            None => {
                return Err(ApiError::Forbidden(format!(
                    "pods \"{pod_name}\" is forbidden: no PriorityClass with name {name} was found"
                )));
            }
        }
    };
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    let value = class
        .as_ref()
        .and_then(|c| c.get("value"))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let policy = class
        .as_ref()
        .and_then(|c| c.get("preemptionPolicy"))
        .and_then(Value::as_str)
        .unwrap_or("PreemptLowerPriority")
        .to_string();
    // As Kubernetes' Priority admission: values a client writes itself must
    // agree with the class, or the pod is refused rather than silently changed.
    if let Some(given) = &given.priority
        && given.as_i64() != Some(value)
    {
        return Err(ApiError::Forbidden(format!(
            "pods \"{}\" is forbidden: the integer value of priority ({given}) must not be provided in pod spec; \
             priority admission controller computed {value} from the given PriorityClass name",
            pod_name
        )));
    }
    if let Some(given) = &given.policy
        && given.as_str() != Some(policy.as_str())
    {
        let given = given
            .as_str()
            .map_or_else(|| given.to_string(), str::to_string);
        return Err(ApiError::Forbidden(format!(
            "pods \"{}\" is forbidden: the string value of PreemptionPolicy ({given}) must not be provided in pod spec; \
             priority admission controller computed {policy} from the given PriorityClass name",
            pod_name
        )));
    }
    spec.insert("priority".into(), json!(value));
    spec.insert("preemptionPolicy".into(), json!(policy));
    if name.is_empty()
        && let Some(n) = class.as_ref().and_then(|c| c.pointer("/metadata/name"))
    {
        spec.insert("priorityClassName".into(), n.clone());
    }
    Ok(())
}

/// Decodes a request's object as its kind before anything else touches it, as
/// Kubernetes' decoder does: a field of the wrong type (metadata included) is a
/// 400; unknown fields are dropped, with a warning under fieldValidation=Warn
/// (the default) and as a 400 under Strict. Custom resources' own fields are
/// pruned by their schema in [`super::custom::prepare`]; their metadata is
/// checked here.
pub fn decode_check(call: &Call<'_>, obj: &mut Value) -> ApiResult<()> {
    let r = call.resource;
    let av = r.api_version();
    let builtin = if call.custom.is_none() {
        apimachinery::schema::check(&av, &r.kind, obj)
    } else {
        None
    };
    let unknown = match builtin {
        Some(result) => result,
        None => apimachinery::schema::check_metadata(&av, &r.kind, obj),
    }
    .map_err(ApiError::BadRequest)?;
    let names: Vec<String> = unknown.iter().map(ToString::to_string).collect();
    drop_unknown(call, &names)?;
    for f in &unknown {
        f.remove_from(obj);
    }
    Ok(())
}

/// What fieldValidation says to do with unknown fields that are about to be
/// dropped: a 400 under Strict, a warning each under Warn, nothing under Ignore.
pub fn drop_unknown(call: &Call<'_>, fields: &[String]) -> ApiResult<()> {
    use super::options::FieldValidation;
    if fields.is_empty() {
        return Ok(());
    }
    match FieldValidation::of(call.query) {
        FieldValidation::Strict => {
            let list: Vec<String> = fields
                .iter()
                .map(|f| format!("unknown field \"{f}\""))
                .collect();
            Err(ApiError::BadRequest(format!(
                "strict decoding error: {}",
                list.join(", ")
            )))
        }
        FieldValidation::Warn => {
            for f in fields {
                call.warnings.add(format!("unknown field \"{f}\""));
            }
            Ok(())
        }
        FieldValidation::Ignore => Ok(()),
    }
}

/// A Secret's write-only `stringData` is folded into `data` (base64), winning
/// over the same key in `data`, as Kubernetes' conversion does.
fn fold_string_data(obj: &mut Value) {
    use base64::Engine;
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    let Some(Value::Object(string_data)) = map.remove("stringData") else {
        return;
    };
    let data = map.entry("data").or_insert_with(|| json!({}));
    if !data.is_object() {
        *data = json!({});
    }
    if let Some(data) = data.as_object_mut() {
        for (k, v) in string_data {
            let text = v.as_str().unwrap_or_default();
            data.insert(
                k,
                Value::String(base64::engine::general_purpose::STANDARD.encode(text)),
            );
        }
    }
}

fn spec_of(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
    }
    v
}

/// Metadata only the server sets survives any update.
fn keep_server_meta(obj: &mut Value, old: &Value) -> ApiResult<()> {
    let old_meta = old.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let map = obj
        .as_object_mut()
        .ok_or_else(|| ApiError::BadRequest("the body must be an object".into()))?;
    for key in ["kind", "apiVersion"] {
        if !map.contains_key(key)
            && let Some(v) = old.get(key)
        {
            map.insert(key.into(), v.clone());
        }
    }
    let meta = meta_mut(obj)?;
    for key in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "namespace",
        "name",
    ] {
        match old_meta.get(key) {
            Some(v) => meta.insert(key.into(), v.clone()),
            None => meta.remove(key),
        };
    }
    Ok(())
}

fn reset_status_on_create(r: &Resource, obj: &mut Value) {
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    match (r.group.as_ref(), r.plural.as_ref()) {
        ("", "pods") => {
            let qos = qos_class(map.get("spec"));
            map.insert(
                "status".into(),
                json!({"phase": "Pending", "qosClass": qos}),
            );
        }
        ("", "namespaces") => {
            map.insert("status".into(), json!({"phase": "Active"}));
        }
        ("", "services") => {
            map.insert("status".into(), json!({"loadBalancer": {}}));
        }
        ("", "nodes") | ("", "persistentvolumes") | ("", "persistentvolumeclaims") => {}
        _ if r.has_subresource("status") => {
            map.remove("status");
        }
        _ => {}
    }
}

/// Guaranteed, Burstable or BestEffort, from the containers' requests and limits.
fn qos_class(spec: Option<&Value>) -> &'static str {
    let containers: Vec<&Value> = ["initContainers", "containers"]
        .iter()
        .filter_map(|f| spec.and_then(|s| s.get(*f)).and_then(Value::as_array))
        .flatten()
        .collect();
    let mut any = false;
    let mut guaranteed = !containers.is_empty();
    for c in containers {
        let req = c.pointer("/resources/requests").and_then(Value::as_object);
        let lim = c.pointer("/resources/limits").and_then(Value::as_object);
        if req.is_some_and(|m| !m.is_empty()) || lim.is_some_and(|m| !m.is_empty()) {
            any = true;
        }
        for res in ["cpu", "memory"] {
            let l = lim.and_then(|m| m.get(res));
            let q = req.and_then(|m| m.get(res)).or(l);
            if l.is_none() || q != l {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// Main resource writes keep the stored status; status writes keep everything but
/// the status; namespace finalize writes change only spec.finalizers.
pub fn merge_subresource(call: &Call<'_>, cur: &Value, new: &mut Value) -> ApiResult<()> {
    let r = call.resource;
    match call.info.subresource.as_str() {
        "" if r.has_subresource("status") => {
            let status = cur.get("status").cloned();
            let map = new
                .as_object_mut()
                .ok_or_else(|| ApiError::BadRequest("the body must be an object".into()))?;
            match status {
                Some(s) => map.insert("status".into(), s),
                None => map.remove("status"),
            };
        }
        "status" => {
            let status = new.get("status").cloned();
            let mut merged = cur.clone();
            match status {
                Some(s) => merged["status"] = s,
                None => {
                    if let Some(m) = merged.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
            copy_resource_version(new, &mut merged);
            *new = merged;
        }
        "ephemeralcontainers" => {
            let wanted = new
                .pointer("/spec/ephemeralContainers")
                .cloned()
                .unwrap_or(json!([]));
            let existing = cur
                .pointer("/spec/ephemeralContainers")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            // Ephemeral containers are only ever added, as Kubernetes enforces.
            let kept = wanted
                .as_array()
                .is_some_and(|w| w.len() >= existing.len() && w[..existing.len()] == existing[..]);
            if !kept {
                return Err(ApiError::invalid(
                    &r.group,
                    &r.kind,
                    &call.info.name,
                    vec![cause(
                        "FieldValueForbidden",
                        "spec.ephemeralContainers",
                        "spec.ephemeralContainers: Forbidden: existing ephemeral containers may not be changed".into(),
                    )],
                ));
            }
            let mut merged = cur.clone();
            if let Some(spec) = merged.get_mut("spec").and_then(Value::as_object_mut) {
                spec.insert("ephemeralContainers".into(), wanted);
            }
            copy_resource_version(new, &mut merged);
            *new = merged;
        }
        "finalize" => {
            let finalizers = new
                .pointer("/spec/finalizers")
                .cloned()
                .unwrap_or(json!([]));
            let mut merged = cur.clone();
            if let Some(spec) = merged.get_mut("spec").and_then(Value::as_object_mut) {
                spec.insert("finalizers".into(), finalizers);
            }
            copy_resource_version(new, &mut merged);
            *new = merged;
        }
        _ => {}
    }
    Ok(())
}

/// A subresource write's precondition: the resourceVersion the client sent.
fn copy_resource_version(from: &Value, to: &mut Value) {
    let rv = from.pointer("/metadata/resourceVersion").cloned();
    if let Some(meta) = to.get_mut("metadata").and_then(Value::as_object_mut) {
        match rv {
            Some(rv) => meta.insert("resourceVersion".into(), rv),
            None => meta.remove("resourceVersion"),
        };
    }
}

/// True when an object being deleted has no finalizers left, so it goes now.
pub fn finalized(obj: &Value) -> bool {
    if obj.pointer("/metadata/deletionTimestamp").is_none() {
        return false;
    }
    let meta_empty = obj
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty);
    let ns_empty = obj.get("kind").and_then(Value::as_str) != Some("Namespace")
        || obj
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
    let pod_pending = obj.get("kind").and_then(Value::as_str) == Some("Pod")
        && obj
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            > 0;
    meta_empty && ns_empty && !pod_pending
}

/// Marks an object as being deleted when it cannot go at once (finalizers, a pod's
/// grace period, a namespace's contents). Returns true when the object stays.
pub fn begin_delete(
    r: &Resource,
    obj: &mut Value,
    grace: Option<i64>,
    propagation: Option<&str>,
) -> bool {
    let now = unix_now();
    let mut finalizers: Vec<Value> = obj
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let add = |fs: &mut Vec<Value>, f: &str| {
        if !fs.iter().any(|v| v == f) {
            fs.push(Value::String(f.into()));
        }
    };
    match propagation {
        Some("Foreground") => add(&mut finalizers, "foregroundDeletion"),
        Some("Orphan") => add(&mut finalizers, "orphan"),
        _ => {}
    }
    let mut grace_secs = 0;
    if r.group.is_empty() && r.plural == "pods" {
        let bound = obj
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
        let phase = obj
            .pointer("/status/phase")
            .and_then(Value::as_str)
            .unwrap_or("");
        let terminal = phase == "Succeeded" || phase == "Failed";
        let default = obj
            .pointer("/spec/terminationGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(30);
        grace_secs = if bound && !terminal {
            grace.unwrap_or(default).max(0)
        } else {
            0
        };
        if let Some(existing) = obj
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64)
        {
            grace_secs = grace_secs.min(existing);
        }
    }
    let ns_finalizers = r.group.is_empty()
        && r.plural == "namespaces"
        && obj
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
    if finalizers.is_empty() && grace_secs == 0 && !ns_finalizers {
        return false;
    }
    if !finalizers.is_empty() {
        obj["metadata"]["finalizers"] = Value::Array(finalizers);
    }
    if obj.pointer("/metadata/deletionTimestamp").is_none() || grace_secs > 0 {
        obj["metadata"]["deletionTimestamp"] = Value::String(format_rfc3339(now + grace_secs));
    }
    obj["metadata"]["deletionGracePeriodSeconds"] = json!(grace_secs);
    if ns_finalizers {
        obj["status"]["phase"] = json!("Terminating");
    }
    true
}

/// Namespaces every cluster needs, which Kubernetes' NamespaceLifecycle admission
/// never lets anyone delete.
const IMMORTAL_NAMESPACES: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];

/// Refuses deletes that no one may make.
pub fn check_delete(r: &Resource, name: &str) -> ApiResult<()> {
    if r.group.is_empty() && r.plural == "namespaces" && IMMORTAL_NAMESPACES.contains(&name) {
        return Err(ApiError::Forbidden(format!(
            "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
        )));
    }
    Ok(())
}

/// Releases what a deleted object held (a Service's cluster IP and node ports).
pub async fn after_delete(api: &Api, call: &Call<'_>, obj: &Value) {
    if call.resource.group.is_empty() && call.resource.plural == "services" {
        crate::alloc::release_service(api, obj).await;
    }
    if call.resource.group == "apiextensions.k8s.io"
        && call.resource.plural == "customresourcedefinitions"
    {
        delete_custom_objects(api, obj).await;
    }
}

/// A deleted CRD takes its objects with it.
async fn delete_custom_objects(api: &Api, crd: &Value) {
    let group = crd
        .pointer("/spec/group")
        .and_then(Value::as_str)
        .unwrap_or("");
    let plural = crd
        .pointer("/spec/names/plural")
        .and_then(Value::as_str)
        .unwrap_or("");
    if group.is_empty() || plural.is_empty() {
        return;
    }
    let prefix = format!("/registry/{plural}.{group}/");
    let (_, entries) = api.cache.objects(&prefix);
    for e in entries {
        if let Err(err) = api.store.delete(&e.key, None).await
            && !matches!(err, store::StoreError::NotFound(_))
        {
            tracing::warn!(key = %e.key, error = %err, "could not delete an object of a deleted CRD");
        }
    }
}

/// Releases allocations made for a create that was then refused by the store.
pub async fn release_on_failed_create(api: &Api, call: &Call<'_>, obj: &Value) {
    after_delete(api, call, obj).await;
}

/// Kubernetes answers a delete of these with the object rather than a Status.
pub fn returns_deleted_object(r: &Resource) -> bool {
    r.group.is_empty() && matches!(r.plural.as_ref(), "pods" | "services" | "namespaces")
}

/// Sets one status condition, keeping the transition time when nothing changed.
pub fn set_condition(
    obj: &mut Value,
    kind: &str,
    status: &str,
    reason: Option<&str>,
    message: Option<&str>,
    now: &str,
) {
    if !obj.get("status").is_some_and(Value::is_object) {
        obj["status"] = json!({});
    }
    let conds = obj["status"]
        .as_object_mut()
        .map(|s| s.entry("conditions").or_insert_with(|| json!([])));
    let Some(Value::Array(conds)) = conds else {
        return;
    };
    let mut new =
        json!({"type": kind, "status": status, "lastProbeTime": null, "lastTransitionTime": now});
    if let Some(r) = reason {
        new["reason"] = json!(r);
    }
    if let Some(m) = message {
        new["message"] = json!(m);
    }
    match conds
        .iter_mut()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
    {
        Some(c) => {
            if c.get("status").and_then(Value::as_str) == Some(status) {
                new["lastTransitionTime"] =
                    c.get("lastTransitionTime").cloned().unwrap_or(json!(now));
            }
            *c = new;
        }
        None => conds.push(new),
    }
}

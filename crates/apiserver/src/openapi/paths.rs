//! The `paths` of a group version's OpenAPI v3 document: one entry per URL the REST layer
//! serves, each operation tagged with `x-kubernetes-action` and
//! `x-kubernetes-group-version-kind`. kubectl reads these: a PATCH operation listing the
//! `fieldValidation` parameter means server-side field validation is supported, and one
//! accepting `application/strategic-merge-patch+json` lets `kubectl apply` use the
//! document's patch metadata.

use apimachinery::resources::Resource;
use serde_json::{Map, Value, json};

use super::schemas::MetaNames;

/// What a path's operations read and write.
pub(crate) struct Target<'a> {
    pub resource: &'a Resource,
    /// Definition of the kind, `None` when it is not known (then bodies are untyped).
    pub definition: Option<&'a str>,
    pub list_definition: Option<&'a str>,
    /// Custom resources take no strategic merge patch.
    pub strategic_merge: bool,
}

/// A group, version and kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Gvk {
    pub group: String,
    pub version: String,
    pub kind: String,
}

impl Gvk {
    pub(crate) fn new(group: &str, version: &str, kind: &str) -> Gvk {
        Gvk {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
        }
    }
}

/// The definition and GVK a subresource's operations use.
pub(crate) struct SubTarget {
    pub name: String,
    pub definition: Option<String>,
    pub gvk: Gvk,
}

fn schema_ref(definition: Option<&str>) -> Value {
    match definition {
        Some(d) => json!({"$ref": format!("#/components/schemas/{d}")}),
        None => json!({"type": "object"}),
    }
}

fn content(definition: Option<&str>, types: &[&str]) -> Value {
    let schema = schema_ref(definition);
    Value::Object(
        types
            .iter()
            .map(|t| (t.to_string(), json!({"schema": schema})))
            .collect(),
    )
}

/// Response encodings the REST layer serves; protobuf is not one of them.
const OUT: &[&str] = &["application/json"];

fn response(definition: Option<&str>, codes: &[&str]) -> Value {
    let body = content(definition, OUT);
    Value::Object(
        codes
            .iter()
            .map(|c| {
                (
                    c.to_string(),
                    json!({"description": status_text(c), "content": body}),
                )
            })
            .chain(std::iter::once((
                "401".to_string(),
                json!({"description": "Unauthorized"}),
            )))
            .collect(),
    )
}

fn status_text(code: &str) -> &'static str {
    match code {
        "201" => "Created",
        "202" => "Accepted",
        _ => "OK",
    }
}

fn query(name: &str, ty: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": ty, "uniqueItems": true}})
}

fn path_param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "path", "description": description, "required": true,
           "schema": {"type": "string", "uniqueItems": true}})
}

fn dry_run() -> Value {
    query(
        "dryRun",
        "string",
        "When present, indicates that modifications should not be persisted. An invalid or unrecognized dryRun directive will result in an error response and no further processing of the request. Valid values are: - All: all dry run stages will be processed",
    )
}

fn field_manager() -> Value {
    query(
        "fieldManager",
        "string",
        "fieldManager is a name associated with the actor or entity that is making these changes. The value must be less than or 128 characters long, and only contain printable characters, as defined by https://golang.org/pkg/unicode/#IsPrint.",
    )
}

fn field_validation() -> Value {
    query(
        "fieldValidation",
        "string",
        "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore: This will ignore any unknown fields that are silently dropped from the object, and will ignore all but the last duplicate field that the decoder encounters. - Warn: This will send a warning via the standard warning response header for each unknown field that is dropped from the object, and for each duplicate field that is encountered. - Strict: This will fail the request with a BadRequest error if any unknown fields would be dropped from the object, or if any duplicate fields are present. The error returned from the server will contain all unknown and duplicate fields encountered.",
    )
}

fn list_params(watch: bool) -> Vec<Value> {
    let mut params = vec![
        query(
            "allowWatchBookmarks",
            "boolean",
            "allowWatchBookmarks requests watch events with type \"BOOKMARK\".",
        ),
        query(
            "continue",
            "string",
            "The continue option should be set when retrieving more results from the server.",
        ),
        query(
            "fieldSelector",
            "string",
            "A selector to restrict the list of returned objects by their fields. Defaults to everything.",
        ),
        query(
            "labelSelector",
            "string",
            "A selector to restrict the list of returned objects by their labels. Defaults to everything.",
        ),
        query(
            "limit",
            "integer",
            "limit is a maximum number of responses to return for a list call.",
        ),
        query(
            "resourceVersion",
            "string",
            "resourceVersion sets a constraint on what resource versions a request may be served from.",
        ),
        query(
            "resourceVersionMatch",
            "string",
            "resourceVersionMatch determines how resourceVersion is applied to list calls.",
        ),
        query(
            "sendInitialEvents",
            "boolean",
            "`sendInitialEvents=true` may be set together with `watch=true`.",
        ),
        query(
            "timeoutSeconds",
            "integer",
            "Timeout for the list/watch call.",
        ),
    ];
    if !watch {
        params.push(query("watch", "boolean", "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications."));
    }
    params
}

/// Builds operations for one resource; `op_id` names them like kube-apiserver does.
struct Ops<'a> {
    meta: &'a MetaNames,
    gvk: Value,
    op_id: OpId,
    namespaced: bool,
}

impl Ops<'_> {
    fn op(
        &self,
        verb: &str,
        suffix: &str,
        action: &str,
        description: &str,
        params: Vec<Value>,
    ) -> Map<String, Value> {
        let mut op = Map::new();
        op.insert("description".into(), description.into());
        op.insert(
            "operationId".into(),
            self.op_id.name(verb, self.namespaced, suffix).into(),
        );
        op.insert("tags".into(), json!([self.op_id.tag]));
        if !params.is_empty() {
            op.insert("parameters".into(), params.into());
        }
        op.insert("x-kubernetes-action".into(), action.into());
        op.insert("x-kubernetes-group-version-kind".into(), self.gvk.clone());
        op
    }

    fn with(mut op: Map<String, Value>, request: Option<Value>, responses: Value) -> Value {
        if let Some(body) = request {
            op.insert(
                "requestBody".into(),
                json!({"content": body, "required": true}),
            );
        }
        op.insert("responses".into(), responses);
        Value::Object(op)
    }

    fn read(&self, definition: Option<&str>, suffix: &str) -> Value {
        Self::with(
            self.op("read", suffix, "get", "read the specified object", vec![]),
            None,
            response(definition, &["200"]),
        )
    }

    fn replace(&self, definition: Option<&str>, suffix: &str) -> Value {
        let params = vec![dry_run(), field_manager(), field_validation()];
        let op = self.op(
            "replace",
            suffix,
            "put",
            "replace the specified object",
            params,
        );
        Self::with(
            op,
            Some(content(definition, &["*/*"])),
            response(definition, &["200", "201"]),
        )
    }

    fn patch(&self, definition: Option<&str>, suffix: &str, strategic: bool) -> Value {
        let mut params = vec![dry_run(), field_manager(), field_validation()];
        params.push(query("force", "boolean", "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people."));
        let op = self.op(
            "patch",
            suffix,
            "patch",
            "partially update the specified object",
            params,
        );
        let mut types = vec![
            "application/apply-patch+yaml",
            "application/json-patch+json",
            "application/merge-patch+json",
        ];
        if strategic {
            types.push("application/strategic-merge-patch+json");
        }
        Self::with(
            op,
            Some(content(Some(&self.meta.patch), &types)),
            response(definition, &["200", "201"]),
        )
    }

    fn create(&self, definition: Option<&str>, suffix: &str) -> Value {
        let params = vec![dry_run(), field_manager(), field_validation()];
        let op = self.op("create", suffix, "post", "create an object", params);
        Self::with(
            op,
            Some(content(definition, &["*/*"])),
            response(definition, &["200", "201", "202"]),
        )
    }
}

/// Kubernetes' operation ids: `listCoreV1NamespacedPod`, `patchAppsV1NamespacedDeploymentScale`.
struct OpId {
    group_version: String,
    kind: String,
    tag: String,
}

impl OpId {
    fn new(r: &Resource) -> Self {
        let group = if r.group.is_empty() {
            "core".to_string()
        } else {
            r.group.trim_end_matches(".k8s.io").to_string()
        };
        let camel: String = group.split('.').map(capitalize).collect();
        let tag_group = {
            let mut parts = group.split('.');
            let first = parts.next().unwrap_or_default().to_string();
            parts.fold(first, |acc, p| acc + &capitalize(p))
        };
        OpId {
            group_version: format!("{camel}{}", capitalize(&r.version)),
            kind: r.kind.to_string(),
            tag: format!("{tag_group}_{}", r.version),
        }
    }

    fn name(&self, verb: &str, namespaced: bool, suffix: &str) -> String {
        let ns = if namespaced { "Namespaced" } else { "" };
        format!(
            "{verb}{}{ns}{}{}",
            self.group_version,
            self.kind,
            capitalize(suffix)
        )
    }
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// Adds every path of `target` (collection, object, watch and subresource URLs) to `paths`.
pub(crate) fn add_paths(
    paths: &mut Map<String, Value>,
    target: &Target<'_>,
    subs: &[SubTarget],
    meta: &MetaNames,
) {
    let r = target.resource;
    let root = if r.group.is_empty() {
        format!("/api/{}", r.version)
    } else {
        format!("/apis/{}/{}", r.group, r.version)
    };
    let scope = if r.namespaced {
        "/namespaces/{namespace}"
    } else {
        ""
    };
    let collection = format!("{root}{scope}/{}", r.plural);
    let object = format!("{collection}/{{name}}");
    let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
    let ops = Ops {
        meta,
        gvk: gvk.clone(),
        op_id: OpId::new(r),
        namespaced: r.namespaced,
    };
    let pretty = query(
        "pretty",
        "string",
        "If 'true', then the output is pretty printed.",
    );
    let ns_param = path_param(
        "namespace",
        "object name and auth scope, such as for teams and projects",
    );
    let name_param = path_param("name", "name of the object");
    let mut scope_params: Vec<Value> = if r.namespaced {
        vec![ns_param.clone()]
    } else {
        vec![]
    };
    scope_params.push(pretty.clone());
    let mut object_params = vec![name_param];
    object_params.extend(scope_params.clone());
    let verbs = r.verbs.as_ref();
    let can = |v: &str| verbs.contains(&v);
    let (def, list_def) = (target.definition, target.list_definition);

    let mut coll = Map::new();
    coll.insert("parameters".into(), scope_params.clone().into());
    if can("list") {
        let op = ops.op(
            "list",
            "",
            "list",
            "list or watch objects",
            list_params(false),
        );
        coll.insert(
            "get".into(),
            Ops::with(op, None, response(list_def, &["200"])),
        );
    }
    if can("create") {
        coll.insert("post".into(), ops.create(def, ""));
    }
    if can("deletecollection") {
        let mut params = vec![
            dry_run(),
            query(
                "gracePeriodSeconds",
                "integer",
                "The duration in seconds before the object should be deleted.",
            ),
        ];
        params.extend(list_params(true));
        let op = ops.op(
            "deletecollection",
            "",
            "deletecollection",
            "delete collection of objects",
            params,
        );
        let body = content(Some(&meta.delete_options), &["*/*"]);
        coll.insert(
            "delete".into(),
            Ops::with(op, Some(body), response(Some(&meta.status), &["200"])),
        );
    }
    paths.insert(collection.clone(), Value::Object(coll));

    if can("get") {
        let mut obj = Map::new();
        obj.insert("parameters".into(), object_params.clone().into());
        obj.insert("get".into(), ops.read(def, ""));
        if can("update") {
            obj.insert("put".into(), ops.replace(def, ""));
        }
        if can("patch") {
            obj.insert("patch".into(), ops.patch(def, "", target.strategic_merge));
        }
        if can("delete") {
            let params = vec![
                dry_run(),
                query(
                    "gracePeriodSeconds",
                    "integer",
                    "The duration in seconds before the object should be deleted.",
                ),
                query(
                    "propagationPolicy",
                    "string",
                    "Whether and how garbage collection will be performed.",
                ),
            ];
            let op = ops.op("delete", "", "delete", "delete an object", params);
            let body = content(Some(&meta.delete_options), &["*/*"]);
            obj.insert(
                "delete".into(),
                Ops::with(
                    op,
                    Some(body),
                    response(Some(&meta.status), &["200", "202"]),
                ),
            );
        }
        paths.insert(object.clone(), Value::Object(obj));
    }

    if can("watch") {
        let watch_root = format!("{root}/watch{scope}/{}", r.plural);
        let event = Some(meta.watch_event.as_str());
        let op = ops.op(
            "watch",
            "List",
            "watchlist",
            "watch individual changes to a list of objects",
            list_params(true),
        );
        let mut list = Map::new();
        list.insert("parameters".into(), scope_params.clone().into());
        list.insert("get".into(), Ops::with(op, None, response(event, &["200"])));
        paths.insert(watch_root.clone(), Value::Object(list));
        let op = ops.op(
            "watch",
            "",
            "watch",
            "watch changes to an object",
            list_params(true),
        );
        let mut one = Map::new();
        one.insert("parameters".into(), object_params.clone().into());
        one.insert("get".into(), Ops::with(op, None, response(event, &["200"])));
        paths.insert(format!("{watch_root}/{{name}}"), Value::Object(one));
    }
    if r.namespaced && can("list") {
        let all = format!("{root}/{}", r.plural);
        let all_ops = Ops {
            namespaced: false,
            ..ops_clone(&ops)
        };
        let op = all_ops.op(
            "list",
            "ForAllNamespaces",
            "list",
            "list or watch objects of any namespace",
            list_params(false),
        );
        let mut entry = Map::new();
        entry.insert("parameters".into(), vec![pretty.clone()].into());
        entry.insert(
            "get".into(),
            Ops::with(op, None, response(list_def, &["200"])),
        );
        paths.insert(all, Value::Object(entry));
    }

    for sub in subs {
        let Gvk {
            group,
            version,
            kind,
        } = &sub.gvk;
        let (def, name) = (sub.definition.as_deref(), sub.name.as_str());
        let sub_ops = Ops {
            gvk: json!({"group": group, "version": version, "kind": kind}),
            ..ops_clone(&ops)
        };
        let mut entry = Map::new();
        entry.insert("parameters".into(), object_params.clone().into());
        match name {
            "status" | "scale" | "ephemeralcontainers" | "resize" => {
                entry.insert("get".into(), sub_ops.read(def, name));
                entry.insert("put".into(), sub_ops.replace(def, name));
                entry.insert(
                    "patch".into(),
                    sub_ops.patch(def, name, target.strategic_merge),
                );
            }
            "binding" | "eviction" | "token" => {
                entry.insert("post".into(), sub_ops.create(def, name));
            }
            "log" => {
                let op = sub_ops.op(
                    "read",
                    "log",
                    "get",
                    "read log of the specified Pod",
                    vec![],
                );
                let body = json!({"200": {"description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}}});
                entry.insert("get".into(), Ops::with(op, None, body));
            }
            // Streaming subresources (exec, attach, portforward, proxy) carry no schema.
            _ => continue,
        }
        paths.insert(format!("{object}/{}", sub.name), Value::Object(entry));
    }
}

fn ops_clone<'a>(ops: &Ops<'a>) -> Ops<'a> {
    Ops {
        meta: ops.meta,
        gvk: ops.gvk.clone(),
        op_id: OpId {
            group_version: ops.op_id.group_version.clone(),
            kind: ops.op_id.kind.clone(),
            tag: ops.op_id.tag.clone(),
        },
        namespaced: ops.namespaced,
    }
}

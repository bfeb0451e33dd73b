//! OpenAPI documents: v3 per group version (`/openapi/v3`, `/openapi/v3/apis/{g}/{v}`), which
//! kubectl 1.27+ reads for `explain`, for apply's patch metadata and to learn that the server
//! validates fields itself; and the v2 document (`/openapi/v2`) for older clients.
//!
//! Schemas are generated, not written: k8s-openapi's `schemars` feature implements
//! `JsonSchema` for every type with Kubernetes' definition names and field descriptions, taken
//! from the same upstream OpenAPI the Go types come from. Measured on this 2-core machine, the
//! feature adds about 2.5 s to k8s-openapi's 13 s debug build (rlib 53 → 77 MB) plus 1.3 s
//! for schemars itself; the alternative, a copy of Kubernetes' swagger.json embedded in the
//! binary, would need fetching and refreshing by hand and would drift from the types.
//!
//! Documents are built on first use, serialized once and kept as bytes with a content hash,
//! never rebuilt per request. Custom resources get their own documents through
//! [`OpenApiV3::with_custom`] from their CRD's `openAPIV3Schema`.

mod paths;
mod schemas;
mod v2;
mod v2_proto;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use apimachinery::resources::{BUILTIN, Resource, builtin_group_versions};
use bytes::Bytes;
use serde_json::{Map, Value, json};

use paths::Gvk;

pub(crate) use schemas::crd_schema;

/// A serialized document and the hash clients use to cache it.
#[derive(Debug)]
pub(crate) struct Document {
    bytes: Bytes,
    hash: String,
}

impl Document {
    fn new(value: &Value) -> Document {
        // Serializing a `Value` cannot fail: its map keys are strings.
        let bytes = Bytes::from(serde_json::to_vec(value).unwrap_or_default());
        let hash = content_hash(&bytes);
        Document { bytes, hash }
    }

    #[cfg(test)]
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The `?hash=` of the document's URL in the v3 root, which clients treat as
    /// "immutable content": serve it with `Cache-Control: public, immutable` when the request
    /// carries the same hash.
    #[cfg(test)]
    pub fn hash(&self) -> &str {
        &self.hash
    }
}

/// 64-bit FNV-1a as hex: the hash only has to change when the content does, so a
/// cryptographic digest would buy nothing here.
fn content_hash(bytes: &[u8]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016X}")
}

/// A custom resource's schema, from one served version of its CRD.
#[derive(Clone, Debug)]
pub(crate) struct CustomResourceSchema {
    pub resource: Resource,
    /// `spec.versions[].schema.openAPIV3Schema` of the CRD.
    pub schema: Value,
}

/// The v3 documents by root key (`api/v1`, `apis/apps/v1`).
#[derive(Debug, Default)]
pub(crate) struct OpenApiV3 {
    docs: BTreeMap<String, Arc<Document>>,
}

impl OpenApiV3 {
    /// The built-in group versions' documents, built once per process on first use.
    pub fn builtin() -> &'static OpenApiV3 {
        static BUILT: OnceLock<OpenApiV3> = OnceLock::new();
        BUILT.get_or_init(|| {
            let docs = builtin_group_versions()
                .into_iter()
                .map(|(g, v)| {
                    let served: Vec<&Resource> = BUILTIN
                        .iter()
                        .filter(|r| r.group == g && r.version == v)
                        .collect();
                    (
                        root_key(g, v),
                        Arc::new(Document::new(&group_version_document(&served, &[]))),
                    )
                })
                .collect();
            OpenApiV3 { docs }
        })
    }

    /// The built-in documents plus one per custom group version. Built-in documents are
    /// shared, so call this whenever the set of CRDs changes and swap the result in.
    pub fn with_custom(custom: &[CustomResourceSchema]) -> OpenApiV3 {
        let mut docs = Self::builtin().docs.clone();
        let mut by_gv: BTreeMap<(String, String), Vec<&CustomResourceSchema>> = BTreeMap::new();
        for c in custom {
            by_gv
                .entry((c.resource.group.to_string(), c.resource.version.to_string()))
                .or_default()
                .push(c);
        }
        for ((g, v), crs) in by_gv {
            docs.insert(
                root_key(&g, &v),
                Arc::new(Document::new(&group_version_document(&[], &crs))),
            );
        }
        OpenApiV3 { docs }
    }

    /// A group version's document by its root key, e.g. `apis/apps/v1`.
    pub fn group_version(&self, key: &str) -> Option<&Arc<Document>> {
        self.docs.get(key)
    }

    /// `GET /openapi/v3`: the documents of the group versions in `served`, by URL with hash.
    pub fn root(&self, served: &[Resource]) -> Value {
        let paths: Map<String, Value> = self
            .docs
            .iter()
            .filter(|(key, _)| {
                served
                    .iter()
                    .any(|r| &root_key(&r.group, &r.version) == *key)
            })
            .map(|(key, doc)| {
                (
                    key.clone(),
                    json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={}", doc.hash)}),
                )
            })
            .collect();
        json!({"paths": paths})
    }
}

/// `api/v1` for the core group, `apis/{group}/{version}` otherwise.
pub(crate) fn root_key(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// The content type OpenAPI documents are served with.
pub(crate) const JSON: &str = "application/json";
/// What client-go asks `/openapi/v2` for; it decodes any answer to it as protobuf.
pub(crate) const V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
/// The content type the protobuf v2 document is served with: Go's MIME parser rejects the
/// `@` of the requested type, so kube-apiserver answers with this spelling.
pub(crate) const V2_PROTOBUF_RESPONSE: &str =
    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// Answers a GET below `/openapi/` for the built-in documents: `(content type, body)`, or
/// `None` for 404. `path` may carry a query string; the `hash` is not checked because the
/// content behind a key only changes with the binary.
pub fn serve(path: &str, accept: &str, resources: &[Resource]) -> Option<(&'static str, Bytes)> {
    serve_with(OpenApiV3::builtin(), path, accept, resources)
}

/// [`serve`] with documents that may include custom resources.
pub(crate) fn serve_with(
    spec: &OpenApiV3,
    path: &str,
    accept: &str,
    resources: &[Resource],
) -> Option<(&'static str, Bytes)> {
    let path = path
        .split('?')
        .next()
        .unwrap_or_default()
        .trim_end_matches('/');
    if path == "/openapi/v2" {
        return v2::serve(accept);
    }
    if path == "/openapi/v3" {
        return Some((JSON, Bytes::from(spec.root(resources).to_string())));
    }
    let key = path.strip_prefix("/openapi/v3/")?;
    let served = resources
        .iter()
        .any(|r| root_key(&r.group, &r.version) == key);
    let doc = spec.group_version(key).filter(|_| served)?;
    Some((JSON, doc.bytes.clone()))
}

/// The subresources whose operations have a body of their own kind, with that kind's GVK;
/// the others (status, log, ...) read and write the parent kind.
fn subresource_kind(sub: &str) -> Option<(&'static str, &'static str, &'static str)> {
    Some(match sub {
        "scale" => ("autoscaling", "v1", "Scale"),
        "binding" => ("", "v1", "Binding"),
        "eviction" => ("policy", "v1", "Eviction"),
        "token" => ("authentication.k8s.io", "v1", "TokenRequest"),
        _ => return None,
    })
}

/// One group version's document from built-in resources and custom resources of that
/// group version (callers pass one or the other).
fn group_version_document(builtin: &[&Resource], custom: &[&CustomResourceSchema]) -> Value {
    let mut generator = schemas::generator();
    let meta = schemas::add_meta(&mut generator);
    let list_meta = schemas::add_list_meta(&mut generator);
    let mut path_map = Map::new();
    // (definition, group, version, kind) to mark once all definitions exist.
    let mut kinds: Vec<(String, Gvk)> = Vec::new();
    let mut lists: Vec<(String, Value)> = Vec::new();
    let mut custom_defs: Vec<(String, Value)> = Vec::new();

    let mut targets: Vec<(&Resource, Option<String>, bool)> = Vec::new();
    for r in builtin {
        let def =
            schemas::kind_schema(&r.group, &r.version, &r.kind).map(|add| add(&mut generator));
        targets.push((r, def, true));
    }
    if !custom.is_empty() {
        schemas::add_object_meta(&mut generator);
    }
    for c in custom {
        let r = &c.resource;
        let (name, schema) = crd_schema(&r.group, &r.version, &r.kind, &c.schema);
        custom_defs.push((name.clone(), schema));
        targets.push((r, Some(name), false));
    }

    for (r, def, strategic) in &targets {
        let own = Gvk::new(&r.group, &r.version, &r.kind);
        let list_def = def
            .as_ref()
            .filter(|_| r.verbs.contains(&"list"))
            .map(|d| format!("{d}List"));
        if let (Some(d), Some(l)) = (def, &list_def) {
            lists.push((l.clone(), schemas::list_schema(d, &r.kind, &list_meta)));
            kinds.push((
                l.clone(),
                Gvk::new(&r.group, &r.version, &format!("{}List", r.kind)),
            ));
        }
        if let Some(d) = def {
            kinds.push((d.clone(), own.clone()));
        }
        let mut subs: Vec<paths::SubTarget> = Vec::new();
        for sub in r.subresources.iter() {
            let (definition, gvk) = match subresource_kind(sub) {
                Some((g, v, k)) => {
                    let d = schemas::kind_schema(g, v, k).map(|add| add(&mut generator));
                    if let Some(d) = &d {
                        kinds.push((d.clone(), Gvk::new(g, v, k)));
                    }
                    (d, Gvk::new(g, v, k))
                }
                None => (def.clone(), own.clone()),
            };
            subs.push(paths::SubTarget {
                name: sub.to_string(),
                definition,
                gvk,
            });
        }
        let target = paths::Target {
            resource: r,
            definition: def.as_deref(),
            list_definition: list_def.as_deref(),
            strategic_merge: *strategic,
        };
        paths::add_paths(&mut path_map, &target, &subs, &meta);
    }

    let mut definitions = generator.take_definitions(true);
    definitions.extend(lists);
    definitions.extend(custom_defs);
    for (d, gvk) in &kinds {
        schemas::set_gvk(&mut definitions, d, gvk);
    }
    schemas::apply_patch_extensions(&mut definitions);
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": path_map,
        "components": {
            "schemas": definitions,
            "securitySchemes": {"BearerToken": {"type": "apiKey", "description": "Bearer Token authentication", "name": "authorization", "in": "header"}},
        },
    })
}

#[cfg(test)]
mod tests;

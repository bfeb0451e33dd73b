//! What the server serves: the built-in resource table plus one entry per served
//! version of every CustomResourceDefinition, rebuilt whenever a CRD changes.
//! Requests take a snapshot (`Arc<Table>`) and keep it for their whole life.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use apimachinery::crd::{CrdVersion, Structural};
use apimachinery::resources::{BUILTIN, Resource};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use crate::openapi::{CustomResourceSchema, OpenApiV3};

/// A served custom resource version and what handling it needs.
pub struct Custom {
    pub version: CrdVersion,
    pub schema: Structural,
}

pub struct Table {
    pub resources: Vec<Resource>,
    custom: HashMap<(String, String, String), Arc<Custom>>,
    pub(crate) openapi: Arc<OpenApiV3>,
}

impl Table {
    fn builtin() -> Table {
        Table {
            resources: BUILTIN.to_vec(),
            custom: HashMap::new(),
            openapi: Arc::new(OpenApiV3::default()),
        }
    }

    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<&Resource> {
        self.resources
            .iter()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
    }

    pub fn custom(&self, r: &Resource) -> Option<&Arc<Custom>> {
        self.custom.get(&(
            r.group.to_string(),
            r.version.to_string(),
            r.plural.to_string(),
        ))
    }

    /// OpenAPI documents: the built-in ones unless custom resources exist.
    pub(crate) fn openapi(&self) -> &OpenApiV3 {
        if self.custom.is_empty() {
            OpenApiV3::builtin()
        } else {
            &self.openapi
        }
    }
}

pub struct Registry {
    table: RwLock<Arc<Table>>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            table: RwLock::new(Arc::new(Table::builtin())),
        }
    }
}

impl Registry {
    pub fn table(&self) -> Arc<Table> {
        self.table.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Rebuilds the table from every CRD. A CRD whose names clash with a built-in
    /// or an earlier CRD is skipped (its status says why, once it is reported).
    pub fn rebuild(&self, crds: &[Value]) {
        let mut table = Table::builtin();
        let mut schemas = Vec::new();
        for crd in crds {
            if crd.pointer("/metadata/deletionTimestamp").is_some() {
                continue;
            }
            for v in apimachinery::crd::served_resources(crd) {
                if table.find(&v.group, &v.version, &v.plural).is_some() {
                    tracing::warn!(group = %v.group, plural = %v.plural, "CRD clashes with a served resource; skipped");
                    continue;
                }
                let resource = Resource::custom(&v);
                schemas.push(CustomResourceSchema {
                    resource: resource.clone(),
                    schema: v.schema.clone(),
                });
                let key = (v.group.clone(), v.version.clone(), v.plural.clone());
                let custom = Custom {
                    schema: Structural::new(&v.schema),
                    version: v,
                };
                table.custom.insert(key, Arc::new(custom));
                table.resources.push(resource);
            }
        }
        if !schemas.is_empty() {
            table.openapi = Arc::new(OpenApiV3::with_custom(&schemas));
        }
        *self.table.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(table);
    }
}

/// Keeps the registry in step with the CRDs in the cache and marks each served
/// CRD Established, as the apiextensions controllers do. Ends when the cache or
/// the registry is dropped.
pub async fn follow_crds(
    store: std::sync::Arc<dyn store::Store>,
    cache: std::sync::Weak<crate::cache::Cache>,
    registry: std::sync::Weak<Registry>,
) {
    let prefix = crate::keys::prefix("apiextensions.k8s.io/v1", "CustomResourceDefinition");
    loop {
        let (Some(c), Some(r)) = (cache.upgrade(), registry.upgrade()) else {
            return;
        };
        let Ok(start) = c.watch("customresourcedefinitions", &prefix, None, None) else {
            return;
        };
        let mut live = start.live;
        refresh(&*store, &c, &r).await;
        drop((c, r));
        // Closed means the cache reloaded: subscribe again.
        while let Ok(_) | Err(RecvError::Lagged(_)) = live.recv().await {
            let (Some(c), Some(r)) = (cache.upgrade(), registry.upgrade()) else {
                return;
            };
            refresh(&*store, &c, &r).await;
        }
    }
}

async fn refresh(store: &dyn store::Store, cache: &crate::cache::Cache, registry: &Registry) {
    let (_, entries) = cache.objects(&crate::keys::prefix(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
    ));
    let crds: Vec<Value> = entries.iter().filter_map(|e| e.value().ok()).collect();
    registry.rebuild(&crds);
    for crd in &crds {
        if crd.pointer("/metadata/deletionTimestamp").is_none() && !is_established(crd) {
            establish(store, crd).await;
        }
    }
}

fn is_established(crd: &Value) -> bool {
    apimachinery::json::array_ptr(crd, "/status/conditions")
        .iter()
        .any(|c| {
            apimachinery::json::str_at(c, "type") == "Established"
                && apimachinery::json::str_at(c, "status") == "True"
        })
}

async fn establish(store: &dyn store::Store, crd: &Value) {
    let Some(name) = apimachinery::json::str_ptr_opt(crd, "/metadata/name") else {
        return;
    };
    let key = crate::keys::of(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        None,
        name,
    );
    let Ok(Some(kv)) = store.get(&key, None).await else {
        return;
    };
    let Ok(mut stored) = serde_json::from_slice::<Value>(&kv.value) else {
        return;
    };
    let now = crate::clock::now_rfc3339();
    let storage: Vec<Value> = stored
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|v| apimachinery::json::bool_at(*v, "storage"))
        .filter_map(|v| v.get("name").cloned())
        .collect();
    let names = stored
        .pointer("/spec/names")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let Some(obj) = stored.as_object_mut() else {
        return;
    };
    obj.insert("status".into(), json!({
        "acceptedNames": names,
        "storedVersions": storage,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now},
        ],
    }));
    let Ok(bytes) = serde_json::to_vec(&stored) else {
        return;
    };
    // A lost race means someone else changed it; the next change event retries.
    let _ = store.update(&key, bytes.into(), kv.mod_revision).await;
}

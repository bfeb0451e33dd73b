//! RBAC objects for the authorizer, read from the watch cache.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use crate::auth::RbacSource;
use crate::cache::Cache;

/// Empty until the cache is loaded; then every RBAC read comes from memory.
#[derive(Default)]
pub struct CacheRbac {
    cache: OnceLock<Arc<Cache>>,
}

impl CacheRbac {
    pub fn set(&self, cache: Arc<Cache>) {
        let _ = self.cache.set(cache);
    }
}

impl RbacSource for CacheRbac {
    fn revision(&self, storage_resource: &str) -> i64 {
        self.cache
            .get()
            .map_or(0, |c| c.resource_revision(storage_resource))
    }

    fn objects(&self, storage_resource: &str) -> (i64, Vec<Bytes>) {
        let Some(cache) = self.cache.get() else {
            return (0, Vec::new());
        };
        let rev = cache.resource_revision(storage_resource);
        let (_, items) = cache.objects(&format!("/registry/{storage_resource}/"));
        (rev, items.iter().map(|e| e.json.clone()).collect())
    }
}

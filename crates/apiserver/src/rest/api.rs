//! The API state every request handler shares (store, watch cache, allocator,
//! served resources, authentication and authorization), how it starts, and
//! where a resource request is routed.

use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use store::Store;

use super::request::RequestInfo;
use super::{Call, Query, Warnings, options, read, reviews, strategy, watch, write};
use crate::cache::Cache;
use crate::error::{ApiError, ApiResult};

/// Everything a request handler needs.
pub struct Api {
    pub store: Arc<dyn Store>,
    pub cache: Arc<Cache>,
    pub alloc: crate::alloc::Allocator,
    pub registry: Arc<crate::registry::Registry>,
    pub config: ApiConfig,
    pub authn: Arc<crate::auth::Authenticator>,
    pub authz: Arc<crate::auth::Authorizer>,
}

/// Cluster settings the handlers need.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    pub service_cidr: crate::alloc::Cidr,
}

impl Api {
    /// Loads the watch cache from the store and creates the objects every cluster
    /// starts with.
    pub async fn start(
        store: Arc<dyn Store>,
        config: ApiConfig,
        authn: Arc<crate::auth::Authenticator>,
        authz: Arc<crate::auth::Authorizer>,
    ) -> ApiResult<Arc<Api>> {
        let cache = Cache::start(store.clone()).await?;
        let alloc = crate::alloc::Allocator::new(store.clone(), cache.clone(), config.service_cidr);
        crate::bootstrap::ensure(&*store, &cache, &alloc).await?;
        let api = Arc::new(Api {
            store,
            cache,
            alloc,
            registry: Default::default(),
            config,
            authn,
            authz,
        });
        tokio::spawn(crate::registry::follow_crds(
            api.store.clone(),
            Arc::downgrade(&api.cache),
            Arc::downgrade(&api.registry),
        ));
        Ok(api)
    }

    /// Waits until the cache reflects every write acknowledged so far, so reads
    /// served from memory are as fresh as reads from the store.
    pub async fn consistent(&self) -> ApiResult<()> {
        let rev = self.store.current_revision().await?;
        self.cache.wait_for(rev, Duration::from_secs(10)).await
    }

    /// Serves one resource request.
    pub async fn serve(
        &self,
        user: &crate::auth::UserInfo,
        info: &RequestInfo,
        query: &Query,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Response {
        let table = self.registry.table();
        let Some(resource) = table.find(&info.group, &info.version, &info.resource) else {
            return ApiError::NotFound {
                message: "the server could not find the requested resource".into(),
                kind: info.resource.clone(),
                group: info.group.clone(),
                name: info.name.clone(),
            }
            .into_response();
        };
        let custom = table.custom(resource).map(|c| &**c);
        let warnings = Warnings::default();
        let call = Call {
            info,
            custom,
            user,
            resource,
            strategy: strategy::for_resource(resource, custom.is_some()),
            query,
            headers,
            body,
            warnings: &warnings,
        };
        if let Err(e) = options::check(&call) {
            return e.into_response();
        }
        let mut resp = self.route(&call).await;
        warnings.write_to(resp.headers_mut());
        resp
    }

    async fn route(&self, call: &Call<'_>) -> Response {
        let (info, resource) = (call.info, call.resource);
        if !info.subresource.is_empty() && !resource.has_subresource(&info.subresource) {
            return ApiError::NotFound {
                message: "the server could not find the requested resource".into(),
                kind: resource.plural.to_string(),
                group: resource.group.to_string(),
                name: info.name.clone(),
            }
            .into_response();
        }
        if info.subresource.is_empty() && !resource.verbs.contains(&info.verb.as_str()) {
            return ApiError::MethodNotAllowed(format!(
                "the server does not allow this method on the requested resource ({})",
                info.verb
            ))
            .into_response();
        }
        let result = match (info.verb.as_str(), info.subresource.as_str()) {
            ("create", "") if resource.is_virtual() => reviews::create(self, call).await,
            ("create", "token") if resource.plural == "serviceaccounts" => {
                reviews::service_account_token(self, call).await
            }
            ("get", "") => read::get(self, call).await,
            ("get", "status") => read::get(self, call).await,
            ("get", "scale") => write::get_scale(self, call).await,
            ("list", _) => read::list(self, call).await,
            ("watch", _) => {
                return watch::watch(self, call)
                    .await
                    .unwrap_or_else(IntoResponse::into_response);
            }
            ("create", "") => write::create(self, call).await,
            ("create", "binding") => write::bind(self, call).await,
            ("create", "eviction") => write::evict(self, call).await,
            ("update" | "patch", "" | "status" | "finalize" | "ephemeralcontainers") => {
                write::update_or_patch(self, call).await
            }
            ("update" | "patch", "scale") => write::update_scale(self, call).await,
            ("delete", "") => write::delete(self, call).await,
            ("deletecollection", "") => write::delete_collection(self, call).await,
            (verb, sub) => Err(ApiError::MethodNotAllowed(if sub.is_empty() {
                format!("the server does not allow this method on the requested resource ({verb})")
            } else {
                format!(
                    "the server does not allow {verb} on subresource {sub} of {}",
                    resource.plural
                )
            })),
        };
        result.unwrap_or_else(IntoResponse::into_response)
    }
}

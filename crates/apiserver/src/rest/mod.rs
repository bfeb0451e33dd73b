//! One generic REST handler for every resource (Kubernetes' `registry/generic`):
//! routing by the resource table, per-kind behaviour in [`strategy`].

pub mod custom;
pub mod node_restriction;
pub mod options;
pub mod patch;
pub mod read;
pub mod request;
pub mod reviews;
pub mod strategy;
pub mod tables;
pub mod watch;
pub mod write;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use apimachinery::resources::Resource;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::Value;
use store::Store;

use crate::cache::Cache;
use crate::error::{ApiError, ApiResult};
use request::RequestInfo;

/// Largest request body accepted, as Kubernetes' 3 MiB limit.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

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

/// The decoded query string.
pub type Query = HashMap<String, String>;

/// A request that names a resource, after routing and authorization.
pub struct Call<'a> {
    pub info: &'a RequestInfo,
    /// Schema and printing of a custom resource; `None` for built-ins.
    pub custom: Option<&'a crate::registry::Custom>,
    pub user: &'a crate::auth::UserInfo,
    pub resource: &'a Resource,
    /// The resource's per-kind behaviour, looked up once per request.
    pub strategy: &'static dyn strategy::Strategy,
    pub query: &'a Query,
    pub headers: &'a HeaderMap,
    pub body: Bytes,
    /// Warnings for the client, sent as `Warning: 299` headers with the response.
    pub warnings: &'a Warnings,
}

/// Warnings gathered while serving one request (unknown fields dropped, ...).
#[derive(Default)]
pub struct Warnings(std::sync::Mutex<Vec<String>>);

impl Warnings {
    pub fn add(&self, text: String) {
        if let Ok(mut w) = self.0.lock() {
            w.push(text);
        }
    }

    /// Adds a `Warning: 299 - "text"` header per warning, as Kubernetes does.
    fn write_to(&self, headers: &mut HeaderMap) {
        let Ok(w) = self.0.lock() else {
            return;
        };
        for text in w.iter() {
            let escaped = text.replace('\\', "\\\\").replace('"', "\\\"");
            if let Ok(v) = HeaderValue::from_str(&format!("299 - \"{escaped}\"")) {
                headers.append(header::WARNING, v);
            }
        }
    }
}

impl Call<'_> {
    pub fn namespace(&self) -> Option<&str> {
        if self.resource.namespaced && !self.info.namespace.is_empty() {
            Some(&self.info.namespace)
        } else {
            None
        }
    }

    pub fn q(&self, name: &str) -> Option<&str> {
        self.query
            .get(name)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    pub fn dry_run(&self) -> bool {
        self.q("dryRun") == Some("All")
    }

    pub fn content_type(&self) -> &str {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json")
    }

    pub fn accept(&self) -> &str {
        self.headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json")
    }

    /// Whether the client asked for metadata only
    /// (`as=PartialObjectMetadata` or `as=PartialObjectMetadataList`).
    pub fn wants_metadata_only(&self) -> bool {
        self.accept().contains("as=PartialObjectMetadata")
    }

    /// The label and field selectors of a list, watch or deletecollection.
    pub fn selectors(&self) -> ApiResult<crate::selectors::Selectors> {
        crate::selectors::Selectors::parse(
            self.q("labelSelector"),
            self.q("fieldSelector"),
            &self.resource.storage_resource(),
        )
    }

    /// Kubernetes' `not found` error for this call's resource and `name`.
    pub fn not_found(&self, name: &str) -> ApiError {
        ApiError::not_found(&self.resource.group, &self.resource.plural, name)
    }
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

/// A JSON response from already-serialized bytes.
pub fn json_bytes(code: StatusCode, body: impl Into<Body>) -> Response {
    let mut resp = Response::new(body.into());
    *resp.status_mut() = code;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

pub fn json_value(code: StatusCode, v: &Value) -> ApiResult<Response> {
    let bytes = serde_json::to_vec(v)
        .map_err(|e| ApiError::internal_from("encoding the response failed", e))?;
    Ok(json_bytes(code, bytes))
}

/// Decodes a request body: JSON, or YAML when the content type says so.
pub fn decode_body(body: &[u8], content_type: &str) -> ApiResult<Value> {
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::TooLarge(
            "the request body is larger than 3 MiB".into(),
        ));
    }
    if content_type.starts_with(crate::protobuf::CONTENT_TYPE) {
        return crate::protobuf::decode(body).map_err(|e| {
            ApiError::BadRequest(format!("the request body could not be decoded: {e}"))
        });
    }
    // Both decoders bound nesting depth (and YAML alias expansion) before the
    // work grows with it, so one body cannot stall the server.
    let v: Value = if content_type.contains("yaml") {
        apimachinery::decode::yaml(body)
            .map_err(|e| ApiError::BadRequest(format!("error decoding YAML: {e}")))?
    } else {
        apimachinery::decode::json(body).map_err(|e| {
            ApiError::BadRequest(format!(
                "the request body could not be decoded: json: {e}; expected a JSON object"
            ))
        })?
    };
    if !v.is_object() {
        return Err(ApiError::BadRequest(
            "the request body must be a JSON object".into(),
        ));
    }
    Ok(v)
}

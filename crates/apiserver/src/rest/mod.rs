//! One generic REST handler for every resource (Kubernetes' `registry/generic`):
//! routing by the resource table, per-kind behaviour in [`strategy`].

mod api;
pub(crate) mod custom;
pub(crate) mod node_restriction;
pub(crate) mod options;
pub(crate) mod patch;
pub(crate) mod read;
pub mod request;
pub(crate) mod reviews;
pub(crate) mod strategy;
pub(crate) mod tables;
pub(crate) mod watch;
pub(crate) mod write;

use std::collections::HashMap;

use apimachinery::resources::Resource;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use request::RequestInfo;

/// Largest request body accepted, as Kubernetes' 3 MiB limit.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

pub use api::{Api, ApiConfig};

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

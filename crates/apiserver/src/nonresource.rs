//! Requests that name no resource: discovery, OpenAPI, version, metrics.

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::discovery::{self, DiscoveryRoot};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::rest::{Api, json_bytes, json_value};
use serde_json::{Value, json};

/// The Kubernetes version this server reports.
pub const KUBE_VERSION: &str = "v1.33.0";

/// Serves a non-resource path; `server_url` is this server's own address, as
/// `/api` reports it.
pub async fn serve(
    metrics: &Metrics,
    server_url: &str,
    api: &Api,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return ApiError::MethodNotAllowed(format!("{method} is not allowed on {path}"))
            .into_response();
    }
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let table = api.registry.table();
    let resources = &table.resources;
    let trimmed = path.trim_end_matches('/');
    let parts: Vec<&str> = trimmed.split('/').filter(|p| !p.is_empty()).collect();
    let result = match parts.as_slice() {
        ["version"] => return version_response(),
        ["metrics"] => return metrics.render(),
        ["api"] | ["apis"] => {
            let root = if parts[0] == "api" {
                DiscoveryRoot::Core
            } else {
                DiscoveryRoot::Groups
            };
            if let Some(v) = discovery::wants_aggregated(accept) {
                let doc = discovery::aggregated_discovery(root, v, resources);
                let mut r =
                    json_value(StatusCode::OK, &doc).unwrap_or_else(IntoResponse::into_response);
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(v.content_type()),
                );
                return r;
            }
            match root {
                DiscoveryRoot::Core => {
                    json_value(StatusCode::OK, &discovery::api_versions(server_url))
                }
                DiscoveryRoot::Groups => {
                    json_value(StatusCode::OK, &discovery::api_group_list(resources))
                }
            }
        }
        ["api", version] => discovery::api_resource_list("", version, resources)
            .map(|v| json_value(StatusCode::OK, &v))
            .unwrap_or(Err(not_found())),
        ["apis", group] => discovery::api_group(group, resources)
            .map(|v| json_value(StatusCode::OK, &v))
            .unwrap_or(Err(not_found())),
        ["apis", group, version] => discovery::api_resource_list(group, version, resources)
            .map(|v| json_value(StatusCode::OK, &v))
            .unwrap_or(Err(not_found())),
        ["openapi", ..] => crate::openapi::serve_with(table.openapi(), path, accept, resources)
            .map(|(ct, body)| {
                let mut r = json_bytes(StatusCode::OK, body);
                if let Ok(v) = HeaderValue::from_str(ct) {
                    r.headers_mut().insert(header::CONTENT_TYPE, v);
                }
                r
            })
            .ok_or_else(not_found),
        _ => Err(not_found()),
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

fn not_found() -> ApiError {
    ApiError::NotFound {
        message: "the server could not find the requested resource".into(),
        kind: String::new(),
        group: String::new(),
        name: String::new(),
    }
}

/// `/version` as Kubernetes reports it.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": KUBE_VERSION,
        "gitCommit": "flotilla",
        "gitTreeState": "clean",
        "buildDate": "2026-11-28T00:00:00Z",
        "goVersion": "rust",
        "compiler": "rustc",
        "platform": format!("linux/{}", std::env::consts::ARCH),
    })
}

pub fn version_response() -> Response {
    json_value(StatusCode::OK, &version()).unwrap_or_else(IntoResponse::into_response)
}

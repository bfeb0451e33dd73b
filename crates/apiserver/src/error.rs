//! API errors, answered as Kubernetes `metav1.Status` objects.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use store::StoreError;

/// One field-level cause inside an Invalid status.
#[derive(Clone, Debug)]
pub struct Cause {
    pub reason: String,
    pub message: String,
    pub field: String,
}

/// An error a client sees, with the HTTP code and Kubernetes reason it maps to.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    NotFound {
        message: String,
        kind: String,
        group: String,
        name: String,
    },
    #[error("{message}")]
    AlreadyExists {
        message: String,
        kind: String,
        group: String,
        name: String,
    },
    #[error("{message}")]
    Conflict {
        message: String,
        kind: String,
        group: String,
        name: String,
    },
    #[error("{message}")]
    Invalid {
        message: String,
        kind: String,
        group: String,
        name: String,
        causes: Vec<Cause>,
    },
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Gone(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    NotAcceptable(String),
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    TooManyRequests(String),
    #[error("{0}")]
    Unavailable(String),
    /// A fault of the server (a corrupt stored object, a store failure), with
    /// the error that caused it kept for logs.
    #[error("{message}")]
    Internal {
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl ApiError {
    /// A server fault described by `message` alone.
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::Internal {
            message: message.into(),
            source: None,
        }
    }

    /// A server fault caused by `source`: the message says what failed and why.
    pub fn internal_from(
        what: &str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        ApiError::Internal {
            message: format!("{what}: {source}"),
            source: Some(Box::new(source)),
        }
    }

    pub fn not_found(group: &str, plural: &str, name: &str) -> Self {
        ApiError::NotFound {
            message: format!("{} \"{}\" not found", qualified(group, plural), name),
            kind: plural.to_string(),
            group: group.to_string(),
            name: name.to_string(),
        }
    }

    pub fn already_exists(group: &str, plural: &str, name: &str) -> Self {
        ApiError::AlreadyExists {
            message: format!("{} \"{}\" already exists", qualified(group, plural), name),
            kind: plural.to_string(),
            group: group.to_string(),
            name: name.to_string(),
        }
    }

    /// The optimistic-concurrency failure kubectl and controllers retry on.
    pub fn conflict(group: &str, plural: &str, name: &str, why: &str) -> Self {
        ApiError::Conflict {
            message: format!(
                "Operation cannot be fulfilled on {} \"{}\": {}",
                qualified(group, plural),
                name,
                why
            ),
            kind: plural.to_string(),
            group: group.to_string(),
            name: name.to_string(),
        }
    }

    pub fn stale(group: &str, plural: &str, name: &str) -> Self {
        Self::conflict(
            group,
            plural,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 422 with one cause per field, phrased as Kubernetes does.
    pub fn invalid(group: &str, kind: &str, name: &str, causes: Vec<Cause>) -> Self {
        let list: Vec<&str> = causes.iter().map(|c| c.message.as_str()).collect();
        let joined = if list.len() == 1 {
            list[0].to_string()
        } else {
            format!("[{}]", list.join(", "))
        };
        ApiError::Invalid {
            message: format!(
                "{} \"{}\" is invalid: {}",
                qualified_kind(group, kind),
                name,
                joined
            ),
            kind: kind.to_string(),
            group: group.to_string(),
            name: name.to_string(),
            causes,
        }
    }

    fn code_reason(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::NotFound { .. } => (StatusCode::NOT_FOUND, "NotFound"),
            ApiError::AlreadyExists { .. } => (StatusCode::CONFLICT, "AlreadyExists"),
            ApiError::Conflict { .. } => (StatusCode::CONFLICT, "Conflict"),
            ApiError::Invalid { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "Invalid"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "BadRequest"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "Unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "Forbidden"),
            ApiError::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed"),
            ApiError::Gone(_) => (StatusCode::GONE, "Expired"),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "RequestEntityTooLarge"),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "UnsupportedMediaType")
            }
            ApiError::NotAcceptable(_) => (StatusCode::NOT_ACCEPTABLE, "NotAcceptable"),
            ApiError::Timeout(_) => (StatusCode::GATEWAY_TIMEOUT, "Timeout"),
            ApiError::TooManyRequests(_) => (StatusCode::TOO_MANY_REQUESTS, "TooManyRequests"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable"),
            ApiError::Internal { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "InternalError"),
        }
    }

    pub fn code(&self) -> StatusCode {
        self.code_reason().0
    }

    /// The `metav1.Status` body for this error.
    pub fn status(&self) -> Value {
        let (code, reason) = self.code_reason();
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": reason,
            "code": code.as_u16(),
        });
        let details = match self {
            ApiError::NotFound {
                kind, group, name, ..
            }
            | ApiError::AlreadyExists {
                kind, group, name, ..
            }
            | ApiError::Conflict {
                kind, group, name, ..
            } => Some(json!({"name": name, "group": group, "kind": kind})),
            ApiError::Invalid {
                kind,
                group,
                name,
                causes,
                ..
            } => Some(json!({
                "name": name, "group": group, "kind": kind,
                "causes": causes.iter().map(|c| json!({
                    "reason": c.reason, "message": c.message, "field": c.field
                })).collect::<Vec<_>>(),
            })),
            _ => None,
        };
        if let Some(d) = details {
            status["details"] = d;
        }
        status
    }
}

fn qualified(group: &str, plural: &str) -> String {
    if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    }
}

fn qualified_kind(group: &str, kind: &str) -> String {
    if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = self.code();
        // 503 while starting or while the store is away is expected and reported
        // by /readyz; logging each would flood the log.
        if code.is_server_error() && !matches!(self, ApiError::Unavailable(_)) {
            tracing::warn!(error = %self, "request failed");
        }
        let body = serde_json::to_vec(&self.status()).unwrap_or_default();
        let mut resp = (code, body).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        resp
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Compacted { .. } => ApiError::Gone(format!(
                "The resourceVersion for the provided list is too old: {e}"
            )),
            StoreError::ValueTooLarge { .. } => {
                ApiError::TooLarge(format!("Request entity too large: {e}"))
            }
            StoreError::Unavailable(m) => {
                ApiError::Unavailable(format!("storage is unavailable: {m}"))
            }
            other => ApiError::internal_from("the store failed", other),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod source_tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn internal_errors_keep_their_source() {
        let cause = serde_json::from_str::<Value>("{").unwrap_err();
        let e = ApiError::internal_from("stored object is corrupt", cause);
        assert_eq!(e.code(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            e.to_string().starts_with("stored object is corrupt: EOF"),
            "{e}"
        );
        assert!(e.source().is_some_and(|s| s.to_string().contains("EOF")));
        let store = ApiError::from(StoreError::Internal("disk".into()));
        assert!(store.source().is_some());
        assert_eq!(store.status()["reason"], "InternalError");
    }
}

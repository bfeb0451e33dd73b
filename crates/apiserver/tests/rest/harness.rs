//! An API server over a temp SQLite store, called in-process as an admin.

use std::sync::Arc;

use apiserver::auth::{Authenticator, Authorizer, UserInfo};
use apiserver::pki::{Pki, ServerSans};
use apiserver::rbac_source::CacheRbac;
use apiserver::rest::{Api, ApiConfig, Query, request};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use bytes::Bytes;
use futures::StreamExt;
use serde_json::{Value, json};

pub struct Harness {
    pub api: Arc<Api>,
    _dir: tempfile::TempDir,
    admin: UserInfo,
}

pub async fn harness() -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store::open(None, dir.path()).await.expect("store");
    let pki = Pki::load_or_create(&dir.path().join("tls"), &ServerSans::default()).expect("pki");
    let authn = Arc::new(Authenticator::new(pki.service_account_key_pem(), None).expect("authn"));
    let rbac = Arc::new(CacheRbac::default());
    let authz = Arc::new(Authorizer::new(rbac.clone()));
    let config = ApiConfig {
        service_cidr: "10.43.0.0/24".parse().expect("cidr"),
    };
    let api = Api::start(store, config, authn, authz).await.expect("api");
    rbac.set(api.cache.clone());
    let admin = UserInfo {
        name: "admin".into(),
        groups: vec!["system:masters".into()],
        ..Default::default()
    };
    Harness {
        api,
        _dir: dir,
        admin,
    }
}

impl Harness {
    pub async fn call(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Value>,
        content_type: &str,
    ) -> (StatusCode, Value) {
        let resp = self
            .raw(
                method,
                path_and_query,
                body.map(|b| Bytes::from(b.to_string())),
                content_type,
            )
            .await;
        let code = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("body");
        let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (code, v)
    }

    pub async fn raw(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Bytes>,
        content_type: &str,
    ) -> axum::response::Response {
        self.raw_accepting(method, path_and_query, body, content_type, None)
            .await
    }

    pub async fn raw_accepting(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Bytes>,
        content_type: &str,
        accept: Option<&str>,
    ) -> axum::response::Response {
        let uri: axum::http::Uri = path_and_query.parse().expect("uri");
        let query: Query = axum::extract::Query::<Query>::try_from_uri(&uri)
            .map(|q| q.0)
            .unwrap_or_default();
        let watch = query.get("watch").is_some_and(|w| w == "true");
        let info = request::parse(&method, uri.path(), watch);
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(content_type).expect("ct"),
        );
        if let Some(a) = accept {
            headers.insert(header::ACCEPT, HeaderValue::from_str(a).expect("accept"));
        }
        self.api
            .serve(
                &self.admin,
                &info,
                &query,
                &headers,
                body.unwrap_or_default(),
            )
            .await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None, "application/json").await
    }
    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body), "application/json")
            .await
    }
    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PUT, path, Some(body), "application/json")
            .await
    }
    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::DELETE, path, None, "application/json")
            .await
    }
}

pub fn cm(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"a": "1"}})
}

pub const CMS: &str = "/api/v1/namespaces/default/configmaps";

pub async fn watch_lines(h: &Harness, path: &str, want: usize) -> Vec<Value> {
    watch_lines_accepting(h, path, want, None).await
}

pub async fn watch_lines_accepting(
    h: &Harness,
    path: &str,
    want: usize,
    accept: Option<&str>,
) -> Vec<Value> {
    let resp = h
        .raw_accepting(Method::GET, path, None, "application/json", accept)
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let mut stream = resp.into_body().into_data_stream();
    let mut buf = Vec::new();
    let mut out = Vec::new();
    while out.len() < want {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), stream.next())
            .await
            .expect("watch event in time")
            .expect("stream open")
            .expect("chunk");
        buf.extend_from_slice(&chunk);
        while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            out.push(serde_json::from_slice(&line).expect("event JSON"));
        }
    }
    out
}

/// Waits until a custom resource's definition is served, and returns its resource.
pub async fn served(
    h: &Harness,
    group: &str,
    version: &str,
    plural: &str,
) -> apimachinery::resources::Resource {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Some(r) = h.api.registry.table().find(group, version, plural) {
            return r.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{plural}.{group}/{version} is not served 10 s after its definition was created"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

//! A thin HTTPS client over kube's: the admin kubeconfig gives TLS and the client
//! certificate; requests and bodies are raw so the benchmark times the server, not
//! decoding into typed objects.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::BodyExt;
use kube::client::Body;

#[derive(Clone)]
pub struct ApiClient {
    client: kube::Client,
}

/// A finished request: status, body and how long it took to the last byte.
pub struct Reply {
    pub status: u16,
    pub body: Bytes,
    pub elapsed: Duration,
}

impl Reply {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The server's message for a failed request, short enough to print.
    pub fn error_text(&self) -> String {
        let msg = serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v.get("message")?.as_str().map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&self.body).into_owned());
        let mut s = format!("{}: {msg}", self.status);
        s.truncate(300);
        s
    }
}

impl ApiClient {
    pub async fn connect(kubeconfig: &Path) -> anyhow::Result<ApiClient> {
        let kc = kube::config::Kubeconfig::read_from(kubeconfig)
            .with_context(|| format!("reading {}", kubeconfig.display()))?;
        let mut config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
        // Listing 150k pods takes longer than kube's default to the first byte.
        config.read_timeout = Some(Duration::from_secs(600));
        let client = kube::Client::try_from(config)?;
        Ok(ApiClient { client })
    }

    /// Sends a request and returns the response with its body not yet read.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<Response<Body>> {
        let mut req = Request::builder().method(method).uri(path);
        if body.is_some() {
            req = req.header(http::header::CONTENT_TYPE, "application/json");
        }
        let req = req.body(Body::from(body.unwrap_or_default()))?;
        Ok(self.client.send(req).await?)
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<Reply> {
        let started = Instant::now();
        let resp = self.send(method, path, body).await?;
        let status = resp.status().as_u16();
        let body = read_body(resp, path).await?;
        Ok(Reply {
            status,
            body,
            elapsed: started.elapsed(),
        })
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Reply> {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Vec<u8>) -> anyhow::Result<Reply> {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Vec<u8>) -> anyhow::Result<Reply> {
        self.call(Method::PUT, path, Some(body)).await
    }
}

/// The whole body of a response to a request for `path`.
pub async fn read_body(resp: Response<Body>, path: &str) -> anyhow::Result<bytes::Bytes> {
    Ok(resp
        .into_body()
        .collect()
        .await
        .map_err(|e| anyhow::anyhow!("reading the response of {path}: {e}"))?
        .to_bytes())
}

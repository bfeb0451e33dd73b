//! The image of a container before it starts, as the kubelet's image
//! manager sees to it: `imagePullPolicy` (`Always`, `IfNotPresent`, `Never`;
//! when unset, `Always` for `:latest` or no tag, else `IfNotPresent`), the
//! Events `Pulling`, `Pulled`, `Failed` and `BackOff`, and the waiting
//! reasons `ErrImagePull`, `ImagePullBackOff` (10 s doubling to 5 min per
//! image) and `ErrImageNeverPull`.
//!
//! The pull runs as a task of its own (shared with any other pod pulling the
//! same image); the pod's worker is woken when it ends, so it keeps handling
//! its pod (a deletion, say) meanwhile.
//!
//! One departure: an image imported from an archive ([`Image::pinned`]) is
//! not re-resolved against its registry under `Always`, so that air-gapped
//! nodes run the images they were given.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use k8s_openapi::api::core::v1::{Container, Pod, Secret};
use kube::api::Api;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::events::Kind;
use super::{Msg, Shared};
use crate::images::{Credentials, ImageError, Pulled, Reference};

/// The first delay after a failed pull; it doubles up to [`MAX_BACKOFF`].
const INITIAL_BACKOFF: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// How long `ErrImagePull` shows before `ImagePullBackOff` does.
const SHOW_ERROR: Duration = Duration::from_secs(5);

/// What the container's start should do.
pub(super) enum Ensure {
    /// The image is present: create the container.
    Ready,
    /// Not yet: show `waiting` (unchanged when `None`) and look again after
    /// `retry` (or when woken).
    Wait {
        waiting: Option<(String, String)>,
        retry: Option<Duration>,
    },
}

type PullResult = (Result<Pulled, Arc<ImageError>>, Duration);

/// The pulls of one pod's images.
#[derive(Default)]
pub(super) struct Pulls {
    by_image: HashMap<String, State>,
}

#[derive(Default)]
struct State {
    task: Option<JoinHandle<PullResult>>,
    backoff: Option<Backoff>,
}

struct Backoff {
    failed_at: Instant,
    delay: Duration,
    /// The failure, for the waiting message.
    error: String,
    announced: bool,
}

impl Drop for Pulls {
    fn drop(&mut self) {
        // The shared pull goes on for others; this pod stops waiting.
        for s in self.by_image.values() {
            if let Some(t) = &s.task {
                t.abort();
            }
        }
    }
}

/// The container's pull policy, defaulted as the API server does.
pub(super) fn pull_policy(c: &Container) -> &str {
    if let Some(p) = c.image_pull_policy.as_deref().filter(|p| !p.is_empty()) {
        return p;
    }
    let image = c.image.as_deref().unwrap_or_default();
    match Reference::parse(image) {
        Ok(r) if r.digest().is_some() => "IfNotPresent",
        Ok(r) if r.tag() == Some("latest") => "Always",
        Ok(_) => "IfNotPresent",
        Err(_) => "IfNotPresent",
    }
}

impl Pulls {
    /// Sees to the image of `c`: present as the policy wants it, a pull
    /// started or finished, or a back-off.
    pub async fn ensure(
        &mut self,
        shared: &Shared,
        pod: &Pod,
        c: &Container,
        tx: &mpsc::WeakUnboundedSender<Msg>,
    ) -> Ensure {
        let image = c.image.clone().unwrap_or_default();
        let policy = pull_policy(c);
        let event = |kind, reason: &str, message: String| {
            shared
                .events
                .emit(pod, Some(&c.name), kind, reason, message)
        };
        let present = shared.puller.store().get(&image);
        let state = self.by_image.entry(image.clone()).or_default();
        if let Some(task) = state.task.take_if(|t| t.is_finished()) {
            let (result, waited) = task.await.unwrap_or_else(|e| {
                let err = ImageError::RegistryUnreachable {
                    registry: String::new(),
                    reason: format!("the pull stopped: {e}"),
                };
                (Err(Arc::new(err)), Duration::ZERO)
            });
            return match result {
                Ok(pulled) => {
                    state.backoff = None;
                    event(
                        Kind::Normal,
                        "Pulled",
                        format!(
                            "Successfully pulled image \"{image}\" in {} ({} including waiting). \
                             Image size: {} bytes.",
                            go_duration(pulled.duration),
                            go_duration(waited),
                            pulled.image.size
                        ),
                    );
                    Ensure::Ready
                }
                Err(e) => {
                    let delay = state
                        .backoff
                        .as_ref()
                        .map_or(INITIAL_BACKOFF, |b| (b.delay * 2).min(MAX_BACKOFF));
                    let message = format!("Failed to pull image \"{image}\": {e}");
                    event(Kind::Warning, "Failed", message.clone());
                    event(Kind::Warning, "Failed", "Error: ErrImagePull".into());
                    state.backoff = Some(Backoff {
                        failed_at: Instant::now(),
                        delay,
                        error: message.clone(),
                        announced: false,
                    });
                    Ensure::Wait {
                        waiting: Some(("ErrImagePull".into(), message)),
                        retry: Some(SHOW_ERROR.min(delay)),
                    }
                }
            };
        }
        if state.task.is_some() {
            return Ensure::Wait {
                waiting: None,
                retry: None,
            };
        }
        let wanted = match (policy, &present) {
            ("Never", None) => {
                let message =
                    format!("Container image \"{image}\" is not present with pull policy of Never");
                event(Kind::Warning, "ErrImageNeverPull", message.clone());
                return Ensure::Wait {
                    waiting: Some(("ErrImageNeverPull".into(), message)),
                    retry: Some(INITIAL_BACKOFF),
                };
            }
            ("Always", Some(i)) => !i.pinned,
            (_, Some(_)) => false,
            (_, None) => true,
        };
        if !wanted {
            event(
                Kind::Normal,
                "Pulled",
                format!("Container image \"{image}\" already present on machine"),
            );
            return Ensure::Ready;
        }
        if let Some(b) = &mut state.backoff {
            let since = b.failed_at.elapsed();
            if since < SHOW_ERROR.min(b.delay) {
                return Ensure::Wait {
                    waiting: Some(("ErrImagePull".into(), b.error.clone())),
                    retry: Some(SHOW_ERROR.min(b.delay) - since),
                };
            }
            if since < b.delay {
                let message = format!("Back-off pulling image \"{image}\"");
                if !b.announced {
                    b.announced = true;
                    event(Kind::Normal, "BackOff", message.clone());
                }
                return Ensure::Wait {
                    waiting: Some((
                        "ImagePullBackOff".into(),
                        format!("{message}: ErrImagePull: {}", b.error),
                    )),
                    retry: Some(b.delay - since),
                };
            }
        }
        event(
            Kind::Normal,
            "Pulling",
            format!("Pulling image \"{image}\""),
        );
        let credentials = credentials_for(shared, pod, &image).await;
        let puller = shared.puller.clone();
        let tx = tx.clone();
        state.task = Some(tokio::spawn(async move {
            let start = Instant::now();
            let result = puller.pull(&image, credentials.as_ref()).await;
            if let Some(tx) = tx.upgrade() {
                let _ = tx.send(Msg::Wake);
            }
            (result, start.elapsed())
        }));
        Ensure::Wait {
            waiting: None,
            retry: None,
        }
    }
}

/// The credentials the pod's `imagePullSecrets` hold for the image's
/// registry (`kubernetes.io/dockerconfigjson` or `kubernetes.io/dockercfg`).
async fn credentials_for(shared: &Shared, pod: &Pod, image: &str) -> Option<Credentials> {
    let registry = Reference::parse(image).ok()?.domain().to_string();
    let names = pod.spec.as_ref()?.image_pull_secrets.as_ref()?;
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let secrets: Api<Secret> = Api::namespaced(shared.client.clone(), ns);
    for name in names.iter().map(|r| r.name.as_str()) {
        let secret = match secrets.get(name).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(pod = ?pod.metadata.name, secret = name, error = %e, "reading an image pull secret");
                continue;
            }
        };
        let data = secret.data.unwrap_or_default();
        let config = data
            .get(".dockerconfigjson")
            .map(|b| (b, true))
            .or_else(|| data.get(".dockercfg").map(|b| (b, false)));
        if let Some((bytes, wrapped)) = config
            && let Some(c) = docker_config_credentials(&bytes.0, wrapped, &registry)
        {
            return Some(c);
        }
    }
    None
}

/// The entry of a Docker config (`{"auths": {...}}` when `wrapped`, the
/// bare map of `.dockercfg` otherwise) for `registry`.
fn docker_config_credentials(bytes: &[u8], wrapped: bool, registry: &str) -> Option<Credentials> {
    #[derive(serde::Deserialize, Default)]
    struct Entry {
        #[serde(default)]
        username: Option<String>,
        #[serde(default)]
        password: Option<String>,
        #[serde(default)]
        auth: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Config {
        #[serde(default)]
        auths: HashMap<String, Entry>,
    }
    let auths: HashMap<String, Entry> = if wrapped {
        serde_json::from_slice::<Config>(bytes).ok()?.auths
    } else {
        serde_json::from_slice(bytes).ok()?
    };
    let (_, entry) = auths
        .into_iter()
        .find(|(key, _)| config_key_registry(key) == registry)?;
    if let (Some(username), Some(password)) = (&entry.username, &entry.password)
        && !username.is_empty()
    {
        return Some(Credentials {
            username: username.clone(),
            password: password.clone(),
        });
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(entry.auth?.trim())
        .ok()?;
    let (username, password) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
    Some(Credentials {
        username: username.to_string(),
        password: password.to_string(),
    })
}

/// The registry a Docker config key names (`https://index.docker.io/v1/`
/// is Docker Hub, `http://host:5000/` is `host:5000`).
fn config_key_registry(key: &str) -> String {
    let host = key.split_once("://").map_or(key, |(_, rest)| rest);
    let host = host.split('/').next().unwrap_or_default();
    match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".into()
        }
        h => h.to_string(),
    }
}

/// A duration as Go prints one truncated to milliseconds (`512ms`,
/// `1.234s`, `2m3.5s`), as the kubelet's messages show them.
fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (h, rest) = (ms / 3_600_000, ms % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let (s, frac) = (rest / 1000, rest % 1000);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&s.to_string());
    if frac > 0 {
        let f = format!("{frac:03}");
        out.push('.');
        out.push_str(f.trim_end_matches('0'));
    }
    out.push('s');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(image: &str, policy: Option<&str>) -> Container {
        Container {
            name: "c".into(),
            image: Some(image.into()),
            image_pull_policy: policy.map(str::to_string),
            ..Default::default()
        }
    }

    #[test]
    fn pull_policy_defaults_as_the_api_server_does() {
        assert_eq!(pull_policy(&container("busybox", None)), "Always");
        assert_eq!(pull_policy(&container("busybox:latest", None)), "Always");
        assert_eq!(
            pull_policy(&container("busybox:1.36", None)),
            "IfNotPresent"
        );
        assert_eq!(
            pull_policy(&container("127.0.0.1:5000/lib/busybox:1", None)),
            "IfNotPresent"
        );
        let pinned = format!("busybox@sha256:{}", "a".repeat(64));
        assert_eq!(pull_policy(&container(&pinned, None)), "IfNotPresent");
        assert_eq!(pull_policy(&container("busybox", Some("Never"))), "Never");
        assert_eq!(
            pull_policy(&container("busybox:1", Some("Always"))),
            "Always"
        );
        assert_eq!(pull_policy(&container("busybox", Some(""))), "Always");
    }

    #[test]
    fn durations_read_as_go_prints_them() {
        assert_eq!(go_duration(Duration::from_micros(300)), "0s");
        assert_eq!(go_duration(Duration::from_millis(512)), "512ms");
        assert_eq!(go_duration(Duration::from_millis(1234)), "1.234s");
        assert_eq!(go_duration(Duration::from_millis(1200)), "1.2s");
        assert_eq!(go_duration(Duration::from_secs(2)), "2s");
        assert_eq!(go_duration(Duration::from_millis(123_500)), "2m3.5s");
        assert_eq!(go_duration(Duration::from_secs(3600)), "1h0m0s");
    }

    #[test]
    fn docker_config_entries_are_found_by_registry() {
        let json = br#"{"auths":{
            "https://index.docker.io/v1/":{"auth":"dXNlcjpwYXNz"},
            "http://127.0.0.1:5000/":{"username":"u","password":"p:w"}}}"#;
        let hub = docker_config_credentials(json, true, "docker.io").unwrap();
        assert_eq!(
            (hub.username.as_str(), hub.password.as_str()),
            ("user", "pass")
        );
        let local = docker_config_credentials(json, true, "127.0.0.1:5000").unwrap();
        assert_eq!(
            (local.username.as_str(), local.password.as_str()),
            ("u", "p:w")
        );
        assert!(docker_config_credentials(json, true, "quay.io").is_none());
        let cfg = br#"{"quay.io":{"auth":"YTpi"}}"#;
        let q = docker_config_credentials(cfg, false, "quay.io").unwrap();
        assert_eq!((q.username.as_str(), q.password.as_str()), ("a", "b"));
        assert!(docker_config_credentials(b"nonsense", true, "quay.io").is_none());
    }
}

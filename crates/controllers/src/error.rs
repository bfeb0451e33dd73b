//! What a reconcile can fail with. Every failure is retried with backoff by the
//! driver, so the variants only need to say what went wrong for the log.

/// Why one reconcile of one object failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or failed a request.
    #[error("{action}")]
    Api {
        /// What was being attempted, e.g. `creating pod for replicaset default/web`.
        action: String,
        #[source]
        source: kube::Error,
    },
    /// An object could not be converted to or from its JSON form.
    #[error("encoding {what}")]
    Encode {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    /// The object's spec cannot be acted on (an unparsable selector, schedule, …);
    /// retrying will not help until the object changes.
    #[error("{0}")]
    Invalid(String),
    /// The reconcile panicked (a bug); it is retried like any failure.
    #[error("reconcile panicked")]
    Panicked,
    /// The local cache did not show the controller's own writes in time.
    #[error("cache did not catch up with {0}")]
    CacheLag(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attaches what was being done to a kube error.
pub trait Context<T> {
    fn ctx(self, action: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for Result<T, kube::Error> {
    fn ctx(self, action: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Api {
            action: action(),
            source,
        })
    }
}

/// The API status reason of a kube error, when the server answered with one.
fn status(e: &kube::Error) -> Option<&kube::core::Status> {
    match e {
        kube::Error::Api(s) => Some(s),
        _ => None,
    }
}

pub fn is_not_found(e: &kube::Error) -> bool {
    status(e).is_some_and(|s| s.is_not_found())
}

pub fn is_already_exists(e: &kube::Error) -> bool {
    status(e).is_some_and(|s| s.is_already_exists())
}

pub fn is_conflict(e: &kube::Error) -> bool {
    status(e).is_some_and(|s| s.is_conflict())
}

/// Creating inside a namespace that is being deleted is refused with 403; the
/// namespace controller is removing everything anyway, so callers stop quietly.
pub fn is_namespace_terminating(e: &kube::Error) -> bool {
    status(e).is_some_and(|s| s.is_forbidden() && s.message.contains("being terminated"))
}

impl Error {
    /// True when the failure is an optimistic-concurrency conflict: the cache was
    /// stale, and a quick retry is the right answer.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Api { source, .. } if is_conflict(source))
    }
}

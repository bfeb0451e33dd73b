//! What the node agent can fail with. Sources are kept so the log shows the
//! whole chain.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request to the API server failed.
    #[error("{action}")]
    Api {
        action: String,
        #[source]
        source: kube::Error,
    },
    /// A file or directory of the agent's state could not be used.
    #[error("{action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The image store refused or failed.
    #[error(transparent)]
    Image(#[from] crate::images::ImageError),
    /// The container runtime refused or failed.
    #[error(transparent)]
    Runtime(#[from] crate::runtime::RuntimeError),
    /// The agent was started with settings it cannot run with.
    #[error("{0}")]
    Config(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn api(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Self {
        let action = action.into();
        move |source| Error::Api { action, source }
    }

    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    }
}

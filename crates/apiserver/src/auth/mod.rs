//! Who is calling (authentication) and whether they may (authorization), with
//! Kubernetes' user model: client certificates, service-account tokens, the
//! node join token, RBAC and the node authorizer with its view of pods.

pub(crate) mod authn;
pub(crate) mod bootstrap;
pub(crate) mod graph;
mod join_token;
mod node;
pub(crate) mod rbac;
pub(crate) mod token;

use std::collections::BTreeMap;

pub use authn::{Authenticator, ServiceAccountCheck};
pub use join_token::{JoinToken, ca_hash, join_secret};
pub(crate) use node::{NODE_LEASE_NAMESPACE, node_identity};
pub use rbac::{Attributes, Authorizer, Decision, RbacSource, forbidden_message};
pub(crate) use token::{BoundObject, ServiceAccountRef, TokenBinding, VerifiedToken};

/// An authenticated caller, as Kubernetes' `user.Info`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

/// Failures of authentication or of issuing credentials.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A bearer token was presented but is not one this server accepts.
    #[error("invalid bearer token: {0}")]
    InvalidToken(String),
    /// A service-account token whose `exp` has passed.
    #[error("token has expired")]
    ExpiredToken,
    /// A verified client certificate that does not name a user.
    #[error("client certificate: {0}")]
    Certificate(String),
    /// The service-account key cannot be used to sign or verify tokens.
    #[error("service-account key: {0}")]
    SigningKey(String),
}

/// Well-known user and group names.
pub mod groups {
    pub const AUTHENTICATED: &str = "system:authenticated";
    pub const UNAUTHENTICATED: &str = "system:unauthenticated";
    pub const MASTERS: &str = "system:masters";
    pub const NODES: &str = "system:nodes";
    pub const BOOTSTRAPPERS: &str = "system:bootstrappers";
    pub const SERVICE_ACCOUNTS: &str = "system:serviceaccounts";

    pub const NODE_USER_PREFIX: &str = "system:node:";
    pub const SERVICE_ACCOUNT_USER_PREFIX: &str = "system:serviceaccount:";
    /// The identity an agent holding the join token gets before it has a node certificate.
    pub const BOOTSTRAP_NODE_USER: &str = "system:bootstrap:node";
    pub const KUBE_SCHEDULER: &str = "system:kube-scheduler";
    pub const KUBE_CONTROLLER_MANAGER: &str = "system:kube-controller-manager";
    pub const KUBE_PROXY: &str = "system:kube-proxy";

    /// `system:serviceaccount:NAMESPACE:NAME`.
    pub fn service_account_user(namespace: &str, name: &str) -> String {
        format!("{SERVICE_ACCOUNT_USER_PREFIX}{namespace}:{name}")
    }
}

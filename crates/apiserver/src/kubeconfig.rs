//! Kubeconfig files for kubectl and for Flotilla's own components, in the shape
//! k3s writes: one cluster, user and context, all named `default`, with the CA
//! and credentials inline.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use crate::pki::{PkiError, write_atomic};

/// How the kubeconfig's user proves who it is.
#[derive(Clone, Debug)]
pub enum Credential {
    /// A client certificate and its private key, both PEM.
    ClientCert { cert_pem: String, key_pem: String },
}

/// Failures of writing a kubeconfig.
#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    /// The document could not be rendered as YAML.
    #[error("rendering the kubeconfig: {0}")]
    Render(#[from] serde_yaml_ng::Error),
    /// The file could not be written.
    #[error("writing the kubeconfig: {0}")]
    Write(#[from] PkiError),
}

/// The kubeconfig document for `server_url`, trusting `ca_pem`.
pub fn render_kubeconfig(
    server_url: &str,
    ca_pem: &str,
    cred: &Credential,
) -> Result<String, KubeconfigError> {
    let user = match cred {
        Credential::ClientCert { cert_pem, key_pem } => json!({
            "client-certificate-data": STANDARD.encode(cert_pem),
            "client-key-data": STANDARD.encode(key_pem),
        }),
    };
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": "default",
            "cluster": {
                "server": server_url,
                "certificate-authority-data": STANDARD.encode(ca_pem),
            },
        }],
        "users": [{ "name": "default", "user": user }],
        "contexts": [{
            "name": "default",
            "context": { "cluster": "default", "user": "default" },
        }],
        "current-context": "default",
        "preferences": {},
    });
    Ok(serde_yaml_ng::to_string(&doc)?)
}

/// Writes a kubeconfig to `path`, readable by its owner only (it holds a
/// credential), replacing any previous file atomically.
pub fn write_kubeconfig(
    path: &Path,
    server_url: &str,
    ca_pem: &str,
    cred: Credential,
) -> Result<(), KubeconfigError> {
    let text = render_kubeconfig(server_url, ca_pem, &cred)?;
    write_atomic(path, text.as_bytes(), 0o600)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn client_cert_kubeconfig_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig.yaml");
        let cred = Credential::ClientCert {
            cert_pem: "CERT".into(),
            key_pem: "KEY".into(),
        };
        write_kubeconfig(&path, "https://127.0.0.1:6443", "CA", cred).unwrap();
        // A second write replaces the first in place.
        write_kubeconfig(
            &path,
            "https://127.0.0.1:6443",
            "CA",
            Credential::ClientCert {
                cert_pem: "CERT2".into(),
                key_pem: "KEY2".into(),
            },
        )
        .unwrap();

        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let doc: serde_json::Value =
            serde_yaml_ng::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(doc["current-context"], "default");
        assert_eq!(
            doc["clusters"][0]["cluster"]["server"],
            "https://127.0.0.1:6443"
        );
        assert_eq!(
            doc["clusters"][0]["cluster"]["certificate-authority-data"],
            STANDARD.encode("CA")
        );
        assert_eq!(
            doc["users"][0]["user"]["client-certificate-data"],
            STANDARD.encode("CERT2")
        );
        assert_eq!(doc["contexts"][0]["context"]["user"], "default");

        let cert = render_kubeconfig(
            "https://x",
            "CA",
            &Credential::ClientCert {
                cert_pem: "CERT".into(),
                key_pem: "KEY".into(),
            },
        )
        .unwrap();
        let doc: serde_json::Value = serde_yaml_ng::from_str(&cert).unwrap();
        assert_eq!(
            doc["users"][0]["user"]["client-certificate-data"],
            STANDARD.encode("CERT")
        );
        assert_eq!(
            doc["users"][0]["user"]["client-key-data"],
            STANDARD.encode("KEY")
        );
    }
}

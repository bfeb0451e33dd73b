//! envFrom, env, `$(VAR)` expansion and `valueFrom` sources.

use serde_json::{Value, json};

use super::*;
use crate::pods::test_support::{Objects, context, pod};

fn env_of(container: Value, objects: &Objects) -> Result<Vec<(String, String)>, ConfigError> {
    let p = pod(json!({"nodeName": "node-1", "serviceAccountName": "web-sa",
        "containers": [container]}));
    let c = p.spec.as_ref().unwrap().containers[0].clone();
    environment(&p, &c, &context(objects))
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn env_from_then_env_with_expansion() {
    let objects = Objects::default()
        .config_map(
            "settings",
            json!({"MODE": "prod", "PORT": "80", "bad=name": "x"}),
        )
        .secret("creds", &[("PASSWORD", "s3cret")]);
    let env = env_of(
        json!({"name": "app", "image": "i",
        "envFrom": [
            {"configMapRef": {"name": "settings"}},
            {"secretRef": {"name": "creds"}, "prefix": "DB_"}
        ],
        "env": [
            {"name": "URL", "value": "http://localhost:$(PORT)/$(MODE)"},
            {"name": "MODE", "value": "debug"},
            {"name": "LATER", "value": "$(MODE)-$(NOPE)-$$(MODE)"},
            {"name": "EMPTY", "value": ""}
        ]}),
        &objects,
    )
    .unwrap();
    assert_eq!(
        env,
        pairs(&[
            ("MODE", "debug"),
            ("PORT", "80"),
            ("DB_PASSWORD", "s3cret"),
            ("URL", "http://localhost:80/prod"),
            ("LATER", "debug-$(NOPE)-$(MODE)"),
            ("EMPTY", ""),
        ])
    );
}

#[test]
fn missing_sources_are_errors_unless_optional() {
    let objects = Objects::default().config_map("settings", json!({"MODE": "prod"}));
    let err = |container: Value| env_of(container, &objects).unwrap_err().to_string();
    assert_eq!(
        err(json!({"name": "a", "envFrom": [{"configMapRef": {"name": "x"}}]})),
        "configmap \"x\" not found"
    );
    assert_eq!(
        err(json!({"name": "a", "envFrom": [{"secretRef": {"name": "s"}}]})),
        "secret \"s\" not found"
    );
    assert_eq!(
        err(json!({"name": "a", "env": [{"name": "K", "valueFrom":
            {"configMapKeyRef": {"name": "settings", "key": "k"}}}]})),
        "couldn't find key k in ConfigMap shop/settings"
    );
    assert_eq!(
        err(json!({"name": "a", "env": [{"name": "K", "valueFrom":
            {"secretKeyRef": {"name": "nope", "key": "k"}}}]})),
        "secret \"nope\" not found"
    );
    let env = env_of(
        json!({"name": "a",
        "envFrom": [{"configMapRef": {"name": "x", "optional": true}}],
        "env": [
            {"name": "K", "valueFrom": {"configMapKeyRef":
                {"name": "settings", "key": "k", "optional": true}}},
            {"name": "S", "valueFrom": {"secretKeyRef":
                {"name": "nope", "key": "k", "optional": true}}},
            {"name": "M", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "MODE"}}}
        ]}),
        &objects,
    )
    .unwrap();
    assert_eq!(env, pairs(&[("M", "prod")]));
}

#[test]
fn secret_key_refs() {
    let objects = Objects::default().secret("creds", &[("token", "abc")]);
    let env = env_of(
        json!({"name": "a", "env": [{"name": "T", "valueFrom":
            {"secretKeyRef": {"name": "creds", "key": "token"}}}]}),
        &objects,
    )
    .unwrap();
    assert_eq!(env, pairs(&[("T", "abc")]));
    let err = env_of(
        json!({"name": "a", "env": [{"name": "T", "valueFrom":
            {"secretKeyRef": {"name": "creds", "key": "other"}}}]}),
        &objects,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "couldn't find key other in Secret shop/creds"
    );
}

#[test]
fn field_refs() {
    let field = |path: &str| json!({"name": "V", "valueFrom": {"fieldRef": {"fieldPath": path}}});
    let objects = Objects::default();
    let value = |path: &str| {
        env_of(json!({"name": "a", "env": [field(path)]}), &objects).map(|e| e[0].1.clone())
    };
    assert_eq!(value("metadata.name").unwrap(), "web-0");
    assert_eq!(value("metadata.namespace").unwrap(), "shop");
    assert_eq!(value("metadata.uid").unwrap(), "1f2e3d");
    assert_eq!(value("metadata.labels['app']").unwrap(), "web");
    assert_eq!(value("metadata.labels['missing']").unwrap(), "");
    assert_eq!(value("metadata.annotations['note']").unwrap(), "say \"hi\"");
    assert_eq!(
        value("metadata.labels").unwrap(),
        "app=\"web\"\ntier=\"front\""
    );
    assert_eq!(
        value("metadata.annotations").unwrap(),
        "note=\"say \\\"hi\\\"\""
    );
    assert_eq!(value("spec.nodeName").unwrap(), "node-1");
    assert_eq!(value("spec.serviceAccountName").unwrap(), "web-sa");
    assert_eq!(value("status.hostIP").unwrap(), "10.0.0.5");
    assert_eq!(value("status.hostIPs").unwrap(), "10.0.0.5,fd00::5");
    assert_eq!(value("status.podIP").unwrap(), "10.244.1.7");
    assert_eq!(value("status.podIPs").unwrap(), "10.244.1.7,fd00:244::7");
    assert_eq!(
        value("spec.bogus").unwrap_err().to_string(),
        "unsupported fieldPath: spec.bogus"
    );
}

#[test]
fn resource_field_refs() {
    let objects = Objects::default();
    let resource = |resource: &str, divisor: Option<&str>| {
        let mut selector = json!({"resource": resource});
        if let Some(d) = divisor {
            selector["divisor"] = json!(d);
        }
        let container = json!({"name": "a", "resources": {
                "requests": {"cpu": "250m", "memory": "64Mi"},
                "limits": {"memory": "128Mi"}},
            "env": [{"name": "V", "valueFrom": {"resourceFieldRef": selector}}]});
        env_of(container, &objects).map(|e| e[0].1.clone())
    };
    // 250m rounded up to whole cores, or in millicores.
    assert_eq!(resource("requests.cpu", None).unwrap(), "1");
    assert_eq!(resource("requests.cpu", Some("1m")).unwrap(), "250");
    assert_eq!(resource("requests.memory", Some("1Mi")).unwrap(), "64");
    assert_eq!(resource("limits.memory", None).unwrap(), "134217728");
    // Limits not set are the node's.
    assert_eq!(resource("limits.cpu", None).unwrap(), "4");
    assert_eq!(resource("limits.cpu", Some("1m")).unwrap(), "4000");
    assert_eq!(
        resource("limits.ephemeral-storage", Some("1Gi")).unwrap(),
        "100"
    );
    assert_eq!(resource("requests.ephemeral-storage", None).unwrap(), "0");
    assert_eq!(
        resource("limits.gpu", None).unwrap_err().to_string(),
        "unsupported container resource : limits.gpu"
    );
}

#[test]
fn invalid_names_from_env_from_are_skipped() {
    assert!(is_valid_env_name("1_STARTS_WITH_DIGIT"));
    assert!(is_valid_env_name("with.dots-and-dashes"));
    assert!(!is_valid_env_name(""));
    assert!(!is_valid_env_name("A=B"));
    assert!(!is_valid_env_name("NUL\0"));
}

//! A container's environment as the kubelet makes it: `envFrom` sources in
//! order, then `env` (a later name replaces an earlier one in place), values
//! `$(VAR)`-expanded against the variables defined before them, `valueFrom`
//! resolved from the downward API, ConfigMaps and Secrets. The Service
//! variables (`*_SERVICE_HOST`, ...) are not made here.
//!
//! Names from `envFrom` are taken as the kubelet takes them since relaxed
//! env-name validation: anything but names that cannot be in an environment
//! (empty, or containing `=` or NUL), which are skipped.

use k8s_openapi::api::core::v1::{
    ConfigMap, Container, EnvVarSource, ObjectFieldSelector, Pod, Secret,
};

use super::config::{ConfigContext, ConfigError};
use super::expansion::expand;
use super::resources::resource_field_value;

/// The container's variables, in the order they were first defined.
pub(super) fn environment(
    pod: &Pod,
    container: &Container,
    ctx: &ConfigContext<'_>,
) -> Result<Vec<(String, String)>, ConfigError> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut env = EnvList::default();

    for source in container.env_from.iter().flatten() {
        let prefix = source.prefix.as_deref().unwrap_or("");
        let pairs: Vec<(String, String)> = if let Some(r) = &source.config_map_ref {
            match config_map(ctx, namespace, &r.name, r.optional)? {
                Some(cm) => cm.data.unwrap_or_default().into_iter().collect(),
                None => continue,
            }
        } else if let Some(r) = &source.secret_ref {
            match secret(ctx, namespace, &r.name, r.optional)? {
                Some(s) => secret_pairs(s),
                None => continue,
            }
        } else {
            continue;
        };
        for (key, value) in pairs {
            let name = format!("{prefix}{key}");
            if is_valid_env_name(&name) {
                env.set(name, value);
            } else {
                tracing::debug!(name, "skipping an invalid environment variable name");
            }
        }
    }

    for var in container.env.iter().flatten() {
        let literal = var.value.as_deref().unwrap_or("");
        let value = if !literal.is_empty() {
            expand(literal, |name| env.get(name).map(str::to_string))
        } else if let Some(source) = &var.value_from {
            match value_from(pod, container, source, namespace, ctx)? {
                Some(v) => v,
                None => continue,
            }
        } else {
            String::new()
        };
        env.set(var.name.clone(), value);
    }
    Ok(env.0)
}

/// Insertion-ordered variables; setting an existing name replaces its value.
#[derive(Default)]
struct EnvList(Vec<(String, String)>);

impl EnvList {
    fn set(&mut self, name: String, value: String) {
        match self.0.iter_mut().find(|(k, _)| *k == name) {
            Some(entry) => entry.1 = value,
            None => self.0.push((name, value)),
        }
    }
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn is_valid_env_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(['=', '\0'])
}

fn config_map(
    ctx: &ConfigContext<'_>,
    namespace: &str,
    name: &str,
    optional: Option<bool>,
) -> Result<Option<ConfigMap>, ConfigError> {
    match ctx.objects.config_map(namespace, name) {
        Some(cm) => Ok(Some(cm)),
        None if optional == Some(true) => Ok(None),
        None => Err(ConfigError::ConfigMapNotFound {
            namespace: namespace.to_string(),
            name: name.to_string(),
        }),
    }
}

fn secret(
    ctx: &ConfigContext<'_>,
    namespace: &str,
    name: &str,
    optional: Option<bool>,
) -> Result<Option<Secret>, ConfigError> {
    match ctx.objects.secret(namespace, name) {
        Some(s) => Ok(Some(s)),
        None if optional == Some(true) => Ok(None),
        None => Err(ConfigError::SecretNotFound {
            namespace: namespace.to_string(),
            name: name.to_string(),
        }),
    }
}

/// A Secret's data as strings (bytes that are not UTF-8 are replaced).
fn secret_pairs(secret: Secret) -> Vec<(String, String)> {
    secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
        .collect()
}

/// The value of a `valueFrom`; `None` when an optional source is missing (the
/// variable is then not set at all).
fn value_from(
    pod: &Pod,
    container: &Container,
    source: &EnvVarSource,
    namespace: &str,
    ctx: &ConfigContext<'_>,
) -> Result<Option<String>, ConfigError> {
    if let Some(field) = &source.field_ref {
        return field_value(pod, field, ctx).map(Some);
    }
    if let Some(field) = &source.resource_field_ref {
        return resource_field_value(pod, container, field, ctx).map(Some);
    }
    if let Some(key_ref) = &source.config_map_key_ref {
        let optional = key_ref.optional == Some(true);
        let Some(cm) = config_map(ctx, namespace, &key_ref.name, key_ref.optional)? else {
            return Ok(None);
        };
        return match cm.data.unwrap_or_default().remove(&key_ref.key) {
            Some(v) => Ok(Some(v)),
            None if optional => Ok(None),
            None => Err(ConfigError::ConfigMapKeyNotFound {
                namespace: namespace.to_string(),
                name: key_ref.name.clone(),
                key: key_ref.key.clone(),
            }),
        };
    }
    if let Some(key_ref) = &source.secret_key_ref {
        let optional = key_ref.optional == Some(true);
        let Some(s) = secret(ctx, namespace, &key_ref.name, key_ref.optional)? else {
            return Ok(None);
        };
        return match secret_pairs(s).into_iter().find(|(k, _)| *k == key_ref.key) {
            Some((_, v)) => Ok(Some(v)),
            None if optional => Ok(None),
            None => Err(ConfigError::SecretKeyNotFound {
                namespace: namespace.to_string(),
                name: key_ref.name.clone(),
                key: key_ref.key.clone(),
            }),
        };
    }
    Ok(Some(String::new()))
}

/// A downward-API `fieldRef`.
fn field_value(
    pod: &Pod,
    field: &ObjectFieldSelector,
    ctx: &ConfigContext<'_>,
) -> Result<String, ConfigError> {
    let path = field.field_path.as_str();
    let spec = pod.spec.as_ref();
    let meta = &pod.metadata;
    let joined = |ips: &[std::net::IpAddr]| {
        ips.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    let first = |ips: &[std::net::IpAddr]| ips.first().map(ToString::to_string).unwrap_or_default();
    let value = match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => format_map(meta.labels.as_ref()),
        "metadata.annotations" => format_map(meta.annotations.as_ref()),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.hostIP" => first(&ctx.node_ips),
        "status.hostIPs" => joined(&ctx.node_ips),
        "status.podIP" => first(&ctx.pod_ips),
        "status.podIPs" => joined(&ctx.pod_ips),
        _ => {
            let subscript = |prefix: &str| {
                path.strip_prefix(prefix)
                    .and_then(|rest| rest.strip_prefix("['"))
                    .and_then(|rest| rest.strip_suffix("']"))
                    .map(str::to_string)
            };
            if let Some(key) = subscript("metadata.labels") {
                meta.labels
                    .as_ref()
                    .and_then(|l| l.get(&key).cloned())
                    .unwrap_or_default()
            } else if let Some(key) = subscript("metadata.annotations") {
                meta.annotations
                    .as_ref()
                    .and_then(|a| a.get(&key).cloned())
                    .unwrap_or_default()
            } else {
                return Err(ConfigError::FieldPath(path.to_string()));
            }
        }
    };
    Ok(value)
}

/// A whole label or annotation map: `key="value"` lines, sorted by key.
fn format_map(map: Option<&std::collections::BTreeMap<String, String>>) -> String {
    map.into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", serde_json::Value::String(v.clone())))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
#[path = "env_tests.rs"]
mod tests;

//! The container's effective security context: the pod's `securityContext`
//! (user, group, supplemental groups with `fsGroup` first, seccomp profile)
//! overridden by the container's, plus the container-only settings
//! (capabilities, privileged, read-only root, `allowPrivilegeEscalation`,
//! `procMount`). Sysctls are the sandbox's.

use std::path::{Component, Path};

use k8s_openapi::api::core::v1::{Container, Pod, SeccompProfile as ApiSeccompProfile};

use super::config::{ConfigContext, ConfigError};
use crate::runtime::{SeccompProfile, SecurityContext};

pub(super) fn security_context(
    pod: &Pod,
    container: &Container,
    ctx: &ConfigContext<'_>,
) -> Result<SecurityContext, ConfigError> {
    let pod_sc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let sc = container.security_context.as_ref();

    let mut supplemental_groups = Vec::new();
    if let Some(pod_sc) = pod_sc {
        supplemental_groups.extend(pod_sc.fs_group);
        supplemental_groups.extend(pod_sc.supplemental_groups.iter().flatten());
    }
    let capabilities = sc.and_then(|s| s.capabilities.as_ref());
    let profile = sc
        .and_then(|s| s.seccomp_profile.as_ref())
        .or_else(|| pod_sc.and_then(|s| s.seccomp_profile.as_ref()));

    Ok(SecurityContext {
        privileged: sc.and_then(|s| s.privileged).unwrap_or(false),
        capabilities_add: capabilities.and_then(|c| c.add.clone()).unwrap_or_default(),
        capabilities_drop: capabilities
            .and_then(|c| c.drop.clone())
            .unwrap_or_default(),
        run_as_user: sc
            .and_then(|s| s.run_as_user)
            .or_else(|| pod_sc.and_then(|s| s.run_as_user)),
        run_as_group: sc
            .and_then(|s| s.run_as_group)
            .or_else(|| pod_sc.and_then(|s| s.run_as_group)),
        supplemental_groups,
        readonly_rootfs: sc
            .and_then(|s| s.read_only_root_filesystem)
            .unwrap_or(false),
        no_new_privs: sc.and_then(|s| s.allow_privilege_escalation) == Some(false),
        seccomp: seccomp(profile, ctx)?,
        unmasked_proc: sc.and_then(|s| s.proc_mount.as_deref()) == Some("Unmasked"),
    })
}

fn seccomp(
    profile: Option<&ApiSeccompProfile>,
    ctx: &ConfigContext<'_>,
) -> Result<SeccompProfile, ConfigError> {
    let Some(profile) = profile else {
        return Ok(if ctx.seccomp_default {
            SeccompProfile::RuntimeDefault
        } else {
            SeccompProfile::Unconfined
        });
    };
    match profile.type_.as_str() {
        "RuntimeDefault" => Ok(SeccompProfile::RuntimeDefault),
        "Localhost" => {
            let name = profile.localhost_profile.clone().unwrap_or_default();
            let relative = Path::new(&name);
            let descends = !name.is_empty()
                && relative
                    .components()
                    .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
            if !descends {
                return Err(ConfigError::SeccompProfile(name));
            }
            Ok(SeccompProfile::Localhost(ctx.seccomp_root.join(relative)))
        }
        _ => Ok(SeccompProfile::Unconfined),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::pods::test_support::{Objects, context, pod};

    fn effective(pod_json: serde_json::Value) -> Result<SecurityContext, ConfigError> {
        let p = pod(pod_json);
        let container = p.spec.as_ref().unwrap().containers[0].clone();
        let objects = Objects::default();
        security_context(&p, &container, &context(&objects))
    }

    #[test]
    fn pod_settings_with_container_overrides() {
        let sc = effective(json!({
            "securityContext": {
                "runAsUser": 1000, "runAsGroup": 2000, "fsGroup": 3000,
                "supplementalGroups": [4000, 5000],
                "seccompProfile": {"type": "RuntimeDefault"}
            },
            "containers": [{"name": "c", "image": "i", "securityContext": {
                "runAsUser": 1001,
                "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]},
                "readOnlyRootFilesystem": true,
                "allowPrivilegeEscalation": false,
                "procMount": "Unmasked"
            }}]
        }))
        .unwrap();
        assert_eq!(sc.run_as_user, Some(1001));
        assert_eq!(sc.run_as_group, Some(2000));
        assert_eq!(sc.supplemental_groups, vec![3000, 4000, 5000]);
        assert_eq!(sc.capabilities_add, vec!["NET_ADMIN"]);
        assert_eq!(sc.capabilities_drop, vec!["ALL"]);
        assert!(sc.readonly_rootfs && sc.no_new_privs && sc.unmasked_proc);
        assert!(!sc.privileged);
        assert_eq!(sc.seccomp, SeccompProfile::RuntimeDefault);
    }

    #[test]
    fn defaults() {
        let sc = effective(json!({"containers": [{"name": "c", "image": "i"}]})).unwrap();
        assert_eq!(sc, SecurityContext::default());
        let sc = effective(json!({"containers": [{"name": "c", "image": "i",
            "securityContext": {"privileged": true, "allowPrivilegeEscalation": true}}]}))
        .unwrap();
        assert!(sc.privileged && !sc.no_new_privs);
    }

    #[test]
    fn seccomp_profiles() {
        let with = |profile: serde_json::Value| {
            effective(json!({
                "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [{"name": "c", "image": "i",
                    "securityContext": {"seccompProfile": profile}}]
            }))
        };
        assert_eq!(
            with(json!({"type": "Unconfined"})).unwrap().seccomp,
            SeccompProfile::Unconfined
        );
        assert_eq!(
            with(json!({"type": "Localhost", "localhostProfile": "profiles/audit.json"}))
                .unwrap()
                .seccomp,
            SeccompProfile::Localhost("/var/lib/flotilla/seccomp/profiles/audit.json".into())
        );
        for bad in ["../escape.json", "/etc/abs.json", ""] {
            let err = with(json!({"type": "Localhost", "localhostProfile": bad})).unwrap_err();
            assert!(matches!(err, ConfigError::SeccompProfile(_)), "{bad}");
        }
    }
}

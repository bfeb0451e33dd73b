//! A StatefulSet pod's stable identity: its ordinal name, hostname, labels and
//! the PersistentVolumeClaims from the volume claim templates.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;

use crate::meta::controller_ref;

pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";
pub const REVISION_LABEL: &str = "controller-revision-hash";

/// The ordinal of a pod of `set`, from its name `<set>-<ordinal>`.
pub fn ordinal(set: &str, pod: &str) -> Option<i32> {
    let rest = pod.strip_prefix(set)?.strip_prefix('-')?;
    if rest.is_empty() || (rest.len() > 1 && rest.starts_with('0')) {
        return None;
    }
    rest.parse().ok().filter(|o: &i32| *o >= 0)
}

pub fn pod_name(set: &StatefulSet, ordinal: i32) -> String {
    format!("{}-{ordinal}", set.name_any())
}

pub fn claim_name(template: &str, set: &StatefulSet, ordinal: i32) -> String {
    format!("{template}-{}-{ordinal}", set.name_any())
}

/// The pod for `ordinal`, from `template` (the revision it belongs to).
pub fn pod(set: &StatefulSet, template: &PodTemplateSpec, revision: &str, ordinal: i32) -> Pod {
    let ns = set.namespace().unwrap_or_default();
    let name = pod_name(set, ordinal);
    let mut pod = crate::pods::from_template(template, &ns, controller_ref(set), "");
    pod.metadata.generate_name = None;
    pod.metadata.name = Some(name.clone());
    let labels = pod.metadata.labels.get_or_insert_with(Default::default);
    labels.insert(POD_NAME_LABEL.into(), name.clone());
    labels.insert(POD_INDEX_LABEL.into(), ordinal.to_string());
    labels.insert(REVISION_LABEL.into(), revision.into());
    let spec = set.spec.clone().unwrap_or_default();
    if let Some(ps) = pod.spec.as_mut() {
        ps.hostname = Some(name);
        if !spec.service_name.as_deref().unwrap_or("").is_empty() {
            ps.subdomain = spec.service_name.clone();
        }
        let volumes = ps.volumes.get_or_insert_with(Vec::new);
        for vct in spec.volume_claim_templates.iter().flatten() {
            let tname = vct.name_any();
            volumes.retain(|v| v.name != tname);
            volumes.push(Volume {
                name: tname.clone(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: claim_name(&tname, set, ordinal),
                    read_only: None,
                }),
                ..Default::default()
            });
        }
    }
    pod
}

/// The claims the pod for `ordinal` needs, owned by the set when its retention
/// policy deletes them with it.
pub fn claims(set: &StatefulSet, ordinal: i32) -> Vec<PersistentVolumeClaim> {
    let spec = set.spec.clone().unwrap_or_default();
    let delete_with_set = spec
        .persistent_volume_claim_retention_policy
        .as_ref()
        .and_then(|p| p.when_deleted.as_deref())
        == Some("Delete");
    let selector_labels = spec.selector.match_labels.clone().unwrap_or_default();
    spec.volume_claim_templates
        .iter()
        .flatten()
        .map(|vct| {
            let mut labels = selector_labels.clone();
            labels.extend(vct.metadata.labels.clone().unwrap_or_default());
            let owner = delete_with_set.then(|| controller_ref(set));
            PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some(claim_name(&vct.name_any(), set, ordinal)),
                    namespace: set.namespace(),
                    labels: Some(labels),
                    annotations: vct.metadata.annotations.clone(),
                    owner_references: owner.map(|o| vec![o]),
                    ..Default::default()
                },
                spec: vct.spec.clone(),
                status: None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_ordinals_from_names() {
        assert_eq!(ordinal("web", "web-0"), Some(0));
        assert_eq!(ordinal("web", "web-12"), Some(12));
        assert_eq!(ordinal("web", "web-01"), None);
        assert_eq!(ordinal("web", "webby-1"), None);
        assert_eq!(ordinal("web", "web-x"), None);
        assert_eq!(ordinal("web-a", "web-a-3"), Some(3));
    }

    #[test]
    fn pods_carry_identity_and_claims() {
        let set: StatefulSet = serde_json::from_value(json!({
            "metadata": {"name": "db", "namespace": "ns", "uid": "u1"},
            "spec": {"serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                     "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "c"}]}},
                     "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"]}}]},
        }))
        .expect("set");
        let template = set
            .spec
            .as_ref()
            .map(|s| s.template.clone())
            .expect("template");
        let p = pod(&set, &template, "db-abc", 2);
        assert_eq!(p.metadata.name.as_deref(), Some("db-2"));
        let labels = p.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels.get(POD_INDEX_LABEL).map(String::as_str), Some("2"));
        assert_eq!(
            labels.get(REVISION_LABEL).map(String::as_str),
            Some("db-abc")
        );
        let spec = p.spec.expect("spec");
        assert_eq!(
            (spec.hostname.as_deref(), spec.subdomain.as_deref()),
            (Some("db-2"), Some("db"))
        );
        let vol = spec.volumes.unwrap_or_default();
        assert_eq!(
            vol[0]
                .persistent_volume_claim
                .as_ref()
                .map(|c| c.claim_name.as_str()),
            Some("data-db-2")
        );
        let c = claims(&set, 2);
        assert_eq!(c[0].metadata.name.as_deref(), Some("data-db-2"));
        assert!(
            c[0].metadata.owner_references.is_none(),
            "retained by default"
        );
    }
}

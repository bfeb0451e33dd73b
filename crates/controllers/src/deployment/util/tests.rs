use super::*;
use k8s_openapi::api::apps::v1::{
    DeploymentSpec, DeploymentStrategy, ReplicaSetSpec, RollingUpdateDeployment,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

fn deployment(replicas: i32, surge: &str, unavailable: &str) -> Deployment {
    let parse = |v: &str| match v.parse::<i32>() {
        Ok(i) => IntOrString::Int(i),
        Err(_) => IntOrString::String(v.into()),
    };
    Deployment {
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(parse(surge)),
                    max_unavailable: Some(parse(unavailable)),
                }),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn rs(replicas: i32, annotations: &[(&str, &str)]) -> ReplicaSet {
    ReplicaSet {
        metadata: ObjectMeta {
            annotations: Some(
                annotations
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            ..Default::default()
        }),
        status: None,
    }
}

#[test]
fn percentages_round_up_for_surge_and_down_for_unavailable() {
    assert_eq!(fenceposts(&deployment(10, "25%", "25%")), (3, 2));
    assert_eq!(fenceposts(&deployment(3, "25%", "25%")), (1, 0));
    assert_eq!(fenceposts(&deployment(1, "0", "0")), (0, 1));
    assert_eq!(fenceposts(&deployment(4, "1", "50%")), (1, 2));
    assert_eq!(max_unavailable(&deployment(2, "0", "5")), 2);
    assert_eq!(max_unavailable(&deployment(0, "1", "1")), 0);
}

#[test]
fn hash_is_stable_and_changes_with_template_and_collisions() {
    let mut t = PodTemplateSpec::default();
    let a = template_hash(&t, None);
    assert_eq!(a, template_hash(&t, None));
    assert!(
        a.bytes()
            .all(|b| b"bcdfghjklmnpqrstvwxz2456789".contains(&b))
    );
    assert_ne!(a, template_hash(&t, Some(1)));
    t.metadata = Some(ObjectMeta {
        labels: Some([("app".to_string(), "web".to_string())].into()),
        ..Default::default()
    });
    assert_ne!(a, template_hash(&t, None));
}

#[test]
fn templates_compare_without_the_hash_label() {
    let mut a = PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some([("app".to_string(), "web".to_string())].into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let b = a.clone();
    a.metadata
        .as_mut()
        .and_then(|m| m.labels.as_mut())
        .map(|l| l.insert(HASH_LABEL.into(), "abc".into()));
    assert!(equal_ignore_hash(&a, &b));
}

#[test]
fn a_reused_replica_set_keeps_its_old_revisions() {
    let d = deployment(3, "1", "0");
    let mut old = rs(0, &[(REVISION, "1")]);
    assert!(set_new_rs_annotations(&d, &mut old, 3, true));
    let anns = old.metadata.annotations.as_ref().expect("annotations");
    assert_eq!(anns.get(REVISION).map(String::as_str), Some("3"));
    assert_eq!(anns.get(REVISION_HISTORY).map(String::as_str), Some("1"));
    assert!(set_new_rs_annotations(&d, &mut old, 5, true));
    let anns = old.metadata.annotations.as_ref().expect("annotations");
    assert_eq!(anns.get(REVISION_HISTORY).map(String::as_str), Some("1,3"));
    assert!(!set_new_rs_annotations(&d, &mut old, 5, true));

    let mut fresh = rs(0, &[]);
    assert!(set_new_rs_annotations(&d, &mut fresh, 1, false));
    let anns = fresh.metadata.annotations.as_ref().expect("annotations");
    assert_eq!(anns.get(DESIRED_REPLICAS).map(String::as_str), Some("3"));
    assert_eq!(anns.get(MAX_REPLICAS).map(String::as_str), Some("4"));
    assert!(!anns.contains_key(REVISION_HISTORY));
}

#[test]
fn scaling_mid_rollout_splits_proportionally() {
    // 10 replicas, surge 3: old RS at 8 and new at 5 were sized for max 13.
    let d = deployment(20, "3", "2");
    let old = rs(8, &[(MAX_REPLICAS, "13")]);
    let new = rs(5, &[(MAX_REPLICAS, "13")]);
    // Scaling to 20 (+3 surge = 23) adds 10 replicas.
    let first = proportion(&old, &d, 10, 0);
    let second = proportion(&new, &d, 10, first);
    assert_eq!((first, second), (6, 4));
}

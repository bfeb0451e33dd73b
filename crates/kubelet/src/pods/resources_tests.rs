//! QoS classes, shares, quota, memory limit and OOM scores.

use serde_json::{Value, json};

use super::*;
use crate::pods::test_support::pod;

fn container(resources: Value) -> Value {
    json!({"name": "c", "image": "i", "resources": resources})
}

fn qos_of(containers: Value) -> QosClass {
    qos(&pod(json!({"containers": containers})))
}

fn resources_of(resources: Value) -> LinuxResources {
    let p = pod(json!({"containers": [container(resources)]}));
    let c = p.spec.as_ref().unwrap().containers[0].clone();
    linux_resources(&p, &c, 8 << 30).unwrap()
}

#[test]
fn qos_classes() {
    assert_eq!(qos_of(json!([container(json!({}))])), QosClass::BestEffort);
    let guaranteed = container(json!({"limits": {"cpu": "500m", "memory": "256Mi"}}));
    assert_eq!(qos_of(json!([guaranteed.clone()])), QosClass::Guaranteed);
    assert_eq!(
        qos_of(json!([container(json!({
            "requests": {"cpu": "500m", "memory": "256Mi"},
            "limits": {"cpu": "500m", "memory": "256Mi"}}))])),
        QosClass::Guaranteed
    );
    assert_eq!(
        qos_of(json!([container(json!({
            "requests": {"cpu": "250m", "memory": "256Mi"},
            "limits": {"cpu": "500m", "memory": "256Mi"}}))])),
        QosClass::Burstable
    );
    assert_eq!(
        qos_of(json!([container(json!({"limits": {"cpu": "1"}}))])),
        QosClass::Burstable
    );
    // Every container counts.
    assert_eq!(
        qos_of(json!([guaranteed, container(json!({}))])),
        QosClass::Burstable
    );
    // status.qosClass wins.
    let mut p = pod(json!({"containers": [container(json!({}))]}));
    p.status = Some(serde_json::from_value(json!({"qosClass": "Burstable"})).unwrap());
    assert_eq!(qos(&p), QosClass::Burstable);
    assert_eq!(QosClass::Guaranteed.cgroup_parent(), "kubepods");
    assert_eq!(QosClass::Burstable.cgroup_parent(), "kubepods/burstable");
    assert_eq!(QosClass::BestEffort.cgroup_parent(), "kubepods/besteffort");
    assert_eq!(QosClass::BestEffort.as_str(), "BestEffort");
}

#[test]
fn shares_and_quota_formulas() {
    assert_eq!(milli_cpu_to_shares(0), 2);
    assert_eq!(milli_cpu_to_shares(1), 2);
    assert_eq!(milli_cpu_to_shares(100), 102);
    assert_eq!(milli_cpu_to_shares(1000), 1024);
    assert_eq!(milli_cpu_to_shares(1_000_000), 262_144);
    assert_eq!(milli_cpu_to_quota(0, 100_000), None);
    assert_eq!(milli_cpu_to_quota(5, 100_000), Some(1000));
    assert_eq!(milli_cpu_to_quota(250, 100_000), Some(25_000));
    assert_eq!(milli_cpu_to_quota(2000, 100_000), Some(200_000));
}

#[test]
fn container_resources() {
    let r = resources_of(json!({}));
    assert_eq!(r.cpu_shares, Some(2));
    assert_eq!(r.cpu_quota, None);
    assert_eq!(r.cpu_period, Some(100_000));
    assert_eq!(r.memory_limit_in_bytes, None);
    assert_eq!(r.oom_score_adj, Some(1000));

    let r = resources_of(json!({"requests": {"cpu": "250m", "memory": "1Gi"},
        "limits": {"cpu": "500m", "memory": "2Gi"}}));
    assert_eq!(r.cpu_shares, Some(256));
    assert_eq!(r.cpu_quota, Some(50_000));
    assert_eq!(r.memory_limit_in_bytes, Some(2 << 30));
    // Burstable: 1000 - 1000 * 1Gi / 8Gi.
    assert_eq!(r.oom_score_adj, Some(875));

    // A limit without a request: the request is the limit.
    let r = resources_of(json!({"limits": {"cpu": "2", "memory": "1Gi"}}));
    assert_eq!(r.cpu_shares, Some(2048));
    assert_eq!(r.cpu_quota, Some(200_000));
    assert_eq!(r.oom_score_adj, Some(-997));

    let p = pod(json!({"containers": [container(json!({"requests": {"cpu": "x"}}))]}));
    let c = p.spec.as_ref().unwrap().containers[0].clone();
    let err = linux_resources(&p, &c, 1 << 30).unwrap_err();
    assert!(matches!(err, ConfigError::Quantity { .. }));
    assert!(std::error::Error::source(&err).is_some());
}

#[test]
fn oom_scores() {
    let burstable = |memory: &str, machine: i64| {
        let p = pod(json!({"containers": [container(json!({"requests": {"memory": memory}}))]}));
        let c = p.spec.as_ref().unwrap().containers[0].clone();
        oom_score_adj(&p, &c, machine).unwrap()
    };
    assert_eq!(burstable("1Gi", 4 << 30), 750);
    // Requests near the machine's memory stay above Guaranteed ...
    assert_eq!(burstable("4Gi", 4 << 30), 3);
    assert_eq!(burstable("8Gi", 4 << 30), 3);
    // ... and tiny ones below BestEffort.
    assert_eq!(burstable("1", 4 << 30), 999);
    let p = pod(json!({"priorityClassName": "system-node-critical",
        "containers": [container(json!({}))]}));
    let c = p.spec.as_ref().unwrap().containers[0].clone();
    assert_eq!(oom_score_adj(&p, &c, 1 << 30).unwrap(), -997);
}

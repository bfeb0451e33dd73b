//! ResourceQuota usage and PodDisruptionBudget status.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, ResourceQuota, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, PostParams};
use serde_json::json;

use crate::common::nodes::FakeNodes;
use crate::common::{Cluster, LIMIT, obj, wait_object};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_usage_and_disruption_budgets_are_reported() -> anyhow::Result<()> {
    crate::common::init_logging();
    let c = Cluster::start().await?;
    let _nodes = FakeNodes::start(c.admin.clone(), &["node-a"]).await?;
    c.create_namespace("team").await?;
    let cms: Api<ConfigMap> = Api::namespaced(c.admin.clone(), "team");
    cms.create(
        &PostParams::default(),
        &obj(json!({"metadata": {"name": "settings"}})),
    )
    .await?;
    let services: Api<Service> = Api::namespaced(c.admin.clone(), "team");
    services
        .create(&PostParams::default(), &obj(json!({"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})))
        .await?;
    let quotas: Api<ResourceQuota> = Api::namespaced(c.admin.clone(), "team");
    quotas
        .create(&PostParams::default(), &obj(json!({
            "metadata": {"name": "limits"},
            "spec": {"hard": {"pods": "10", "requests.cpu": "2", "requests.memory": "1Gi", "configmaps": "5", "services": "3"}},
        })))
        .await?;

    let deployments: Api<Deployment> = Api::namespaced(c.admin.clone(), "team");
    deployments
        .create(&PostParams::default(), &obj(json!({
            "metadata": {"name": "web"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": "busybox",
                                                           "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}}},
        })))
        .await?;
    let used = |q: Option<&ResourceQuota>, k: &str| -> Option<String> {
        q?.status
            .as_ref()?
            .used
            .as_ref()?
            .get(k)
            .map(|v| v.0.clone())
    };
    wait_object(quotas, "limits", LIMIT, "usage of three pods", |q| {
        used(q, "pods").as_deref() == Some("3")
            && used(q, "requests.cpu").as_deref() == Some("300m")
            && used(q, "requests.memory").as_deref() == Some("192Mi")
            && used(q, "configmaps").as_deref() == Some("1")
            && used(q, "services").as_deref() == Some("1")
    })
    .await?;

    let budgets: Api<PodDisruptionBudget> = Api::namespaced(c.admin.clone(), "team");
    budgets
        .create(&PostParams::default(), &obj(json!({"metadata": {"name": "min"}, "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}})))
        .await?;
    budgets
        .create(&PostParams::default(), &obj(json!({"metadata": {"name": "max"}, "spec": {"maxUnavailable": "50%", "selector": {"matchLabels": {"app": "web"}}}})))
        .await?;
    let pods: Api<Pod> = Api::namespaced(c.admin.clone(), "team");
    // 50% of 3 unavailable rounds up to 2, as in Kubernetes.
    for (name, desired, allowed) in [("min", 2, 1), ("max", 1, 2)] {
        let pdb = wait_object(
            budgets.clone(),
            name,
            LIMIT,
            "3 healthy pods counted",
            |b| {
                b.and_then(|b| b.status.clone())
                    .is_some_and(|s| s.current_healthy == 3 && s.expected_pods == 3)
            },
        )
        .await?;
        let s = pdb.and_then(|p| p.status).unwrap_or_default();
        assert_eq!(
            (name, s.desired_healthy, s.disruptions_allowed),
            (name, desired, allowed)
        );
        assert!(
            s.conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == "DisruptionAllowed" && c.status == "True")
        );
    }
    assert_eq!(pods.list(&Default::default()).await?.items.len(), 3);
    Ok(())
}

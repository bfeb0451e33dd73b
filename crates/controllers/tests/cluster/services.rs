//! Endpoints and EndpointSlices from Services and their pods.

use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use serde_json::json;

use crate::common::nodes::FakeNodes;
use crate::common::{Cluster, LIMIT, obj, wait_list, wait_object};

fn ips(list: &Option<Vec<k8s_openapi::api::core::v1::EndpointAddress>>) -> usize {
    list.as_ref().map_or(0, Vec::len)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_and_slices_follow_ready_and_not_ready_pods() -> anyhow::Result<()> {
    crate::common::init_logging();
    let c = Cluster::start().await?;
    let _nodes = FakeNodes::start(c.admin.clone(), &["node-a"]).await?;
    let pods: Api<Pod> = Api::namespaced(c.admin.clone(), "default");
    for name in ["web-1", "web-2", "web-3"] {
        pods.create(&PostParams::default(), &obj(json!({
            "metadata": {"name": name, "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "busybox", "ports": [{"name": "http", "containerPort": 8080}]}]},
        })))
        .await?;
    }
    let services: Api<Service> = Api::namespaced(c.admin.clone(), "default");
    services
        .create(&PostParams::default(), &obj(json!({
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
        })))
        .await?;
    let endpoints: Api<Endpoints> = Api::namespaced(c.admin.clone(), "default");
    wait_object(
        endpoints.clone(),
        "web",
        LIMIT,
        "3 ready addresses on port 8080",
        |ep| {
            ep.and_then(|e| e.subsets.clone()).is_some_and(|s| {
                s.len() == 1
                    && ips(&s[0].addresses) == 3
                    && s[0].ports.as_ref().is_some_and(|p| p[0].port == 8080)
            })
        },
    )
    .await?;

    // A pod that stops being ready moves to notReadyAddresses and ready=false.
    let not_ready = json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}});
    pods.patch_status(
        "web-2",
        &PatchParams::default(),
        &Patch::Strategic(&not_ready),
    )
    .await?;
    wait_object(
        endpoints.clone(),
        "web",
        LIMIT,
        "one not-ready address",
        |ep| {
            ep.and_then(|e| e.subsets.clone()).is_some_and(|s| {
                s.len() == 1 && ips(&s[0].addresses) == 2 && ips(&s[0].not_ready_addresses) == 1
            })
        },
    )
    .await?;
    let slices: Api<EndpointSlice> = Api::namespaced(c.admin.clone(), "default");
    let by_service = watcher::Config::default().labels("kubernetes.io/service-name=web");
    wait_list(
        slices.clone(),
        by_service.clone(),
        LIMIT,
        "a slice with one not-ready endpoint",
        |items| {
            items.len() == 1 && {
                let eps = &items[0].endpoints;
                eps.len() == 3
                    && eps
                        .iter()
                        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(false))
                        .count()
                        == 1
                    && items[0]
                        .ports
                        .as_ref()
                        .is_some_and(|p| p[0].port == Some(8080))
            }
        },
    )
    .await?;

    // The Service's deletion takes its Endpoints and (through the garbage
    // collector) its slices along.
    services.delete("web", &DeleteParams::default()).await?;
    wait_object(endpoints, "web", LIMIT, "endpoints gone", |ep| ep.is_none()).await?;
    wait_list(slices, by_service, LIMIT, "slices gone", |items| {
        items.is_empty()
    })
    .await?;
    Ok(())
}

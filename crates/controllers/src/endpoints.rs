//! Endpoints: for every Service with a selector, the addresses of its pods —
//! ready ones in `addresses`, the others in `notReadyAddresses` — grouped by the
//! ports they serve. Endpoints left behind by a deleted Service are removed.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
    ServicePort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use kube::api::{DeleteParams, PostParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;

use crate::driver::{self, Queue};
use crate::error::{Context, Result, is_already_exists, is_namespace_terminating, is_not_found};
use crate::{CACHE_WAIT, Shared};

const LEADER_ANNOTATION: &str = "control-plane.alpha.kubernetes.io/leader";

pub async fn run(ctx: Shared) {
    let services = ctx.services.clone();
    let queue = Queue::new(&ctx.services)
        .related(&ctx.pods, move |pod| {
            services_in(&services, pod.metadata.namespace.as_deref())
        })
        .related(&ctx.endpoints, |ep| {
            vec![
                ObjectRef::new(&ep.name_any())
                    .within(ep.metadata.namespace.as_deref().unwrap_or_default()),
            ]
        });
    // Like Kubernetes: leftovers are looked for at start and when a Service goes,
    // so Endpoints written before their selector-less Service are left alone.
    let leftovers = Queue::on_relist(&ctx.endpoints).related(&ctx.services, |svc| {
        vec![
            ObjectRef::new(&svc.name_any())
                .within(svc.metadata.namespace.as_deref().unwrap_or_default()),
        ]
    });
    let workers = ctx.opts.workers;
    tokio::join!(
        driver::run(
            "endpoints",
            queue,
            ctx.clone(),
            reconciler!(reconcile),
            workers
        ),
        driver::run(
            "endpoints-leftovers",
            leftovers,
            ctx.clone(),
            reconciler!(reconcile_leftover),
            workers
        ),
    );
}

/// Every Service of a namespace (a pod's labels may have left one selector and
/// entered another).
pub fn services_in(
    services: &crate::informer::Informer<Service>,
    ns: Option<&str>,
) -> Vec<ObjectRef<Service>> {
    services
        .in_namespace(ns.unwrap_or_default())
        .iter()
        .filter(|s| has_selector(s))
        .map(|s| ObjectRef::from_obj(s.as_ref()))
        .collect()
}

pub fn has_selector(svc: &Service) -> bool {
    let spec = svc.spec.as_ref();
    spec.and_then(|s| s.type_.as_deref()) != Some("ExternalName")
        && spec
            .and_then(|s| s.selector.as_ref())
            .is_some_and(|s| !s.is_empty())
}

/// The pods a Service selects, in name order.
pub fn selected_pods(ctx: &Shared, svc: &Service) -> Vec<Arc<Pod>> {
    let selector = svc
        .spec
        .as_ref()
        .and_then(|s| s.selector.clone())
        .unwrap_or_default();
    let mut pods: Vec<Arc<Pod>> = ctx
        .pods
        .in_namespace(&svc.namespace().unwrap_or_default())
        .into_iter()
        .filter(|p| {
            let labels = p.metadata.labels.clone().unwrap_or_default();
            selector.iter().all(|(k, v)| labels.get(k) == Some(v))
        })
        .collect();
    pods.sort_by_key(|p| p.name_any());
    pods
}

pub fn pod_ip(pod: &Pod) -> Option<String> {
    pod.status
        .as_ref()?
        .pod_ip
        .clone()
        .filter(|ip| !ip.is_empty())
}

pub fn publishes_not_ready(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        == Some(true)
}

/// The pod's number for a Service port: a number, or a named container port.
pub fn target_port(svc_port: &ServicePort, pod: &Pod) -> Option<i32> {
    match &svc_port.target_port {
        None => Some(svc_port.port),
        Some(IntOrString::Int(0)) => Some(svc_port.port),
        Some(IntOrString::Int(p)) => Some(*p),
        Some(IntOrString::String(name)) => {
            let proto = svc_port.protocol.as_deref().unwrap_or("TCP");
            pod.spec
                .as_ref()?
                .containers
                .iter()
                .flat_map(|c| c.ports.iter().flatten())
                .find_map(|p| {
                    (p.name.as_deref() == Some(name.as_str())
                        && p.protocol.as_deref().unwrap_or("TCP") == proto)
                        .then_some(p.container_port)
                })
        }
    }
}

pub fn pod_ref(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        namespace: pod.namespace(),
        name: Some(pod.name_any()),
        uid: pod.uid(),
        ..Default::default()
    }
}

fn address(pod: &Pod, svc: &Service, ip: String) -> EndpointAddress {
    let spec = pod.spec.clone().unwrap_or_default();
    let hostname = spec
        .hostname
        .filter(|h| !h.is_empty() && spec.subdomain.as_deref() == Some(svc.name_any().as_str()));
    EndpointAddress {
        ip,
        hostname,
        node_name: spec.node_name.filter(|n| !n.is_empty()),
        target_ref: Some(pod_ref(pod)),
    }
}

/// One subset in the making: its ports, ready and not-ready addresses.
type Group = (
    Vec<EndpointPort>,
    Vec<EndpointAddress>,
    Vec<EndpointAddress>,
);

/// The Endpoints subsets of a Service: one per distinct set of ports, addresses
/// sorted, not-ready ones apart.
pub fn subsets(svc: &Service, pods: &[Arc<Pod>]) -> Vec<EndpointSubset> {
    let ports = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.clone())
        .unwrap_or_default();
    let publish = publishes_not_ready(svc);
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    for pod in pods {
        let Some(ip) = pod_ip(pod) else { continue };
        if crate::pods::is_terminal(pod) || (pod.metadata.deletion_timestamp.is_some() && !publish)
        {
            continue;
        }
        let eps: Vec<EndpointPort> = ports
            .iter()
            .filter_map(|p| {
                Some(EndpointPort {
                    name: p.name.clone().filter(|n| !n.is_empty()),
                    port: target_port(p, pod)?,
                    protocol: Some(p.protocol.clone().unwrap_or_else(|| "TCP".into())),
                    app_protocol: p.app_protocol.clone(),
                })
            })
            .collect();
        if !ports.is_empty() && eps.is_empty() {
            continue;
        }
        let key = serde_json::to_string(&eps).unwrap_or_default();
        let entry = groups
            .entry(key)
            .or_insert_with(|| (eps, Vec::new(), Vec::new()));
        let addr = address(pod, svc, ip);
        if publish || crate::pods::is_ready(pod) {
            entry.1.push(addr);
        } else {
            entry.2.push(addr);
        }
    }
    groups
        .into_values()
        .map(|(ports, mut ready, mut not_ready)| {
            ready.sort_by(|a, b| a.ip.cmp(&b.ip));
            not_ready.sort_by(|a, b| a.ip.cmp(&b.ip));
            EndpointSubset {
                addresses: (!ready.is_empty()).then_some(ready),
                not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
                ports: (!ports.is_empty()).then_some(ports),
            }
        })
        .collect()
}

async fn reconcile(svc: Arc<Service>, ctx: Shared) -> Result<Action> {
    if !has_selector(&svc) || svc.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = svc.namespace().unwrap_or_default();
    let name = svc.name_any();
    let pods = selected_pods(&ctx, &svc);
    let subsets = subsets(&svc, &pods);
    let mut labels = svc.metadata.labels.clone().unwrap_or_default();
    if svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None") {
        labels.insert("service.kubernetes.io/headless".into(), String::new());
    }
    let current = ctx.endpoints.get(Some(&ns), &name);
    let wanted_subsets = (!subsets.is_empty()).then_some(subsets);
    if let Some(cur) = &current
        && cur.subsets == wanted_subsets
        && cur.metadata.labels.clone().unwrap_or_default() == labels
    {
        return Ok(Action::await_change());
    }
    let api = ctx.api::<Endpoints>(&ns);
    let result = match current {
        Some(cur) => {
            let mut updated = (*cur).clone();
            updated.subsets = wanted_subsets;
            updated.metadata.labels = (!labels.is_empty()).then_some(labels);
            api.replace(&name, &PostParams::default(), &updated).await
        }
        None => {
            let ep = Endpoints {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(ns.clone()),
                    labels: (!labels.is_empty()).then_some(labels),
                    ..Default::default()
                },
                subsets: wanted_subsets,
            };
            api.create(&PostParams::default(), &ep).await
        }
    };
    match result {
        Ok(written) => {
            ctx.endpoints.wait_for_write(&written, CACHE_WAIT).await;
            Ok(Action::await_change())
        }
        Err(e) if is_namespace_terminating(&e) => Ok(Action::await_change()),
        // Someone else wrote it first; the change brings us back.
        Err(e) if is_already_exists(&e) || is_not_found(&e) => Ok(Action::await_change()),
        Err(e) => Err(e).ctx(|| format!("writing endpoints {ns}/{name}")),
    }
}

/// Deletes Endpoints whose Service is gone.
async fn reconcile_leftover(ep: Arc<Endpoints>, ctx: Shared) -> Result<Action> {
    let ns = ep.namespace().unwrap_or_default();
    let name = ep.name_any();
    if ep.annotations().contains_key(LEADER_ANNOTATION)
        || ctx.services.get(Some(&ns), &name).is_some()
    {
        return Ok(Action::await_change());
    }
    // The cache may not show a Service created a moment ago.
    if ctx
        .api::<Service>(&ns)
        .get_opt(&name)
        .await
        .ctx(|| format!("reading service {ns}/{name}"))?
        .is_some()
    {
        return Ok(Action::await_change());
    }
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            uid: ep.uid(),
            resource_version: None,
        }),
        ..Default::default()
    };
    match ctx.api::<Endpoints>(&ns).delete(&name, &dp).await {
        Ok(_) => Ok(Action::await_change()),
        Err(e) if is_not_found(&e) || crate::error::is_conflict(&e) => Ok(Action::await_change()),
        Err(e) => Err(e).ctx(|| format!("deleting endpoints {ns}/{name} of a deleted service")),
    }
}

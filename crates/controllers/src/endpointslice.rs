//! EndpointSlices: the same pods as Endpoints, as `discovery.k8s.io/v1` slices
//! of at most 100 endpoints per distinct port set, owned by their Service (so the
//! garbage collector removes them with it). Readiness is a condition of each
//! endpoint; terminating pods stay listed as not ready, serving while ready.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use kube::api::{DeleteParams, PostParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;

use crate::driver::{self, Queue};
use crate::endpoints::{
    has_selector, pod_ip, pod_ref, publishes_not_ready, selected_pods, services_in, target_port,
};
use crate::error::{Context, Result, is_namespace_terminating, is_not_found};
use crate::meta::controlled_by;
use crate::{CACHE_WAIT, Shared};

const SERVICE_NAME: &str = "kubernetes.io/service-name";
const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
const CONTROLLER: &str = "endpointslice-controller.k8s.io";
const MAX_PER_SLICE: usize = 100;

pub async fn run(ctx: Shared) {
    let services = ctx.services.clone();
    let queue = Queue::new(&ctx.services)
        .related(&ctx.pods, move |pod| {
            services_in(&services, pod.metadata.namespace.as_deref())
        })
        .related(&ctx.endpoint_slices, |slice| {
            let ns = slice.metadata.namespace.clone().unwrap_or_default();
            slice
                .labels()
                .get(SERVICE_NAME)
                .map(|s| ObjectRef::new(s).within(&ns))
                .into_iter()
                .collect()
        });
    driver::run(
        "endpointslice",
        queue,
        ctx.clone(),
        reconciler!(reconcile),
        ctx.opts.workers,
    )
    .await;
}

fn endpoint(pod: &Pod, svc: &Service, ip: String, zone: Option<String>) -> Endpoint {
    let ready = crate::pods::is_ready(pod);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    let spec = pod.spec.clone().unwrap_or_default();
    let hostname = spec
        .hostname
        .filter(|h| !h.is_empty() && spec.subdomain.as_deref() == Some(svc.name_any().as_str()));
    Endpoint {
        addresses: vec![ip],
        conditions: Some(EndpointConditions {
            ready: Some((ready && !terminating) || publishes_not_ready(svc)),
            serving: Some(ready),
            terminating: Some(terminating),
        }),
        hostname,
        node_name: spec.node_name.filter(|n| !n.is_empty()),
        target_ref: Some(pod_ref(pod)),
        zone,
        ..Default::default()
    }
}

/// The wanted slices' contents: per port set, the endpoints in address order.
fn wanted(ctx: &Shared, svc: &Service) -> BTreeMap<String, (Vec<EndpointPort>, Vec<Endpoint>)> {
    let ports = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.clone())
        .unwrap_or_default();
    let mut groups: BTreeMap<String, (Vec<EndpointPort>, Vec<Endpoint>)> = BTreeMap::new();
    for pod in selected_pods(ctx, svc) {
        let Some(ip) = pod_ip(&pod) else { continue };
        if crate::pods::is_terminal(&pod) {
            continue;
        }
        let eps: Vec<EndpointPort> = ports
            .iter()
            .filter_map(|p| {
                Some(EndpointPort {
                    name: Some(p.name.clone().unwrap_or_default()),
                    port: Some(target_port(p, &pod)?),
                    protocol: Some(p.protocol.clone().unwrap_or_else(|| "TCP".into())),
                    app_protocol: p.app_protocol.clone(),
                })
            })
            .collect();
        if !ports.is_empty() && eps.is_empty() {
            continue;
        }
        let zone = crate::pods::node_name(&pod)
            .and_then(|n| ctx.nodes.get(None, n))
            .and_then(|n| n.labels().get("topology.kubernetes.io/zone").cloned());
        let key = serde_json::to_string(&eps).unwrap_or_default();
        groups
            .entry(key)
            .or_insert_with(|| (eps, Vec::new()))
            .1
            .push(endpoint(&pod, svc, ip, zone));
    }
    for (_, eps) in groups.values_mut() {
        eps.sort_by(|a, b| a.addresses.cmp(&b.addresses));
    }
    groups
}

async fn reconcile(svc: Arc<Service>, ctx: Shared) -> Result<Action> {
    if !has_selector(&svc) || svc.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = svc.namespace().unwrap_or_default();
    let name = svc.name_any();
    let uid = svc.uid().unwrap_or_default();
    let mut existing: Vec<Arc<EndpointSlice>> = ctx
        .endpoint_slices
        .in_namespace(&ns)
        .into_iter()
        .filter(|s| {
            s.labels().get(SERVICE_NAME) == Some(&name)
                && s.labels().get(MANAGED_BY).map(String::as_str) == Some(CONTROLLER)
        })
        .filter(|s| controlled_by(&s.metadata, &uid))
        .collect();
    existing.sort_by_key(|s| s.name_any());
    let address_type = svc
        .spec
        .as_ref()
        .and_then(|s| s.ip_families.as_ref())
        .and_then(|f| f.first().cloned())
        .unwrap_or_else(|| "IPv4".into());
    let mut labels = svc.metadata.labels.clone().unwrap_or_default();
    labels.insert(SERVICE_NAME.into(), name.clone());
    labels.insert(MANAGED_BY.into(), CONTROLLER.into());
    // A service without pods still has one (empty) slice, as in Kubernetes.
    let mut slices: Vec<(Vec<EndpointPort>, Vec<Endpoint>)> = Vec::new();
    for (ports, eps) in wanted(&ctx, &svc).into_values() {
        for chunk in eps.chunks(MAX_PER_SLICE) {
            slices.push((ports.clone(), chunk.to_vec()));
        }
    }
    if slices.is_empty() {
        slices.push((Vec::new(), Vec::new()));
    }
    let api = ctx.api::<EndpointSlice>(&ns);
    let mut reusable = existing.clone();
    let mut written = Vec::new();
    for (ports, endpoints) in slices {
        let ports = (!ports.is_empty()).then_some(ports);
        let same_ports = reusable.iter().position(|s| s.ports == ports);
        let result = match same_ports.or((!reusable.is_empty()).then_some(0)) {
            Some(i) => {
                let cur = reusable.remove(i);
                if cur.endpoints == endpoints
                    && cur.ports == ports
                    && cur.metadata.labels.as_ref() == Some(&labels)
                    && cur.address_type == address_type
                {
                    continue;
                }
                let mut updated = (*cur).clone();
                updated.endpoints = endpoints;
                updated.ports = ports;
                updated.address_type = address_type.clone();
                updated.metadata.labels = Some(labels.clone());
                api.replace(&cur.name_any(), &PostParams::default(), &updated)
                    .await
            }
            None => {
                let slice = EndpointSlice {
                    metadata: ObjectMeta {
                        generate_name: Some(format!("{name}-")),
                        namespace: Some(ns.clone()),
                        labels: Some(labels.clone()),
                        owner_references: Some(vec![crate::meta::controller_ref(svc.as_ref())]),
                        ..Default::default()
                    },
                    address_type: address_type.clone(),
                    endpoints,
                    ports,
                };
                api.create(&PostParams::default(), &slice).await
            }
        };
        match result {
            Ok(w) => written.push(w),
            Err(e) if is_namespace_terminating(&e) || is_not_found(&e) => {
                return Ok(Action::await_change());
            }
            Err(e) => {
                return Err(e).ctx(|| format!("writing endpoint slices of service {ns}/{name}"));
            }
        }
    }
    for extra in reusable {
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid: extra.uid(),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(&extra.name_any(), &dp).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => {
                return Err(e).ctx(|| format!("deleting endpoint slice {ns}/{}", extra.name_any()));
            }
        }
    }
    for w in &written {
        ctx.endpoint_slices.wait_for_write(w, CACHE_WAIT).await;
    }
    Ok(Action::await_change())
}

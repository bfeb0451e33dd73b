//! DaemonSets: one pod on every node the template fits (node selector, node
//! affinity, taints beyond the default daemon tolerations), pinned to its node by
//! node affinity; failed pods replaced; rolling updates within maxUnavailable
//! (or maxSurge); templates kept as ControllerRevisions.

mod placement;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;

use crate::Shared;
use crate::deployment::scaled_value;
use crate::driver::{self, Queue};
use crate::error::{Error, Result};
use crate::meta::{claim, controller_of, controller_ref, now, selector};
use crate::pods::{is_available, is_ready, seconds_to_available};
use crate::revisions::{self, HASH_LABEL};
use crate::workload::{create_pods, delete_pods};

const COMPONENT: &str = "daemonset-controller";
const REVISION_LABEL: &str = "controller-revision-hash";
const GENERATION_LABEL: &str = "pod-template-generation";

pub async fn run(ctx: Shared) {
    let owner = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| -> Vec<ObjectRef<DaemonSet>> {
        let ns = meta.namespace.clone().unwrap_or_default();
        controller_of(meta)
            .filter(|r| r.kind == "DaemonSet")
            .map(|r| ObjectRef::new(&r.name).within(&ns))
            .into_iter()
            .collect()
    };
    let sets = ctx.daemon_sets.clone();
    let queue = Queue::new(&ctx.daemon_sets)
        .related(&ctx.pods, move |p| owner(&p.metadata))
        .related(&ctx.revisions, move |r| owner(&r.metadata))
        .related(&ctx.nodes, move |_| {
            sets.list()
                .iter()
                .map(|d| ObjectRef::from_obj(d.as_ref()))
                .collect()
        });
    driver::run(
        "daemonset",
        queue,
        ctx.clone(),
        reconciler!(reconcile),
        ctx.opts.workers,
    )
    .await;
}

fn hash_of(p: &Pod) -> Option<&String> {
    p.metadata.labels.as_ref()?.get(REVISION_LABEL)
}

async fn reconcile(ds: Arc<DaemonSet>, ctx: Shared) -> Result<Action> {
    let ns = ds.namespace().unwrap_or_default();
    let spec = ds.spec.clone().unwrap_or_default();
    let sel = match selector(Some(&spec.selector)) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(daemonset = %ds.name_any(), error = %e, "not managing pods");
            return Ok(Action::await_change());
        }
    };
    let pods = claim(ds.as_ref(), &sel, ctx.pods.in_namespace(&ns), |ns| {
        ctx.api::<Pod>(ns)
    })
    .await?;
    let mut status = ds.status.clone().unwrap_or_default();
    let revision =
        match revisions::ensure(&ctx, ds.as_ref(), &spec.template, status.collision_count).await {
            Ok(r) => r,
            Err(Error::Invalid(msg)) if msg.contains("collision") => {
                status.collision_count = Some(status.collision_count.unwrap_or(0) + 1);
                write_status(&ctx, &ds, status).await?;
                return Err(Error::Invalid(msg));
            }
            Err(e) => return Err(e),
        };
    let hash = revision
        .labels()
        .get(HASH_LABEL)
        .cloned()
        .unwrap_or_default();
    let template_spec = spec.template.spec.clone().unwrap_or_default();
    let nodes = ctx.nodes.list();
    let mut by_node: HashMap<String, Vec<Arc<Pod>>> = HashMap::new();
    for p in &pods {
        if let Some(n) = p.spec.as_ref().and_then(placement::target_node) {
            by_node.entry(n).or_default().push(p.clone());
        }
    }
    let now = now();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);

    if ds.metadata.deletion_timestamp.is_none() {
        let mut create_on: Vec<String> = Vec::new();
        let mut doomed: Vec<Arc<Pod>> = Vec::new();
        for node in &nodes {
            let name = node.name_any();
            let (should_run, may_stay) = placement::fits(&template_spec, node);
            let here = by_node.get(&name).cloned().unwrap_or_default();
            let live: Vec<Arc<Pod>> = here
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .cloned()
                .collect();
            let (failed, mut running): (Vec<Arc<Pod>>, Vec<Arc<Pod>>) = live
                .into_iter()
                .partition(|p| crate::pods::phase(p) == "Failed");
            for f in &failed {
                let msg = format!(
                    "Found failed daemon pod {ns}/{} on node {name}, will try to kill it",
                    f.name_any()
                );
                ctx.events
                    .warning(COMPONENT, ds.as_ref(), "FailedDaemonPod", msg)
                    .await;
            }
            doomed.extend(failed);
            if should_run || (may_stay && !running.is_empty()) {
                if running.is_empty()
                    && should_run
                    && here.iter().all(|p| p.metadata.deletion_timestamp.is_none())
                {
                    create_on.push(name.clone());
                }
                // One per node: the oldest stays.
                running.sort_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0));
                if running.len() > 1 {
                    doomed.extend(running.split_off(1));
                }
            } else {
                doomed.extend(running);
            }
        }
        doomed.extend(rolling_update(
            &ds,
            &nodes,
            &by_node,
            &hash,
            &now,
            &mut create_on,
        ));
        if !doomed.is_empty() {
            delete_pods(&ctx, ds.as_ref(), COMPONENT, &doomed).await?;
        }
        let new: Vec<Pod> = create_on
            .iter()
            .map(|node| {
                let mut pod = crate::pods::from_template(
                    &spec.template,
                    &ns,
                    controller_ref(ds.as_ref()),
                    &format!("{}-", ds.name_any()),
                );
                let labels = pod.metadata.labels.get_or_insert_with(Default::default);
                labels.insert(REVISION_LABEL.into(), hash.clone());
                labels.insert(
                    GENERATION_LABEL.into(),
                    ds.metadata.generation.unwrap_or(1).to_string(),
                );
                if let Some(ps) = pod.spec.as_mut() {
                    placement::pin_to_node(ps, node);
                    placement::add_default_tolerations(ps);
                }
                pod
            })
            .collect();
        if !new.is_empty() {
            let (_, err) = create_pods(&ctx, ds.as_ref(), COMPONENT, new).await;
            if let Some(e) = err {
                return Err(e);
            }
        }
    }

    // Status, from the cache after this pass's writes.
    let uid = ds.uid().unwrap_or_default();
    let mut fresh: HashMap<String, Vec<Arc<Pod>>> = HashMap::new();
    for p in ctx.pods.in_namespace(&ns).into_iter().filter(|p| {
        crate::meta::controlled_by(&p.metadata, &uid) && p.metadata.deletion_timestamp.is_none()
    }) {
        if let Some(n) = p.spec.as_ref().and_then(placement::target_node) {
            fresh.entry(n).or_default().push(p);
        }
    }
    let (mut desired, mut current, mut misscheduled, mut ready, mut updated, mut available) =
        (0, 0, 0, 0, 0, 0);
    let mut next: Option<f64> = None;
    for node in &nodes {
        let (should_run, _) = placement::fits(&template_spec, node);
        let here = fresh.get(&node.name_any()).cloned().unwrap_or_default();
        if !should_run {
            misscheduled += i32::from(!here.is_empty());
            continue;
        }
        desired += 1;
        let Some(p) = here.first() else { continue };
        current += 1;
        ready += i32::from(is_ready(p));
        updated += i32::from(hash_of(p) == Some(&hash));
        available += i32::from(is_available(p, min_ready, &now));
        if let Some(s) = seconds_to_available(p, min_ready, &now) {
            next = Some(next.map_or(s, |n: f64| n.min(s)));
        }
    }
    status.desired_number_scheduled = desired;
    status.current_number_scheduled = current;
    status.number_misscheduled = misscheduled;
    status.number_ready = ready;
    status.updated_number_scheduled = Some(updated);
    status.number_available = Some(available);
    status.number_unavailable = Some((desired - available).max(0));
    status.observed_generation = ds.metadata.generation;
    let history = revisions::history(&ctx, ds.as_ref());
    let live: HashSet<String> = history
        .iter()
        .filter(|r| {
            r.labels().get(HASH_LABEL).is_some_and(|h| {
                *h == hash || fresh.values().flatten().any(|p| hash_of(p) == Some(h))
            })
        })
        .map(|r| r.name_any())
        .collect();
    revisions::truncate(
        &ctx,
        &history,
        &live,
        spec.revision_history_limit.unwrap_or(10),
    )
    .await?;
    write_status(&ctx, &ds, status).await?;
    Ok(next.map_or(Action::await_change(), |s| {
        Action::requeue(Duration::from_secs_f64(s + 0.1))
    }))
}

/// Old pods to delete now, within the unavailability budget (or, with surge, the
/// nodes to start a new pod on beside the old one).
fn rolling_update(
    ds: &DaemonSet,
    nodes: &[Arc<k8s_openapi::api::core::v1::Node>],
    by_node: &HashMap<String, Vec<Arc<Pod>>>,
    hash: &str,
    now: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
    create_on: &mut Vec<String>,
) -> Vec<Arc<Pod>> {
    let spec = ds.spec.clone().unwrap_or_default();
    let strategy = spec.update_strategy.clone().unwrap_or_default();
    if strategy
        .type_
        .as_deref()
        .is_some_and(|t| t != "RollingUpdate")
    {
        return Vec::new();
    }
    let template_spec = spec.template.spec.clone().unwrap_or_default();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let eligible: Vec<String> = nodes
        .iter()
        .filter(|n| placement::fits(&template_spec, n).0)
        .map(|n| n.name_any())
        .collect();
    let desired = i32::try_from(eligible.len()).unwrap_or(i32::MAX);
    let ru = strategy.rolling_update.clone().unwrap_or_default();
    let surge = scaled_value(ru.max_surge.as_ref(), desired, true);
    let max_unavailable = scaled_value(
        ru.max_unavailable.as_ref().or(Some(
            &k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1),
        )),
        desired,
        true,
    );
    let live = |n: &str| -> Vec<Arc<Pod>> {
        by_node
            .get(n)
            .into_iter()
            .flatten()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .cloned()
            .collect()
    };
    let mut doomed = Vec::new();
    if surge > 0 {
        let mut surging = eligible
            .iter()
            .filter(|n| {
                let pods = live(n);
                pods.iter()
                    .any(|p| hash_of(p).map(String::as_str) != Some(hash))
                    && pods
                        .iter()
                        .any(|p| hash_of(p).map(String::as_str) == Some(hash))
            })
            .count() as i32;
        for n in &eligible {
            let pods = live(n);
            let old: Vec<Arc<Pod>> = pods
                .iter()
                .filter(|p| hash_of(p).map(String::as_str) != Some(hash))
                .cloned()
                .collect();
            let new_ready = pods.iter().any(|p| {
                hash_of(p).map(String::as_str) == Some(hash) && is_available(p, min_ready, now)
            });
            let has_new = pods
                .iter()
                .any(|p| hash_of(p).map(String::as_str) == Some(hash));
            if old.is_empty() {
                continue;
            }
            if new_ready {
                doomed.extend(old);
            } else if !has_new && surging < surge {
                create_on.push(n.clone());
                surging += 1;
            }
        }
        return doomed;
    }
    let mut unavailable = eligible
        .iter()
        .filter(|n| !live(n).iter().any(|p| is_available(p, min_ready, now)))
        .count() as i32;
    for n in &eligible {
        for p in live(n)
            .into_iter()
            .filter(|p| hash_of(p).map(String::as_str) != Some(hash))
        {
            if !is_available(&p, min_ready, now) {
                // Already down: replacing it costs no availability.
                doomed.push(p);
            } else if unavailable < max_unavailable {
                doomed.push(p);
                unavailable += 1;
            }
        }
    }
    doomed
}

async fn write_status(ctx: &Shared, ds: &DaemonSet, status: DaemonSetStatus) -> Result<()> {
    if ds.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let mut updated = ds.clone();
    updated.status = Some(status);
    crate::workload::replace_status(ctx, &ctx.daemon_sets, updated).await
}

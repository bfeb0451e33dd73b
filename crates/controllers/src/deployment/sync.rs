//! Finding or creating the new ReplicaSet, and the Deployment's status and
//! conditions.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{DeploymentStatus, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use kube::api::PostParams;

use super::util::{
    HASH_LABEL, by_creation, complete, condition, equal_ignore_hash, max_revision, max_surge,
    max_unavailable, new_condition, progress_deadline, progressing, remove_condition, replicas,
    rs_replicas, rs_status, set_condition, set_new_rs_annotations, template_hash,
};
use super::{COMPONENT, Sync};
use crate::CACHE_WAIT;
use crate::error::{Context, Error, Result, is_already_exists, is_namespace_terminating};
use crate::meta::{add_seconds, controlled_by, controller_ref, seconds_since};

const PROGRESSING: &str = "Progressing";
const AVAILABLE: &str = "Available";
const REPLICA_FAILURE: &str = "ReplicaFailure";
const TIMED_OUT: &str = "ProgressDeadlineExceeded";
const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
const PAUSED: &str = "DeploymentPaused";

impl Sync<'_> {
    fn template(&self) -> k8s_openapi::api::core::v1::PodTemplateSpec {
        self.d
            .spec
            .as_ref()
            .map(|s| s.template.clone())
            .unwrap_or_default()
    }

    /// The ReplicaSet running the current template (the oldest such), and the rest.
    pub(super) fn split(&self, rs_list: &[ReplicaSet]) -> (Option<ReplicaSet>, Vec<ReplicaSet>) {
        let template = self.template();
        let mut sorted: Vec<ReplicaSet> = rs_list.to_vec();
        sorted.sort_by(by_creation);
        let new = sorted
            .iter()
            .find(|r| {
                r.spec
                    .as_ref()
                    .and_then(|s| s.template.as_ref())
                    .is_some_and(|t| equal_ignore_hash(t, &template))
            })
            .cloned();
        let old = sorted
            .into_iter()
            .filter(|r| Some(r.uid()) != new.as_ref().map(|n| n.uid()))
            .collect();
        (new, old)
    }

    /// The new ReplicaSet with its revision brought up to date (created when
    /// `create` and missing), and the old ones. Keeps the Deployment's revision
    /// annotation and Progressing condition in step.
    pub(super) async fn new_and_old(
        &mut self,
        rs_list: &[ReplicaSet],
        create: bool,
    ) -> Result<(Option<ReplicaSet>, Vec<ReplicaSet>)> {
        let (existing, old) = self.split(rs_list);
        let new_revision = max_revision(&old) + 1;
        if let Some(existing) = existing {
            let mut rs = existing.clone();
            let changed = set_new_rs_annotations(&self.d, &mut rs, new_revision, true);
            let min_ready = self.d.spec.as_ref().and_then(|s| s.min_ready_seconds);
            let spec_min_ready = rs.spec.as_ref().and_then(|s| s.min_ready_seconds);
            let rs = if changed || min_ready.unwrap_or(0) != spec_min_ready.unwrap_or(0) {
                if let Some(spec) = rs.spec.as_mut() {
                    spec.min_ready_seconds = min_ready;
                }
                self.update_rs(&rs).await?
            } else {
                rs
            };
            let revision = rs
                .annotations()
                .get(super::util::REVISION)
                .cloned()
                .unwrap_or_default();
            self.set_revision(&revision).await?;
            let mut status = self.d.status.clone().unwrap_or_default();
            if progress_deadline(&self.d).is_some() && condition(&status, PROGRESSING).is_none() {
                let msg = format!("Found new replica set \"{}\"", rs.name_any());
                set_condition(
                    &mut status,
                    new_condition(PROGRESSING, "True", "FoundNewReplicaSet", msg, &self.now),
                );
                self.write_status(status).await?;
            }
            return Ok((Some(rs), old));
        }
        if !create {
            return Ok((None, old));
        }
        let created = self.create_new_rs(&old, new_revision).await?;
        Ok((Some(created), old))
    }

    async fn create_new_rs(&mut self, old: &[ReplicaSet], new_revision: i64) -> Result<ReplicaSet> {
        let mut template = self.template();
        let collisions = self.d.status.as_ref().and_then(|s| s.collision_count);
        let hash = template_hash(&template, collisions);
        template
            .metadata
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(Default::default)
            .insert(HASH_LABEL.into(), hash.clone());
        let mut sel = self
            .d
            .spec
            .as_ref()
            .map(|s| s.selector.clone())
            .unwrap_or_default();
        sel.match_labels
            .get_or_insert_with(Default::default)
            .insert(HASH_LABEL.into(), hash.clone());
        let mut rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(format!("{}-{hash}", self.name())),
                namespace: Some(self.ns.clone()),
                owner_references: Some(vec![controller_ref(&self.d)]),
                labels: template.metadata.as_ref().and_then(|m| m.labels.clone()),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: self.d.spec.as_ref().and_then(|s| s.min_ready_seconds),
                selector: sel,
                template: Some(template),
            }),
            status: None,
        };
        let all: Vec<ReplicaSet> = old.iter().cloned().chain([rs.clone()]).collect();
        let size = self.new_rs_size(&all, &rs);
        if let Some(spec) = rs.spec.as_mut() {
            spec.replicas = Some(size);
        }
        set_new_rs_annotations(&self.d, &mut rs, new_revision, false);
        let (created, fresh) = match self.rs_api().create(&PostParams::default(), &rs).await {
            Ok(c) => (c, true),
            Err(e) if is_already_exists(&e) => {
                let found = self
                    .rs_api()
                    .get(&rs.name_any())
                    .await
                    .ctx(|| format!("reading replicaset {}", rs.name_any()))?;
                let same = controlled_by(&found.metadata, &self.d.uid().unwrap_or_default())
                    && found
                        .spec
                        .as_ref()
                        .and_then(|s| s.template.as_ref())
                        .is_some_and(|t| equal_ignore_hash(t, &self.template()));
                if !same {
                    // Another template hashed to the same name: try the next name.
                    let mut status = self.d.status.clone().unwrap_or_default();
                    status.collision_count = Some(status.collision_count.unwrap_or(0) + 1);
                    self.write_status(status).await?;
                    return Err(Error::Invalid(format!(
                        "hash collision for replicaset {}",
                        rs.name_any()
                    )));
                }
                (found, false)
            }
            Err(e) if is_namespace_terminating(&e) => {
                return Err(e).ctx(|| "creating replicaset".into());
            }
            Err(e) => {
                let msg = format!(
                    "Failed to create new replica set \"{}\": {e}",
                    rs.name_any()
                );
                if progress_deadline(&self.d).is_some() {
                    let mut status = self.d.status.clone().unwrap_or_default();
                    set_condition(
                        &mut status,
                        new_condition(
                            PROGRESSING,
                            "False",
                            "ReplicaSetCreateError",
                            msg.clone(),
                            &self.now,
                        ),
                    );
                    self.write_status(status).await?;
                }
                self.ctx
                    .events
                    .warning(COMPONENT, &self.d, "ReplicaSetCreateError", msg)
                    .await;
                return Err(e).ctx(|| "creating replicaset".into());
            }
        };
        self.ctx
            .replica_sets
            .wait_for_write(&created, CACHE_WAIT)
            .await;
        if fresh && size > 0 {
            let msg = format!(
                "Scaled up replica set {} from 0 to {size}",
                created.name_any()
            );
            self.ctx
                .events
                .normal(COMPONENT, &self.d, "ScalingReplicaSet", msg)
                .await;
        }
        self.set_revision(&new_revision.to_string()).await?;
        if fresh && progress_deadline(&self.d).is_some() {
            let mut status = self.d.status.clone().unwrap_or_default();
            let msg = format!("Created new replica set \"{}\"", created.name_any());
            set_condition(
                &mut status,
                new_condition(PROGRESSING, "True", "NewReplicaSetCreated", msg, &self.now),
            );
            self.write_status(status).await?;
        }
        Ok(created)
    }

    /// How big a new ReplicaSet starts: as far as the surge allows for a rolling
    /// update, the whole size for Recreate.
    fn new_rs_size(&self, all: &[ReplicaSet], new: &ReplicaSet) -> i32 {
        let want = replicas(&self.d);
        let rolling = self
            .d
            .spec
            .as_ref()
            .and_then(|s| s.strategy.as_ref())
            .and_then(|s| s.type_.as_deref())
            .is_none_or(|t| t == "RollingUpdate");
        if !rolling {
            return want;
        }
        let max_total = want + max_surge(&self.d);
        let current = super::util::total(all.iter().map(rs_replicas));
        if current >= max_total {
            return rs_replicas(new);
        }
        rs_replicas(new) + (max_total - current).min(want - rs_replicas(new))
    }

    /// Records the revision on the Deployment itself (`kubectl rollout history`
    /// and `undo` compare against it).
    async fn set_revision(&mut self, revision: &str) -> Result<()> {
        let current = self.d.annotations().get(super::util::REVISION).cloned();
        if current.as_deref() == Some(revision) || revision.is_empty() {
            return Ok(());
        }
        let mut updated = self.d.clone();
        updated
            .metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(super::util::REVISION.into(), revision.into());
        let written = self
            .api()
            .replace(&self.name(), &PostParams::default(), &updated)
            .await
            .ctx(|| format!("recording the revision of deployment {}", self.name()))?;
        self.ctx
            .deployments
            .wait_for_write(&written, CACHE_WAIT)
            .await;
        self.d = written;
        Ok(())
    }

    /// Progressing is Unknown while paused and after resuming, so the progress
    /// deadline does not count the pause.
    pub(super) async fn check_paused_conditions(&mut self) -> Result<()> {
        if progress_deadline(&self.d).is_none() {
            return Ok(());
        }
        let mut status = self.d.status.clone().unwrap_or_default();
        let cond = condition(&status, PROGRESSING).cloned();
        if cond.as_ref().and_then(|c| c.reason.as_deref()) == Some(TIMED_OUT) {
            return Ok(());
        }
        let paused_recorded = cond.as_ref().and_then(|c| c.reason.as_deref()) == Some(PAUSED);
        let paused = self.d.spec.as_ref().and_then(|s| s.paused) == Some(true);
        if paused && !paused_recorded {
            set_condition(
                &mut status,
                new_condition(
                    PROGRESSING,
                    "Unknown",
                    PAUSED,
                    "Deployment is paused".into(),
                    &self.now,
                ),
            );
        } else if !paused && paused_recorded {
            set_condition(
                &mut status,
                new_condition(
                    PROGRESSING,
                    "Unknown",
                    "DeploymentResumed",
                    "Deployment is resumed".into(),
                    &self.now,
                ),
            );
        } else {
            return Ok(());
        }
        self.write_status(status).await
    }

    pub(super) async fn sync_status_only(&mut self, rs_list: &[ReplicaSet]) -> Result<()> {
        let (new, old) = self.new_and_old(rs_list, false).await?;
        let all = self.current(&old, new.as_ref());
        let status = self.calculate_status(&all, new.as_ref());
        self.write_status(status).await
    }

    pub(super) fn calculate_status(
        &self,
        all: &[ReplicaSet],
        new: Option<&ReplicaSet>,
    ) -> DeploymentStatus {
        let want = replicas(&self.d);
        let sum = |f: fn(&ReplicaSet) -> i32| super::util::total(all.iter().map(f));
        let available = sum(|r| rs_status(r).2);
        let total: i32 = sum(rs_replicas);
        let old = self.d.status.clone().unwrap_or_default();
        let mut status = DeploymentStatus {
            observed_generation: self.d.metadata.generation,
            replicas: Some(sum(|r| rs_status(r).0)),
            updated_replicas: Some(new.map_or(0, |n| rs_status(n).0)),
            ready_replicas: Some(sum(|r| rs_status(r).1)),
            available_replicas: Some(available),
            unavailable_replicas: Some((total - available).max(0)),
            collision_count: old.collision_count,
            conditions: old.conditions.clone(),
            terminating_replicas: old.terminating_replicas,
        };
        let cond = if available >= want - max_unavailable(&self.d) {
            new_condition(
                AVAILABLE,
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.".into(),
                &self.now,
            )
        } else {
            new_condition(
                AVAILABLE,
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.".into(),
                &self.now,
            )
        };
        set_condition(&mut status, cond);
        status
    }

    /// The status of a rollout in progress, with Progressing showing whether it
    /// moves, finished, or ran out of its deadline.
    pub(super) async fn sync_rollout_status(
        &mut self,
        all: &[ReplicaSet],
        new: Option<&ReplicaSet>,
    ) -> Result<()> {
        let mut status = self.calculate_status(all, new);
        let deadline = progress_deadline(&self.d);
        if deadline.is_none() {
            remove_condition(&mut status, PROGRESSING);
        }
        let old_status = self.d.status.clone().unwrap_or_default();
        let current = condition(&old_status, PROGRESSING).cloned();
        let finished = status.replicas == status.updated_replicas
            && current.as_ref().and_then(|c| c.reason.as_deref()) == Some(NEW_RS_AVAILABLE);
        let subject = match new {
            Some(n) => format!("ReplicaSet \"{}\"", n.name_any()),
            None => format!("Deployment \"{}\"", self.name()),
        };
        if let Some(deadline) = deadline
            && !finished
        {
            if complete(&self.d, &status) {
                let msg = format!("{subject} has successfully progressed.");
                set_condition(
                    &mut status,
                    new_condition(PROGRESSING, "True", NEW_RS_AVAILABLE, msg, &self.now),
                );
            } else if progressing(&self.d, &status) {
                let msg = format!("{subject} is progressing.");
                let mut cond =
                    new_condition(PROGRESSING, "True", "ReplicaSetUpdated", msg, &self.now);
                // Progress refreshes the update time only; the transition stays.
                if let Some(cur) = &current
                    && cur.status == "True"
                {
                    cond.last_transition_time = cur.last_transition_time.clone();
                }
                remove_condition(&mut status, PROGRESSING);
                set_condition(&mut status, cond);
            } else if timed_out(current.as_ref(), deadline, &self.now) {
                let msg = format!("{subject} has timed out progressing.");
                set_condition(
                    &mut status,
                    new_condition(PROGRESSING, "False", TIMED_OUT, msg, &self.now),
                );
            }
        }
        let failure = all.iter().chain(new).find_map(|r| {
            r.status
                .as_ref()?
                .conditions
                .as_ref()?
                .iter()
                .find(|c| c.type_ == REPLICA_FAILURE && c.status == "True")
                .cloned()
        });
        match failure {
            Some(f) => {
                let msg = f.message.clone().unwrap_or_default();
                let reason = f.reason.clone().unwrap_or_default();
                set_condition(
                    &mut status,
                    new_condition(REPLICA_FAILURE, "True", &reason, msg, &self.now),
                );
            }
            None => remove_condition(&mut status, REPLICA_FAILURE),
        }
        self.schedule_deadline_check(&status);
        self.write_status(status).await
    }

    /// A rollout that stops moving must still be noticed when its deadline passes.
    fn schedule_deadline_check(&mut self, status: &DeploymentStatus) {
        let Some(deadline) = progress_deadline(&self.d) else {
            return;
        };
        let Some(cond) = condition(status, PROGRESSING) else {
            return;
        };
        if complete(&self.d, status) || cond.reason.as_deref() == Some(TIMED_OUT) {
            return;
        }
        let Some(updated) = &cond.last_update_time else {
            return;
        };
        let due = add_seconds(updated, i64::from(deadline));
        let left = -seconds_since(&due, &self.now);
        let after = if left < 1.0 {
            Duration::from_secs(1)
        } else {
            Duration::from_secs_f64(left + 1.0)
        };
        self.requeue = Some(self.requeue.map_or(after, |r| r.min(after)));
    }
}

fn timed_out(
    cond: Option<&k8s_openapi::api::apps::v1::DeploymentCondition>,
    deadline: i32,
    now: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
) -> bool {
    let Some(c) = cond else { return false };
    match c.reason.as_deref() {
        Some(NEW_RS_AVAILABLE) => false,
        Some(TIMED_OUT) => true,
        _ => c
            .last_update_time
            .as_ref()
            .is_some_and(|t| seconds_since(t, now) > f64::from(deadline)),
    }
}

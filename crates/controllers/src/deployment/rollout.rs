//! The two rollout strategies and scaling, on the ReplicaSets of one Deployment.

use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::ResourceExt;
use kube::api::{DeleteParams, Preconditions};

use super::util::{
    by_creation, by_size, complete, desired_replicas_annotation, max_surge, max_unavailable,
    proportion, replicas, replicas_annotations_need_update, revision, rs_replicas, rs_status,
    set_replicas_annotations, total,
};
use super::{COMPONENT, Sync};
use crate::error::{Context, Result, is_not_found};
use crate::pods::is_terminal;

fn active(sets: &[ReplicaSet]) -> Vec<ReplicaSet> {
    sets.iter()
        .filter(|r| rs_replicas(r) > 0)
        .cloned()
        .collect()
}

fn total_replicas(sets: &[ReplicaSet]) -> i32 {
    total(sets.iter().map(rs_replicas))
}

fn total_available(sets: &[ReplicaSet]) -> i32 {
    total(sets.iter().map(|r| rs_status(r).2))
}

impl Sync<'_> {
    /// A scale, not a new template: some active ReplicaSet was sized for a
    /// different replica count than the Deployment now asks for.
    pub(super) fn is_scaling_event(&self, rs_list: &[ReplicaSet]) -> bool {
        let want = replicas(&self.d);
        let (new, old) = self.split(rs_list);
        active(&old.into_iter().chain(new).collect::<Vec<_>>())
            .iter()
            .any(|r| desired_replicas_annotation(r).is_some_and(|d| d != want))
    }

    /// Scaling without rolling out, for paused Deployments and scale events.
    pub(super) async fn sync(&mut self, rs_list: &[ReplicaSet]) -> Result<()> {
        let (new, old) = self.new_and_old(rs_list, false).await?;
        self.scale(new.clone(), old.clone()).await?;
        if self.d.spec.as_ref().and_then(|s| s.paused) == Some(true) {
            self.cleanup(&old).await?;
        }
        let all = self.current(&old, new.as_ref());
        let status = self.calculate_status(&all, new.as_ref());
        self.write_status(status).await
    }

    pub(super) async fn rollout_rolling(&mut self, rs_list: &[ReplicaSet]) -> Result<()> {
        let (new, old) = self.new_and_old(rs_list, true).await?;
        let Some(new) = new else {
            return Ok(());
        };
        let all: Vec<ReplicaSet> = old.iter().cloned().chain([new.clone()]).collect();
        if self.reconcile_new(&all, &new).await? {
            let all = self.current(&old, Some(&new));
            return self.sync_rollout_status(&all, Some(&new)).await;
        }
        let active_old = active(&old);
        if self.reconcile_old(&all, active_old, &new).await? {
            let all = self.current(&old, Some(&new));
            return self.sync_rollout_status(&all, Some(&new)).await;
        }
        if complete(
            &self.d,
            self.d.status.as_ref().unwrap_or(&Default::default()),
        ) {
            self.cleanup(&old).await?;
        }
        self.sync_rollout_status(&all, Some(&new)).await
    }

    pub(super) async fn rollout_recreate(&mut self, rs_list: &[ReplicaSet]) -> Result<()> {
        let (new, old) = self.new_and_old(rs_list, false).await?;
        let mut scaled_down = false;
        for rs in active(&old) {
            scaled_down |= self.scale_rs(&rs, 0).await?.0;
        }
        if scaled_down {
            let all = self.current(&old, new.as_ref());
            return self.sync_rollout_status(&all, new.as_ref()).await;
        }
        // Not one old pod may run next to a new one: wait for them to be gone.
        let old_running = old.iter().any(|r| rs_status(r).0 > 0)
            || self.pods_of(&old).iter().any(|p| !is_terminal(p));
        if old_running {
            let all = self.current(&old, new.as_ref());
            return self.sync_rollout_status(&all, new.as_ref()).await;
        }
        let (new, old) = match new {
            Some(n) => (n, old),
            None => match self.new_and_old(rs_list, true).await? {
                (Some(n), o) => (n, o),
                (None, _) => return Ok(()),
            },
        };
        let want = replicas(&self.d);
        self.scale_rs(&new, want).await?;
        if complete(
            &self.d,
            self.d.status.as_ref().unwrap_or(&Default::default()),
        ) {
            self.cleanup(&old).await?;
        }
        let all = self.current(&old, Some(&new));
        self.sync_rollout_status(&all, Some(&new)).await
    }

    /// The ReplicaSets as the cache shows them now (after this reconcile's writes).
    pub(super) fn current(&self, old: &[ReplicaSet], new: Option<&ReplicaSet>) -> Vec<ReplicaSet> {
        old.iter()
            .chain(new)
            .map(|r| {
                self.ctx
                    .replica_sets
                    .get(Some(&self.ns), &r.name_any())
                    .filter(|c| c.uid() == r.uid())
                    .map_or_else(|| r.clone(), |c| (*c).clone())
            })
            .collect()
    }

    /// Scales the new ReplicaSet up, as far as the surge allows.
    async fn reconcile_new(&mut self, all: &[ReplicaSet], new: &ReplicaSet) -> Result<bool> {
        let want = replicas(&self.d);
        let have = rs_replicas(new);
        if have == want {
            return Ok(false);
        }
        if have > want {
            return Ok(self.scale_rs(new, want).await?.0);
        }
        let max_total = want + max_surge(&self.d);
        let current = total_replicas(all);
        let target = if current >= max_total {
            have
        } else {
            have + (max_total - current).min(want - have)
        };
        Ok(self.scale_rs(new, target).await?.0)
    }

    /// Scales old ReplicaSets down as far as availability allows, unhealthy
    /// replicas first.
    async fn reconcile_old(
        &mut self,
        all: &[ReplicaSet],
        mut old: Vec<ReplicaSet>,
        new: &ReplicaSet,
    ) -> Result<bool> {
        if total_replicas(&old) == 0 {
            return Ok(false);
        }
        let min_available = replicas(&self.d) - max_unavailable(&self.d);
        let new_unavailable = rs_replicas(new) - rs_status(new).2;
        let max_scaled_down = total_replicas(all) - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return Ok(false);
        }
        // Unhealthy old replicas would otherwise hold the rollout back forever.
        old.sort_by(by_creation);
        let mut cleaned = 0;
        for rs in old.iter_mut() {
            if cleaned >= max_scaled_down {
                break;
            }
            let (size, available) = (rs_replicas(rs), rs_status(rs).2);
            if size == 0 || size == available {
                continue;
            }
            let down = (max_scaled_down - cleaned).min(size - available);
            let (_, updated) = self.scale_rs(rs, size - down).await?;
            *rs = updated;
            cleaned += down;
        }
        let all: Vec<ReplicaSet> = old.iter().cloned().chain([new.clone()]).collect();
        let available = total_available(&all);
        let mut scaled = 0;
        if available > min_available {
            let budget = available - min_available;
            for rs in &old {
                if scaled >= budget {
                    break;
                }
                let size = rs_replicas(rs);
                if size == 0 {
                    continue;
                }
                let down = size.min(budget - scaled);
                self.scale_rs(rs, size - down).await?;
                scaled += down;
            }
        }
        Ok(cleaned + scaled > 0)
    }

    /// Brings the total to the Deployment's size: all of it to the one active
    /// ReplicaSet, old ones to zero once the new one is saturated, otherwise
    /// proportionally to their sizes.
    async fn scale(&mut self, new: Option<ReplicaSet>, mut old: Vec<ReplicaSet>) -> Result<()> {
        let want = replicas(&self.d);
        if new.is_none() && old.is_empty() {
            return Ok(());
        }
        old.sort_by(|a, b| by_creation(b, a));
        let all: Vec<ReplicaSet> = old.iter().cloned().chain(new.clone()).collect();
        let live = active(&all);
        let target = match live.len() {
            0 => new.clone().or_else(|| old.first().cloned()),
            1 => live.first().cloned(),
            _ => None,
        };
        if let Some(rs) = target {
            if rs_replicas(&rs) != want {
                self.scale_rs(&rs, want).await?;
            }
            return Ok(());
        }
        let saturated = new.as_ref().is_some_and(|n| {
            desired_replicas_annotation(n) == Some(want)
                && rs_replicas(n) == want
                && rs_status(n).2 == want
        });
        if saturated {
            for rs in active(&old) {
                self.scale_rs(&rs, 0).await?;
            }
            return Ok(());
        }
        if !self.is_rolling() {
            return Ok(());
        }
        let mut live = live;
        let allowed = if want > 0 {
            want + max_surge(&self.d)
        } else {
            0
        };
        let to_add = allowed - total_replicas(&live);
        if to_add > 0 {
            live.sort_by(|a, b| by_size(a, b, true));
        } else if to_add < 0 {
            live.sort_by(|a, b| by_size(a, b, false));
        }
        let mut added = 0;
        let mut sizes: Vec<i32> = Vec::with_capacity(live.len());
        for rs in &live {
            let p = if to_add != 0 {
                proportion(rs, &self.d, to_add, added)
            } else {
                0
            };
            sizes.push(rs_replicas(rs) + p);
            added += p;
        }
        if let Some(first) = sizes.first_mut()
            && to_add != 0
        {
            *first = (*first + to_add - added).max(0);
        }
        for (rs, size) in live.iter().zip(sizes) {
            self.scale_rs(rs, size).await?;
        }
        Ok(())
    }

    fn is_rolling(&self) -> bool {
        self.d
            .spec
            .as_ref()
            .and_then(|s| s.strategy.as_ref())
            .and_then(|s| s.type_.as_deref())
            .is_none_or(|t| t == "RollingUpdate")
    }

    /// Sets a ReplicaSet's size (and the replica annotations), recording
    /// ScalingReplicaSet. Returns whether the size changed, and the ReplicaSet.
    pub(super) async fn scale_rs(
        &mut self,
        rs: &ReplicaSet,
        size: i32,
    ) -> Result<(bool, ReplicaSet)> {
        let want = replicas(&self.d);
        let max = want + max_surge(&self.d);
        let old_size = rs_replicas(rs);
        let resize = old_size != size;
        if !resize && !replicas_annotations_need_update(rs, want, max) {
            return Ok((false, rs.clone()));
        }
        let mut updated = rs.clone();
        if let Some(spec) = updated.spec.as_mut() {
            spec.replicas = Some(size);
        }
        set_replicas_annotations(&mut updated, want, max);
        let written = self.update_rs(&updated).await?;
        if resize {
            let direction = if old_size < size { "up" } else { "down" };
            self.ctx
                .events
                .normal(
                    COMPONENT,
                    &self.d,
                    "ScalingReplicaSet",
                    format!(
                        "Scaled {direction} replica set {} from {old_size} to {size}",
                        rs.name_any()
                    ),
                )
                .await;
        }
        Ok((resize, written))
    }

    /// Deletes the oldest fully scaled-down ReplicaSets beyond
    /// `revisionHistoryLimit`.
    pub(super) async fn cleanup(&self, old: &[ReplicaSet]) -> Result<()> {
        let limit = self
            .d
            .spec
            .as_ref()
            .and_then(|s| s.revision_history_limit)
            .unwrap_or(10);
        let mut cleanable: Vec<&ReplicaSet> = old
            .iter()
            .filter(|r| r.metadata.deletion_timestamp.is_none())
            .collect();
        let excess = cleanable
            .len()
            .saturating_sub(usize::try_from(limit.max(0)).unwrap_or(0));
        if excess == 0 {
            return Ok(());
        }
        cleanable.sort_by_key(|r| revision(r));
        for rs in cleanable.into_iter().take(excess) {
            let status = rs.status.clone().unwrap_or_default();
            if status.replicas != 0
                || rs_replicas(rs) != 0
                || rs.metadata.generation > status.observed_generation
            {
                continue;
            }
            let dp = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: rs.uid(),
                    resource_version: None,
                }),
                ..Default::default()
            };
            match self.rs_api().delete(&rs.name_any(), &dp).await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => {
                    return Err(e).ctx(|| format!("deleting old replicaset {}", rs.name_any()));
                }
            }
        }
        Ok(())
    }
}

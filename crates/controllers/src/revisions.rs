//! ControllerRevisions, the history StatefulSets and DaemonSets keep of their pod
//! templates. Each revision's data is the patch `kubectl rollout undo` applies:
//! `{"spec":{"template":{…,"$patch":"replace"}}}`.

use std::collections::HashSet;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::{DeleteParams, PostParams, Preconditions};
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

use crate::error::{Context, Error, Result, is_already_exists, is_not_found};
use crate::meta::{controlled_by, controller_ref, safe_hash};
use crate::{CACHE_WAIT, Shared};

pub const HASH_LABEL: &str = "controller.kubernetes.io/hash";

pub fn data_of(template: &PodTemplateSpec) -> Value {
    let mut t = serde_json::to_value(template).unwrap_or_default();
    if let Some(map) = t.as_object_mut() {
        map.insert("$patch".into(), json!("replace"));
    }
    json!({"spec": {"template": t}})
}

/// The pod template a revision holds.
pub fn template_of(rev: &ControllerRevision) -> Option<PodTemplateSpec> {
    let mut t = rev.data.as_ref()?.0.pointer("/spec/template")?.clone();
    if let Some(map) = t.as_object_mut() {
        map.remove("$patch");
    }
    serde_json::from_value(t).ok()
}

/// The owner's revisions, oldest first.
pub fn history<O: Resource<DynamicType = ()>>(
    ctx: &Shared,
    owner: &O,
) -> Vec<Arc<ControllerRevision>> {
    let uid = owner.uid().unwrap_or_default();
    let mut revs: Vec<Arc<ControllerRevision>> = ctx
        .revisions
        .in_namespace(&owner.namespace().unwrap_or_default())
        .into_iter()
        .filter(|r| controlled_by(&r.metadata, &uid))
        .collect();
    revs.sort_by_key(|r| r.revision);
    revs
}

/// The revision for `template`: an existing one with the same data (renumbered
/// to the newest when it was an older one, as a rollback is), or a new one.
/// A different revision under the same name is a hash collision: the caller
/// bumps its collision count and tries again.
pub async fn ensure<O: Resource<DynamicType = ()>>(
    ctx: &Shared,
    owner: &O,
    template: &PodTemplateSpec,
    collision_count: Option<i32>,
) -> Result<ControllerRevision> {
    let ns = owner.namespace().unwrap_or_default();
    let api = ctx.api::<ControllerRevision>(&ns);
    let history = history(ctx, owner);
    let data = data_of(template);
    let newest = history.last().map_or(0, |r| r.revision);
    if let Some(same) = history
        .iter()
        .rev()
        .find(|r| r.data.as_ref().map(|d| &d.0) == Some(&data))
    {
        if same.revision == newest {
            return Ok((**same).clone());
        }
        let mut renumbered = (**same).clone();
        renumbered.revision = newest + 1;
        let written = api
            .replace(&same.name_any(), &PostParams::default(), &renumbered)
            .await
            .ctx(|| format!("renumbering revision {}", same.name_any()))?;
        ctx.revisions.wait_for_write(&written, CACHE_WAIT).await;
        return Ok(written);
    }
    let hash = safe_hash(
        serde_json::to_string(&data).unwrap_or_default().as_bytes(),
        collision_count,
    );
    let mut labels = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    labels.insert(HASH_LABEL.into(), hash.clone());
    let rev = ControllerRevision {
        metadata: ObjectMeta {
            name: Some(format!("{}-{hash}", owner.name_any())),
            namespace: Some(ns.clone()),
            labels: Some(labels),
            owner_references: Some(vec![controller_ref(owner)]),
            ..Default::default()
        },
        data: Some(RawExtension(data.clone())),
        revision: newest + 1,
    };
    match api.create(&PostParams::default(), &rev).await {
        Ok(created) => {
            ctx.revisions.wait_for_write(&created, CACHE_WAIT).await;
            Ok(created)
        }
        Err(e) if is_already_exists(&e) => {
            let found = api
                .get(&rev.name_any())
                .await
                .ctx(|| format!("reading revision {}", rev.name_any()))?;
            if found.data.as_ref().map(|d| &d.0) == Some(&data)
                && controlled_by(&found.metadata, &owner.uid().unwrap_or_default())
            {
                Ok(found)
            } else {
                Err(Error::Invalid(format!(
                    "hash collision for revision {}",
                    rev.name_any()
                )))
            }
        }
        Err(e) => Err(e).ctx(|| format!("creating revision {}", rev.name_any())),
    }
}

/// Deletes the oldest revisions not in `live` beyond `limit`.
pub async fn truncate(
    ctx: &Shared,
    history: &[Arc<ControllerRevision>],
    live: &HashSet<String>,
    limit: i32,
) -> Result<()> {
    let unused: Vec<&Arc<ControllerRevision>> = history
        .iter()
        .filter(|r| !live.contains(&r.name_any()))
        .collect();
    let excess = unused
        .len()
        .saturating_sub(usize::try_from(limit.max(0)).unwrap_or(0));
    for rev in unused.into_iter().take(excess) {
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid: rev.uid(),
                resource_version: None,
            }),
            ..Default::default()
        };
        match ctx
            .api::<ControllerRevision>(&rev.namespace().unwrap_or_default())
            .delete(&rev.name_any(), &dp)
            .await
        {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e).ctx(|| format!("deleting old revision {}", rev.name_any())),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_a_replacing_patch_that_round_trips() {
        let template: PodTemplateSpec = serde_json::from_value(json!({
            "metadata": {"labels": {"app": "db"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        }))
        .expect("template");
        let data = data_of(&template);
        assert_eq!(
            data.pointer("/spec/template/$patch"),
            Some(&json!("replace"))
        );
        let rev = ControllerRevision {
            data: Some(RawExtension(data)),
            ..Default::default()
        };
        assert_eq!(template_of(&rev), Some(template));
    }
}

//! CustomResourceDefinitions (their own checks; a deleted definition takes its
//! objects with it) and the custom resources they define (pruned, defaulted and
//! validated by their schema).

use futures::future::BoxFuture;
use serde_json::Value;

use super::Strategy;
use crate::error::ApiResult;
use crate::rest::{Api, Call};

pub(super) struct Definition;

impl Strategy for Definition {
    fn validate(
        &self,
        call: &Call<'_>,
        obj: &mut Value,
        old: Option<&Value>,
    ) -> Option<ApiResult<()>> {
        if let Err(e) = crate::rest::custom::prepare_definition(call, obj, old) {
            return Some(Err(e));
        }
        // Then the built-in validation of the kind, as for any other.
        None
    }

    fn after_delete<'a>(&'a self, api: &'a Api, obj: &'a Value) -> BoxFuture<'a, ()> {
        Box::pin(delete_custom_objects(api, obj))
    }
}

pub(super) struct CustomResource;

impl Strategy for CustomResource {
    fn has_generation(&self, _: &apimachinery::resources::Resource) -> bool {
        true
    }

    fn validate(
        &self,
        call: &Call<'_>,
        obj: &mut Value,
        _old: Option<&Value>,
    ) -> Option<ApiResult<()>> {
        let custom = call.custom?;
        Some(crate::rest::custom::prepare(call, custom, obj))
    }
}

/// A deleted CRD takes its objects with it.
async fn delete_custom_objects(api: &Api, crd: &Value) {
    let group = apimachinery::json::str_ptr(crd, "/spec/group");
    let plural = apimachinery::json::str_ptr(crd, "/spec/names/plural");
    if group.is_empty() || plural.is_empty() {
        return;
    }
    let prefix = crate::keys::custom_prefix(group, plural);
    let (_, entries) = api.cache.objects(&prefix);
    for e in entries {
        if let Err(err) = api.store.delete(&e.key, None).await
            && !matches!(err, store::StoreError::NotFound(_))
        {
            tracing::warn!(key = %e.key, error = %err, "could not delete an object of a deleted CRD");
        }
    }
}

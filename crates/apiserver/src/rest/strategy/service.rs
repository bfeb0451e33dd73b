//! Services: the cluster IP and node ports they hold, kept across updates and
//! released on delete.

use apimachinery::resources::Resource;
use futures::future::BoxFuture;
use serde_json::{Map, Value, json};

use super::Strategy;
use crate::error::ApiResult;
use crate::rest::Api;

pub(super) struct Service;

impl Strategy for Service {
    fn has_generation(&self, _: &Resource) -> bool {
        false
    }

    fn prepare_for_update(&self, obj: &mut Value, old: &Value) {
        apimachinery::defaults::carry_over_service_allocations(obj, old);
    }

    fn initial_status(&self, _: &Resource, obj: &mut Map<String, Value>) {
        obj.insert("status".into(), json!({"loadBalancer": {}}));
    }

    fn allocate<'a>(&'a self, api: &'a Api, obj: &'a mut Value) -> BoxFuture<'a, ApiResult<()>> {
        Box::pin(api.alloc.allocate_service(obj))
    }

    fn after_delete<'a>(&'a self, api: &'a Api, obj: &'a Value) -> BoxFuture<'a, ()> {
        Box::pin(api.alloc.release_service(obj))
    }

    fn returns_deleted_object(&self) -> bool {
        true
    }
}

//! Jobs: the selector and labels a Job gets from its own uid.

use serde_json::Value;

use super::Strategy;
use crate::error::ApiResult;
use crate::rest::Api;

pub(super) struct Job;

impl Strategy for Job {
    fn admit_create(&self, _: &Api, obj: &mut Value) -> ApiResult<()> {
        let uid = apimachinery::json::str_ptr(obj, "/metadata/uid").to_string();
        apimachinery::defaults::job_selector_and_labels(obj, &uid);
        Ok(())
    }
}

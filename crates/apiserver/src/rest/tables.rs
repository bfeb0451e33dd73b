//! `meta.k8s.io/v1` Table responses, which kubectl asks for to print `get` output.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::{Call, json_value};
use crate::cache::Entry;
use crate::error::ApiResult;

/// Answers with a `meta.k8s.io/v1` Table when the client asked for one (kubectl get).
pub fn table_response(
    call: &Call<'_>,
    items: &[Arc<Entry>],
    list: Option<(store::Revision, Option<&str>)>,
) -> ApiResult<Option<Response>> {
    let accept = call.accept();
    if !accept.contains("as=Table") {
        return Ok(None);
    }
    let values: Vec<Value> = items.iter().map(|e| e.value()).collect::<ApiResult<_>>()?;
    let refs: Vec<&Value> = values.iter().collect();
    let include = crate::table::IncludeObject::from_param(call.q("includeObject"));
    let list_meta = match list {
        Some((rev, cont)) => {
            let mut m = json!({"resourceVersion": rev.to_string()});
            if let Some(c) = cont {
                m["continue"] = json!(c);
            }
            m
        }
        None => json!({}),
    };
    if let Some(custom) = call.custom {
        let columns = crate::table::columns_or_age(&custom.version.printer_columns);
        let table = crate::table::custom_resource_table(
            &columns,
            &refs,
            include,
            list_meta,
            std::time::SystemTime::now(),
        );
        return json_value(StatusCode::OK, &table).map(Some);
    }
    let table = crate::table::to_table(
        call.resource,
        &refs,
        include,
        list_meta,
        std::time::SystemTime::now(),
    );
    json_value(StatusCode::OK, &table).map(Some)
}

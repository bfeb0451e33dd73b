//! POST of a new object.

use axum::http::StatusCode;
use axum::response::Response;
use store::StoreError;

use super::{name_of, respond, respond_stored, to_stored};
use crate::error::{ApiError, ApiResult};
use crate::rest::strategy::{self, Op};
use crate::rest::{Api, Call, decode_body};

pub async fn create(api: &Api, call: &Call<'_>) -> ApiResult<Response> {
    let mut obj = decode_body(&call.body, call.content_type())?;
    strategy::check_type(&mut obj, call.resource)?;
    strategy::decode_check(call, &mut obj)?;
    strategy::prepare_meta_for_create(&mut obj, call)?;
    strategy::check_namespace_usable(api, call).await?;
    strategy::prepare(api, call, Op::Create, &mut obj, None)?;
    strategy::allocate(api, call, &mut obj).await?;
    let name = name_of(&obj).to_string();
    let key = call.resource.key(call.namespace(), &name);
    let exists = || ApiError::already_exists(&call.resource.group, &call.resource.plural, &name);
    if call.dry_run() {
        if api.cache.get(&key).is_some() {
            return Err(exists());
        }
        return Ok(respond(StatusCode::CREATED, &key, obj, 0));
    }
    let stored = to_stored(&mut obj)?;
    match api.store.create(&key, stored.clone()).await {
        Ok(kv) => Ok(respond_stored(
            StatusCode::CREATED,
            &key,
            &stored,
            obj,
            kv.mod_revision,
        )),
        Err(e) => {
            strategy::release_on_failed_create(api, call, &obj).await;
            Err(match e {
                StoreError::AlreadyExists(_) => exists(),
                e => e.into(),
            })
        }
    }
}

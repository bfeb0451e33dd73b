//! Typed decoding of a request's object: fields of the wrong type are refused,
//! unknown ones dropped as `fieldValidation` says.

use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::rest::Call;

/// Decodes a request's object as its kind before anything else touches it, as
/// Kubernetes' decoder does: a field of the wrong type (metadata included) is a
/// 400; unknown fields are dropped, with a warning under fieldValidation=Warn
/// (the default) and as a 400 under Strict. Custom resources' own fields are
/// pruned by their schema in [`super::custom::prepare`]; their metadata is
/// checked here.
pub fn decode_check(call: &Call<'_>, obj: &mut Value) -> ApiResult<()> {
    let r = call.resource;
    let av = r.api_version();
    let builtin = if call.custom.is_none() {
        apimachinery::schema::check(&av, &r.kind, obj)
    } else {
        None
    };
    let unknown = match builtin {
        Some(result) => result,
        None => apimachinery::schema::check_metadata(&av, &r.kind, obj),
    }
    .map_err(ApiError::BadRequest)?;
    let names: Vec<String> = unknown.iter().map(ToString::to_string).collect();
    drop_unknown(call, &names)?;
    for f in &unknown {
        f.remove_from(obj);
    }
    Ok(())
}

/// What fieldValidation says to do with unknown fields that are about to be
/// dropped: a 400 under Strict, a warning each under Warn, nothing under Ignore.
pub fn drop_unknown(call: &Call<'_>, fields: &[String]) -> ApiResult<()> {
    use crate::rest::options::FieldValidation;
    if fields.is_empty() {
        return Ok(());
    }
    match FieldValidation::of(call.query) {
        FieldValidation::Strict => {
            let list: Vec<String> = fields
                .iter()
                .map(|f| format!("unknown field \"{f}\""))
                .collect();
            Err(ApiError::BadRequest(format!(
                "strict decoding error: {}",
                list.join(", ")
            )))
        }
        FieldValidation::Warn => {
            for f in fields {
                call.warnings.add(format!("unknown field \"{f}\""));
            }
            Ok(())
        }
        FieldValidation::Ignore => Ok(()),
    }
}

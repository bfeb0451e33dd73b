//! Label and field selectors of a list, watch or deletecollection, checked against
//! the fields the watch cache extracted when each object arrived.

use apimachinery::selectors::{FieldSelector, LabelSelector};

use crate::cache::{Entry, field_names};
use crate::error::{ApiError, ApiResult};

pub struct Selectors {
    labels: Option<LabelSelector>,
    fields: Option<FieldSelector>,
}

impl Selectors {
    /// Parses a `labelSelector` and a `fieldSelector` of a request on the
    /// resource stored as `storage_resource`, refusing fields it cannot select on.
    pub fn parse(
        label_selector: Option<&str>,
        field_selector: Option<&str>,
        storage_resource: &str,
    ) -> ApiResult<Selectors> {
        let labels = match label_selector {
            Some(s) => {
                Some(LabelSelector::parse(s).map_err(|e| ApiError::BadRequest(e.to_string()))?)
            }
            None => None,
        };
        let fields = match field_selector {
            Some(s) => {
                let sel =
                    FieldSelector::parse(s).map_err(|e| ApiError::BadRequest(e.to_string()))?;
                for req in sel.requirements() {
                    let known = req.field == "metadata.name"
                        || req.field == "metadata.namespace"
                        || field_names(storage_resource).contains(&req.field.as_str());
                    if !known {
                        return Err(ApiError::BadRequest(format!(
                            "field label not supported: {}",
                            req.field
                        )));
                    }
                }
                Some(sel)
            }
            None => None,
        };
        Ok(Selectors { labels, fields })
    }

    pub fn matches(&self, e: &Entry) -> bool {
        if let Some(l) = &self.labels
            && !l.matches_map(&e.labels)
        {
            return false;
        }
        if let Some(f) = &self.fields
            && !f.matches(&|name| e.field(name).map(str::to_string))
        {
            return false;
        }
        true
    }

    /// The value the field selector demands for `field` with `=`, if any.
    pub fn exact_field(&self, field: &str) -> Option<&str> {
        self.fields.as_ref()?.requires_exact_match(field)
    }

    pub fn is_empty(&self) -> bool {
        self.labels.as_ref().is_none_or(LabelSelector::is_empty)
            && self.fields.as_ref().is_none_or(FieldSelector::is_empty)
    }
}

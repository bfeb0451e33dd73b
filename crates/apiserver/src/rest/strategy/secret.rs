//! Secrets: the write-only `stringData` folded into `data`.

use serde_json::{Value, json};

use super::Strategy;

pub(super) struct Secret;

impl Strategy for Secret {
    fn normalize(&self, obj: &mut Value) {
        fold_string_data(obj);
    }
}

/// A Secret's write-only `stringData` is folded into `data` (base64), winning
/// over the same key in `data`, as Kubernetes' conversion does.
fn fold_string_data(obj: &mut Value) {
    use base64::Engine;
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    let Some(Value::Object(string_data)) = map.remove("stringData") else {
        return;
    };
    let data = map.entry("data").or_insert_with(|| json!({}));
    if !data.is_object() {
        *data = json!({});
    }
    if let Some(data) = data.as_object_mut() {
        for (k, v) in string_data {
            let text = v.as_str().unwrap_or_default();
            data.insert(
                k,
                Value::String(base64::engine::general_purpose::STANDARD.encode(text)),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_data_wins_over_data() {
        let mut s = json!({"data": {"a": "eA==", "b": "eQ=="}, "stringData": {"a": "z"}});
        Secret.normalize(&mut s);
        assert_eq!(s, json!({"data": {"a": "eg==", "b": "eQ=="}}));
        let mut odd = json!({"data": 1, "stringData": {"k": "v"}});
        Secret.normalize(&mut odd);
        assert_eq!(odd, json!({"data": {"k": "dg=="}}));
    }
}

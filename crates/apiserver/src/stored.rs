//! Reading stored objects without building a JSON tree.
//!
//! Every change the watch cache applies, and every write's response, needs the
//! stored bytes with `metadata.resourceVersion` added, plus the labels and the
//! selectable fields (`spec.nodeName`, …). Decoding each object into a
//! `serde_json::Value` and encoding it again cost more than the store write itself,
//! so this module walks the bytes once with serde, keeps only the few scalars it
//! was asked for (borrowed where the JSON has no escapes), and splices the
//! resourceVersion into the original bytes. serde_json has no partial-extraction
//! API, hence the hand-written visitors.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;
use serde::Deserializer as _;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// Paths of the scalars to pull out of an object, as a tree of field names.
#[derive(Debug, Default)]
pub struct Paths {
    kids: Vec<(&'static str, Slot)>,
}

#[derive(Debug)]
enum Slot {
    /// A scalar whose text goes to this index of the output.
    Leaf(usize),
    /// `metadata.labels`: every string value.
    Labels,
    Node(Paths),
}

impl Paths {
    /// Builds the tree for these dotted paths; the i-th path's value is the i-th
    /// output. `metadata.labels` is always collected.
    pub fn new(paths: &[Vec<&'static str>]) -> Paths {
        let mut root = Paths::default();
        root.insert(&["metadata", "labels"], Slot::Labels);
        for (i, p) in paths.iter().enumerate() {
            root.insert(p, Slot::Leaf(i));
        }
        root
    }

    fn insert(&mut self, path: &[&'static str], slot: Slot) {
        let Some((first, rest)) = path.split_first() else {
            return;
        };
        if rest.is_empty() {
            self.kids.push((first, slot));
            return;
        }
        let pos = match self.kids.iter().position(|(k, _)| k == first) {
            Some(p) => p,
            None => {
                self.kids.push((first, Slot::Node(Paths::default())));
                self.kids.len() - 1
            }
        };
        if let Slot::Node(n) = &mut self.kids[pos].1 {
            n.insert(rest, slot);
        }
    }

    fn get(&self, key: &str) -> Option<&Slot> {
        self.kids.iter().find(|(k, _)| *k == key).map(|(_, s)| s)
    }
}

/// What [`extract`] found.
#[derive(Debug, Default)]
pub struct Extracted {
    /// One entry per requested path: the scalar's text (strings as they are,
    /// booleans and numbers as JSON prints them), `None` when absent or not a scalar.
    pub values: Vec<Option<String>>,
    pub labels: BTreeMap<String, String>,
}

/// Pulls the requested scalars and the labels out of a JSON object. `None` if the
/// bytes are not a JSON object.
pub fn extract(json: &[u8], paths: &Paths, count: usize) -> Option<Extracted> {
    if json.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return None;
    }
    let mut out = Extracted {
        values: vec![None; count],
        labels: BTreeMap::new(),
    };
    let mut de = serde_json::Deserializer::from_slice(json);
    Walk {
        paths,
        out: &mut out,
    }
    .deserialize(&mut de)
    .ok()?;
    de.end().ok()?;
    Some(out)
}

/// The object's bytes with `metadata.resourceVersion` set to `rev`, when the stored
/// form has a `metadata` object without one (as every write stores it). `None`
/// otherwise; the caller then takes the slow path through a JSON tree.
pub fn stamp(json: &[u8], rev: i64) -> Option<Bytes> {
    let (start, end) = metadata_span(json)?;
    let meta = &json[start..end];
    if meta.first() != Some(&b'{') || meta.last() != Some(&b'}') {
        return None;
    }
    if has_key(meta, "resourceVersion")? {
        return None;
    }
    let empty = meta[1..meta.len() - 1]
        .iter()
        .all(|b| b.is_ascii_whitespace());
    let close = end - 1;
    let mut out = Vec::with_capacity(json.len() + 40);
    out.extend_from_slice(&json[..close]);
    if !empty {
        out.push(b',');
    }
    out.extend_from_slice(b"\"resourceVersion\":\"");
    out.extend_from_slice(rev.to_string().as_bytes());
    out.push(b'"');
    out.extend_from_slice(&json[close..]);
    Some(Bytes::from(out))
}

/// `{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","metadata":…}`
/// for a stored object: what clients asking for
/// `as=PartialObjectMetadata;g=meta.k8s.io;v=v1` (metadata informers, the
/// garbage collector) receive instead of the whole object. The metadata is
/// copied as stored, without decoding it.
pub fn partial_metadata(json: &[u8]) -> Bytes {
    const HEAD: &[u8] =
        b"{\"kind\":\"PartialObjectMetadata\",\"apiVersion\":\"meta.k8s.io/v1\",\"metadata\":";
    let meta = metadata_span(json).map_or(&b"{}"[..], |(start, end)| &json[start..end]);
    let mut out = Vec::with_capacity(HEAD.len() + meta.len() + 1);
    out.extend_from_slice(HEAD);
    out.extend_from_slice(meta);
    out.push(b'}');
    Bytes::from(out)
}

/// Byte range of the top-level `metadata` value.
fn metadata_span(json: &[u8]) -> Option<(usize, usize)> {
    #[derive(serde::Deserialize)]
    struct Top<'a> {
        #[serde(borrow)]
        metadata: Option<&'a RawValue>,
    }
    let top: Top<'_> = serde_json::from_slice(json).ok()?;
    let raw = top.metadata?.get().as_bytes();
    let start = (raw.as_ptr() as usize).checked_sub(json.as_ptr() as usize)?;
    let end = start + raw.len();
    (end <= json.len()).then_some((start, end))
}

/// Whether a JSON object has this top-level key; `None` if it is not an object.
fn has_key(obj: &[u8], key: &str) -> Option<bool> {
    struct Has<'k>(&'k str);
    impl<'de> Visitor<'de> for Has<'_> {
        type Value = bool;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
            let mut found = false;
            while let Some(k) = map.next_key_seed(KeySeed)? {
                found |= k == self.0;
                map.next_value::<IgnoredAny>()?;
            }
            Ok(found)
        }
    }
    serde_json::Deserializer::from_slice(obj)
        .deserialize_map(Has(key))
        .ok()
}

/// A map key, borrowed from the input when it has no escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(KeySeed)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_string()))
    }
}

/// Walks one value: descends into objects along `paths`, skips everything else.
struct Walk<'p, 'o> {
    paths: &'p Paths,
    out: &'o mut Extracted,
}

impl<'de> DeserializeSeed<'de> for Walk<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

/// Accepts any non-object value and ignores it.
macro_rules! ignore_scalars {
    ($t:ty) => {
        fn visit_bool<E>(self, _: bool) -> Result<$t, E> {
            Ok(Default::default())
        }
        fn visit_i64<E>(self, _: i64) -> Result<$t, E> {
            Ok(Default::default())
        }
        fn visit_u64<E>(self, _: u64) -> Result<$t, E> {
            Ok(Default::default())
        }
        fn visit_f64<E>(self, _: f64) -> Result<$t, E> {
            Ok(Default::default())
        }
        fn visit_str<E>(self, _: &str) -> Result<$t, E> {
            Ok(Default::default())
        }
        fn visit_unit<E>(self) -> Result<$t, E> {
            Ok(Default::default())
        }
        fn visit_none<E>(self) -> Result<$t, E> {
            Ok(Default::default())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<$t, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(Default::default())
        }
    };
}

impl<'de> Visitor<'de> for Walk<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    ignore_scalars!(());
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key_seed(KeySeed)? {
            match self.paths.get(&key) {
                Some(Slot::Leaf(i)) => {
                    let v = map.next_value_seed(ScalarSeed {
                        strings_only: false,
                    })?;
                    if let Some(slot) = self.out.values.get_mut(*i) {
                        *slot = v;
                    }
                }
                Some(Slot::Labels) => {
                    self.out.labels = map.next_value_seed(LabelsSeed)?;
                }
                Some(Slot::Node(paths)) => map.next_value_seed(Walk {
                    paths,
                    out: self.out,
                })?,
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// A scalar's text, as `serde_json::Value`'s Display would print it; with
/// `strings_only`, only strings (label values).
struct ScalarSeed {
    strings_only: bool,
}

impl<'de> DeserializeSeed<'de> for ScalarSeed {
    type Value = Option<String>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl ScalarSeed {
    fn text(&self, t: impl FnOnce() -> Option<String>) -> Option<String> {
        if self.strings_only { None } else { t() }
    }
}

impl<'de> Visitor<'de> for ScalarSeed {
    type Value = Option<String>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a scalar")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(self.text(|| Some(v.to_string())))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(self.text(|| Some(v.to_string())))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(self.text(|| Some(v.to_string())))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(self.text(|| serde_json::Number::from_f64(v).map(|n| n.to_string())))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

/// `metadata.labels`: string values kept, anything else skipped.
struct LabelsSeed;

impl<'de> DeserializeSeed<'de> for LabelsSeed {
    type Value = BTreeMap<String, String>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(LabelsSeed)
    }
}

impl<'de> Visitor<'de> for LabelsSeed {
    type Value = BTreeMap<String, String>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map of labels")
    }
    ignore_scalars!(BTreeMap<String, String>);
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = BTreeMap::new();
        while let Some(k) = map.next_key_seed(KeySeed)? {
            if let Some(v) = map.next_value_seed(ScalarSeed { strings_only: true })? {
                out.insert(k.into_owned(), v);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn paths() -> Paths {
        Paths::new(&[
            vec!["metadata", "name"],
            vec!["spec", "nodeName"],
            vec!["spec", "hostNetwork"],
            vec!["status", "replicas"],
            vec!["source", "component"],
        ])
    }

    #[test]
    fn extracts_scalars_and_labels() {
        let obj = json!({
            "metadata": {"name": "web-\u{e9}", "labels": {"app": "web", "bad": 3, "t\"ier": "fe"},
                "managedFields": [{"fieldsV1": {"f:spec": {"f:nodeName": {}}}}]},
            "spec": {"nodeName": "n1", "hostNetwork": true, "containers": [{"name": "a"}]},
            "status": {"replicas": 3},
            "source": "not an object"
        });
        let bytes = serde_json::to_vec(&obj).unwrap();
        let e = extract(&bytes, &paths(), 5).unwrap();
        assert_eq!(
            e.values,
            vec![
                Some("web-\u{e9}".into()),
                Some("n1".into()),
                Some("true".into()),
                Some("3".into()),
                None
            ]
        );
        assert_eq!(e.labels.len(), 2);
        assert_eq!(e.labels["t\"ier"], "fe");
    }

    #[test]
    fn non_objects_are_refused() {
        assert!(extract(b"[1,2]", &paths(), 5).is_none());
        assert!(extract(b"\"x\"", &paths(), 5).is_none());
        assert!(extract(b"{\"a\":", &paths(), 5).is_none());
        assert!(extract(b"{} trailing", &paths(), 5).is_none());
    }

    #[test]
    fn stamps_the_resource_version_into_metadata() {
        for obj in [
            json!({"kind": "Pod", "metadata": {"name": "p", "uid": "u"}, "spec": {"a": [1, {"b": "}"}]}}),
            json!({"metadata": {}, "z": 1}),
            json!({"a": {"metadata": {"x": 1}}, "metadata": {"labels": {"metadata": "{"}}}),
        ] {
            let bytes = serde_json::to_vec(&obj).unwrap();
            let out = stamp(&bytes, 42).unwrap();
            let got: Value = serde_json::from_slice(&out).unwrap();
            let mut want = obj.clone();
            want["metadata"]["resourceVersion"] = json!("42");
            assert_eq!(got, want);
        }
        // Spaces around the metadata object are kept as they are.
        let out = stamp(br#"{ "metadata" : { "name" : "p" } }"#, 7).unwrap();
        let got: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            got,
            json!({"metadata": {"name": "p", "resourceVersion": "7"}})
        );
    }

    #[test]
    fn stamp_declines_what_it_cannot_splice() {
        assert!(stamp(br#"{"metadata":{"resourceVersion":"3"}}"#, 4).is_none());
        assert!(stamp(br#"{"metadata":null}"#, 4).is_none());
        assert!(stamp(br#"{"metadata":"x"}"#, 4).is_none());
        assert!(stamp(br#"{"kind":"X"}"#, 4).is_none());
        assert!(stamp(b"[]", 4).is_none());
    }
}

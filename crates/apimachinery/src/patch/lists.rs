//! How strategic merge patch matches list items (by merge key, or by value for
//! primitives) and orders the merged list, in time linear in the lists'
//! lengths: items are looked up by a hash of their identity, never by a scan.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use serde_json::Value;

/// A list item's identity — its merge key's value, or the item itself — hashed
/// consistently with `Value`'s equality.
#[derive(Clone, Copy, Debug)]
pub(super) struct Id<'a>(pub &'a Value);

impl PartialEq for Id<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Eq for Id<'_> {}

impl Hash for Id<'_> {
    fn hash<H: Hasher>(&self, h: &mut H) {
        hash_value(self.0, h);
    }
}

fn hash_value<H: Hasher>(v: &Value, h: &mut H) {
    match v {
        Value::Null => 0u8.hash(h),
        Value::Bool(b) => (1u8, b).hash(h),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                (2u8, u).hash(h);
            } else if let Some(i) = n.as_i64() {
                (3u8, i).hash(h);
            } else {
                // 0.0 == -0.0, so both hash as 0.0.
                let f = n.as_f64().unwrap_or_default();
                (4u8, if f == 0.0 { 0 } else { f.to_bits() }).hash(h);
            }
        }
        Value::String(s) => (5u8, s).hash(h),
        Value::Array(a) => {
            (6u8, a.len()).hash(h);
            for x in a {
                hash_value(x, h);
            }
        }
        // Equal maps may list their keys in different orders (with serde_json's
        // `preserve_order`), so only the size goes into the hash.
        Value::Object(m) => (7u8, m.len()).hash(h),
    }
}

/// How list items are identified: their merge key's value, or themselves.
pub(super) fn identity<'a>(v: &'a Value, merge_key: Option<&str>) -> Option<Id<'a>> {
    match merge_key {
        Some(k) => v.get(k).map(Id),
        None => Some(Id(v)),
    }
}

/// The first position of each identity in `list`.
fn positions<'a>(list: &'a [Value], merge_key: Option<&str>) -> HashMap<Id<'a>, usize> {
    let mut out = HashMap::with_capacity(list.len());
    for (i, v) in list.iter().enumerate() {
        if let Some(id) = identity(v, merge_key) {
            out.entry(id).or_insert(i);
        }
    }
    out
}

/// Orders a merged list as Kubernetes does: the items the patch names in
/// `patch_order`'s order, the others in `server_order`'s, the two interleaved
/// by their places in `server_order`.
pub(super) fn order(
    merged: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    merge_key: Option<&str>,
) -> Vec<Value> {
    let in_patch_order = positions(patch_order, merge_key);
    let in_server_order = positions(server_order, merge_key);
    let place = |v: &Value, among: &HashMap<Id<'_>, usize>| {
        identity(v, merge_key).and_then(|id| among.get(&id).copied())
    };
    let mut in_patch = Vec::new();
    let mut server_only = Vec::new();
    for v in merged {
        let server = place(&v, &in_server_order);
        match place(&v, &in_patch_order) {
            Some(p) => in_patch.push((p, server, v)),
            None => server_only.push((server, v)),
        }
    }
    in_patch.sort_by_key(|(p, _, _)| *p);
    server_only.sort_by_key(|(s, _)| s.unwrap_or(usize::MAX));
    let mut out = Vec::with_capacity(in_patch.len() + server_only.len());
    let mut left = server_only.into_iter().peekable();
    let mut right = in_patch.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some((l, _)), Some((_, r, _))) => matches!((l, r), (Some(a), Some(b)) if a < b),
        };
        if take_left {
            out.extend(left.next().map(|(_, v)| v));
        } else {
            out.extend(right.next().map(|(_, _, v)| v));
        }
    }
    out
}

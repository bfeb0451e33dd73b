//! The YAML pre-scan against libyaml itself (through serde_yaml_ng) on
//! YAML-like text: the scan may not report nesting the document does not have,
//! and may not miss nesting libyaml finds — the first would refuse good
//! bodies, the second would let deep ones through to libyaml.

use proptest::prelude::*;
use serde_json::Value;

use super::scan::check_depth;
use super::{DecodeError, MAX_DEPTH, yaml};

const TOKENS: &[&str] = &[
    "a",
    "b: ",
    "- ",
    "-",
    "? ",
    "?",
    ": ",
    ":",
    "\n",
    "\n",
    "\n",
    " ",
    "  ",
    "    ",
    "\t",
    "'",
    "''",
    "\"",
    "\\",
    "\\\"",
    "#",
    " #",
    "[",
    "]",
    "{",
    "}",
    ",",
    ", ",
    "|",
    "|-\n",
    ">\n",
    "|2\n",
    "!",
    "!!str ",
    "!<x,[y]> ",
    "&x ",
    "*x",
    "---\n",
    "...\n",
    "%YAML 1.1\n",
    "x y",
    "key: value\n",
    "  - item\n",
    "\r\n",
    "\u{85}",
    "\u{FEFF}",
    "é",
];

/// Lines of valid YAML that hold quotes, brackets and comment signs where
/// they do not start anything.
const LINES: &[&str] = &[
    "a: it's\n",
    "a: x,'y\n",
    "a: say \"hi\n",
    "a: 'q[q'\n",
    "a: \"x\\\"[\"\n",
    "a: x #'\n",
    "# [[ ' \"\n",
    "a: [it's, 'b', \"c\"]\n",
    "a: {k: v'}\n",
    "a: |\n  [[\n  'x\n",
    "a: >-\n  \"\n\n  ]\n",
    "- |2\n   '\n",
    "a: x\n  'y\n",
    "a:\n  - it's\n  - \"q\"\n",
    "a: !<x,[y]> z\n",
    "a: &q r\n",
    "? 'k'\n: v\n",
    "'k': \"v\"\n",
    "a: \"multi\n  line'\"\n",
];

fn yamlish() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        3 => prop::sample::select(TOKENS),
        1 => prop::sample::select(LINES),
    ];
    // Distinct keys, so that serde_yaml_ng does not refuse duplicates.
    let lines = prop::collection::vec(prop::sample::select(LINES), 0..6).prop_map(|t| {
        let keyed = t
            .iter()
            .enumerate()
            .map(|(i, l)| l.replacen("a:", &format!("a{i}:"), 1));
        keyed.collect::<String>()
    });
    let tokens = prop::collection::vec(token, 0..24).prop_map(|t| t.concat());
    prop_oneof![tokens, lines]
}

/// Nesting of a YAML value, keys included (serde_yaml_ng's `Value` refuses
/// duplicate keys, which would otherwise hide nesting behind a later value).
fn yaml_depth(v: &serde_yaml_ng::Value) -> usize {
    use serde_yaml_ng::Value as Y;
    match v {
        Y::Sequence(s) => 1 + s.iter().map(yaml_depth).max().unwrap_or(0),
        Y::Mapping(m) => {
            1 + m
                .iter()
                .map(|(k, v)| yaml_depth(k).max(yaml_depth(v)))
                .max()
                .unwrap_or(0)
        }
        Y::Tagged(t) => yaml_depth(&t.value),
        _ => 0,
    }
}

fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(m) => 1 + m.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn config() -> ProptestConfig {
    let env = std::env::var("PROPTEST_CASES").ok();
    ProptestConfig {
        cases: env.and_then(|n| n.parse().ok()).unwrap_or(512),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn the_scan_finds_no_nesting_that_is_not_there(text in yamlish(), max in 0usize..4) {
        if check_depth(&text, max).is_err() {
            let plain = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&text);
            prop_assert!(
                plain.as_ref().map_or(true, |v| yaml_depth(v) > max),
                "{text:?} scanned deeper than {max}, but serde_yaml_ng: {plain:?}"
            );
        }
    }

    #[test]
    fn the_scan_misses_no_nesting_libyaml_sees(
        before in yamlish(),
        after in yamlish(),
        key in prop::sample::select(&["", "k: ", "- ", "? "][..]),
        open in prop::sample::select(&["[", "{", "[{a: ", "{a: ["][..]),
    ) {
        let close: String = open.chars().rev().filter_map(|c| match c {
            '[' => Some(']'),
            '{' => Some('}'),
            _ => None,
        }).collect();
        let n = MAX_DEPTH / close.len() + 1;
        let text = format!("{before}\n{key}{}{}\n{after}", open.repeat(n), close.repeat(n));
        let plain = serde_yaml_ng::from_str::<Value>(&text);
        let deep = plain
            .as_ref()
            .is_err_and(|e| e.to_string().starts_with("recursion limit exceeded"));
        if deep && !text.contains('*') {
            prop_assert!(check_depth(&text, MAX_DEPTH).is_err(), "{text:?}");
        }
        if let Ok(v) = &plain {
            prop_assert!(
                depth(v) <= MAX_DEPTH || matches!(yaml(text.as_bytes()), Err(DecodeError::TooDeep { .. })),
                "{text:?}"
            );
        }
    }
}

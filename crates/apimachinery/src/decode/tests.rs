use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::*;

fn nested(open: &str, close: &str, n: usize) -> String {
    format!("{}{}", open.repeat(n), close.repeat(n))
}

fn depth_of(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth_of).max().unwrap_or(0),
        Value::Object(m) => 1 + m.values().map(depth_of).max().unwrap_or(0),
        _ => 0,
    }
}

/// What serde_yaml_ng alone makes of a document, for comparison.
fn plain_yaml(s: &str) -> Result<Value, String> {
    serde_yaml_ng::from_str(s).map_err(|e| e.to_string())
}

fn is_too_deep<T: fmt::Debug>(r: Result<T, DecodeError>) -> bool {
    matches!(r, Err(DecodeError::TooDeep { .. }))
}

#[test]
fn json_allows_max_depth_and_no_more() {
    let ok = json(nested("[", "]", MAX_DEPTH).as_bytes()).expect("decodes");
    assert_eq!(depth_of(&ok), MAX_DEPTH);
    let deep = json(nested("[", "]", MAX_DEPTH + 1).as_bytes());
    assert_eq!(
        deep,
        Err(DecodeError::TooDeep {
            line: 1,
            column: MAX_DEPTH + 1
        })
    );
    assert!(is_too_deep(json(
        nested("{\"a\":", "}", MAX_DEPTH + 1).as_bytes()
    )));
    assert!(matches!(json(b"{"), Err(DecodeError::Json(_))));
    assert_eq!(json(b"[1, 2]"), Ok(json!([1, 2])));
}

#[test]
fn yaml_allows_max_depth_and_no_more_in_every_style() {
    let block_seq = |n: usize| format!("{}x\n", "- ".repeat(n));
    let block_map = |n: usize| {
        (0..n)
            .map(|i| format!("{}k:", " ".repeat(i)))
            .collect::<Vec<_>>()
            .join("\n")
            + " x\n"
    };
    let flow_map = |n: usize| nested("{a: ", "}", n);
    let mixed = |n: usize| format!("a:\n  b:\n    - {}", nested("[", "]", n - 3));
    let styles: [(&str, &dyn Fn(usize) -> String); 5] = [
        ("flow sequence", &|n| nested("[", "]", n)),
        ("flow mapping", &flow_map),
        ("block sequence", &block_seq),
        ("block mapping", &block_map),
        ("block and flow", &mixed),
    ];
    for (name, doc) in styles {
        let ok = yaml(doc(MAX_DEPTH).as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(depth_of(&ok), MAX_DEPTH, "{name}");
        assert!(
            is_too_deep(yaml(doc(MAX_DEPTH + 1).as_bytes())),
            "{name}: {:?}",
            yaml(doc(MAX_DEPTH + 1).as_bytes())
        );
    }
}

#[test]
fn deep_yaml_is_refused_before_libyaml_reads_it() {
    // 3 MiB of `[` took libyaml over 8 s in a release build (25 s in a debug
    // one) before serde_yaml_ng's recursion limit could apply.
    let limit = Duration::from_secs(1);
    for open in ["[", "{", "[{a: ", "- "] {
        let body = open.repeat((3 << 20) / open.len());
        let start = Instant::now();
        let r = yaml(body.as_bytes());
        assert!(is_too_deep(r), "{open}");
        assert!(start.elapsed() < limit, "{open}: {:?}", start.elapsed());
    }
    assert_eq!(
        yaml("[".repeat(300_000).as_bytes()),
        Err(DecodeError::TooDeep {
            line: 1,
            column: MAX_DEPTH + 1
        })
    );
}

#[test]
fn brackets_inside_scalars_and_comments_do_not_count() {
    let deep = "[".repeat(300);
    let docs = [
        format!("a: \"{deep}\"\n"),
        format!("a: '{deep}'\n"),
        format!("a: \"x\\\"{deep}\"\n"),
        format!("a: 'it''s {deep}'\n"),
        format!("a: x{deep}\n"),
        format!("a: x {deep}\n"),
        format!("a: x\n  {deep}\n"),
        format!("a: [\"{deep}\", '{deep}', \"]]\"]\n"),
        format!("# {deep}\na: 1\n"),
        format!("a: 1 # {deep}\n"),
        format!("a: |\n  {deep}\n  {deep}\nb: 2\n"),
        format!("a: >-\n  {deep}\n\n  {deep}\nb: 2\n"),
        format!("- |2\n   {deep}\n- x\n"),
        format!("a: \"multi\n  line {deep}\"\n"),
    ];
    for doc in &docs {
        let want = plain_yaml(doc);
        assert!(want.is_ok(), "{doc:?}: {want:?}");
        assert_eq!(
            yaml(doc.as_bytes()).map_err(|e| e.to_string()),
            want,
            "{doc:?}"
        );
    }
}

#[test]
fn tags_may_hold_brackets() {
    let doc = format!("a: !<tag:x,{}> y\n", "[".repeat(300));
    assert_eq!(plain_yaml(&doc), Ok(json!({"a": "y"})));
    assert_eq!(yaml(doc.as_bytes()), Ok(json!({"a": "y"})));
}

#[test]
fn quotes_inside_plain_scalars_do_not_hide_what_follows() {
    // If the scan took these quotes for the start of a quoted scalar it would
    // skip the deep flow collection after them.
    let deep = nested("[", "]", MAX_DEPTH + 1);
    let docs = [
        format!("a: it's\nb: {deep} # '\n"),
        format!("a: x,'y\nb: {deep} # '\n"),
        format!("a: say \"hi\nb: {deep} # \"\n"),
        format!("a: [it's, {deep}] # '\n"),
        format!("a: x\n  'y\nb: {deep} # '\n"),
        format!("a: |\n  'x\nb: {deep} # '\n"),
        format!("a: x #'\nb: {deep} # '\n"),
    ];
    for doc in &docs {
        let plain = plain_yaml(doc);
        assert!(
            plain
                .as_ref()
                .is_err_and(|e| e.contains("recursion limit exceeded")),
            "{doc:?}: {plain:?}"
        );
        assert!(is_too_deep(yaml(doc.as_bytes())), "{doc:?}");
    }
}

#[test]
fn yaml_decodes_like_serde_yaml_ng() {
    let docs = [
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  labels: {app: web}\ndata:\n  a: \"1\"\n  b: |\n    line\n",
        "- 1\n- -2\n- 3.5\n- true\n- null\n- ~\n- \"s\"\n- 18446744073709551615\n- .inf\n",
        "a: &x {b: [1, 2]}\nc: *x\n",
        "1: a\ntrue: b\n",
        "",
        "---\na: 1\n",
        "%YAML 1.1\n---\n[a, {b: c}]\n",
        "? a\n: b\n",
        "a:\n- 1\n- 2\nb: 3\n",
    ];
    for doc in docs {
        assert_eq!(
            yaml(doc.as_bytes()).map_err(|e| e.to_string()),
            plain_yaml(doc),
            "{doc:?}"
        );
    }
    assert!(matches!(
        yaml(b"a: 1\n---\nb: 2\n"),
        Err(DecodeError::Yaml(_))
    ));
    assert!(matches!(yaml(b"a: [\n"), Err(DecodeError::Yaml(_))));
    assert!(matches!(yaml(b"a: \xff\n"), Err(DecodeError::Yaml(_))));
}

#[test]
fn yaml_in_utf16_decodes() {
    let text = "a: [1, \"é\"]\n";
    let mut le = vec![0xFF, 0xFE];
    let mut be = vec![0xFE, 0xFF];
    for unit in text.encode_utf16() {
        le.extend(unit.to_le_bytes());
        be.extend(unit.to_be_bytes());
    }
    assert_eq!(yaml(&le), Ok(json!({"a": [1, "é"]})));
    assert_eq!(yaml(&be), Ok(json!({"a": [1, "é"]})));
}

#[test]
fn alias_expansion_is_bounded() {
    // One anchor of 10,000 scalars referenced 3,000 times: 29 KB that
    // serde_yaml_ng alone expands to 30 million values (4.5 s, gigabytes).
    let doc = format!(
        "a: &a [{}]\nb: [{}]\n",
        vec!["x"; 10_000].join(","),
        vec!["*a"; 3_000].join(",")
    );
    let start = Instant::now();
    assert_eq!(
        yaml(doc.as_bytes()),
        Err(DecodeError::TooManyValues {
            limit: doc.len() + YAML_EXTRA_VALUES
        })
    );
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );

    let mut laughs = String::from("l0: &l0 [x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        let refs = vec![format!("*l{}", i - 1); 9].join(", ");
        laughs += &format!("l{i}: &l{i} [{refs}]\n");
    }
    assert!(yaml(laughs.as_bytes()).is_err());

    // Reusing anchors within the allowance is fine.
    let doc = format!("a: &a [{}]\nb: [*a, *a, *a]\n", vec!["x"; 1_000].join(","));
    let v = yaml(doc.as_bytes()).expect("decodes");
    assert_eq!(v["b"][2].as_array().map(Vec::len), Some(1_000));
}

#[test]
fn aliases_cannot_nest_deeper_than_the_limit() {
    let half = MAX_DEPTH / 2 + 1;
    let doc = format!(
        "a: &a {}\nb: {}*a{}\n",
        nested("[", "]", half),
        "[".repeat(half),
        "]".repeat(half)
    );
    assert!(
        is_too_deep(yaml(doc.as_bytes())),
        "{:?}",
        yaml(doc.as_bytes())
    );
}

use std::collections::BTreeMap;

use serde_json::json;

use super::*;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn parses_and_prints_label_selectors() {
    let cases = [
        ("", ""),
        ("x=a,y=b,z=c", "x=a,y=b,z=c"),
        ("x = a , y == b", "x=a,y==b"),
        ("x!=a", "x!=a"),
        (
            "x in (foo,,baz),y,z notin ()",
            "x in (,baz,foo),y,z notin ()",
        ),
        ("!x", "!x"),
        ("x>1,y<2", "x>1,y<2"),
        ("x in (in)", "x in (in)"),
        ("a/b.c=d", "a/b.c=d"),
        ("x=", "x="),
        ("  app  ", "app"),
        ("\tapp\n=\tweb", "app=web"),
    ];
    for (input, want) in cases {
        let sel = LabelSelector::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(sel.to_string(), want, "{input}");
    }
}

#[test]
fn rejects_bad_label_selectors_with_kubernetes_messages() {
    let cases = [
        (
            "x=a||y=b",
            "unable to parse requirement: values[0][x]: Invalid value: \"a||y\"",
        ),
        ("x=a,(", "found '(', expected: identifier after ','"),
        ("x==a==b", "found '==', expected: ',' or 'end of string'"),
        ("!x=a", "found '=', expected: ',' or 'end of string'"),
        (
            "x in (a",
            "unable to parse requirement: found '', expected: ',' or ')'",
        ),
        (
            "x in a)",
            "unable to parse requirement: found 'a' expected: '('",
        ),
        (
            "=a",
            "found '=', expected: !, identifier, or 'end of string'",
        ),
        ("x,", "found '', expected: identifier after ','"),
        ("x,,y", "found ',', expected: identifier after ','"),
        (
            "x>a",
            "unable to parse requirement: values[0]: Invalid value: \"a\": for 'Gt', 'Lt' operators, the value must be an integer",
        ),
        ("x=a b", "found 'b', expected: ',' or 'end of string'"),
        (
            "x~a",
            "unable to parse requirement: <nil>: Invalid value: \"x~a\"",
        ),
        (
            "x=-a",
            "unable to parse requirement: values[0][x]: Invalid value: \"-a\": a valid label must be",
        ),
    ];
    for (input, want) in cases {
        let err = LabelSelector::parse(input).expect_err(input).to_string();
        assert!(err.starts_with(want), "{input}: got {err}");
    }
}

#[test]
fn label_selectors_match() {
    let l = labels(&[("app", "web"), ("tier", "front"), ("n", "5")]);
    let cases = [
        ("", true),
        ("app=web", true),
        ("app==web", true),
        ("app=db", false),
        ("app!=db", true),
        ("missing!=x", true),
        ("tier in (front,back)", true),
        ("tier notin (front)", false),
        ("missing notin (a)", true),
        ("app", true),
        ("!app", false),
        ("!missing", true),
        ("n>4,n<6", true),
        ("n>5", false),
        ("app>1", false),
        ("app=web,tier=back", false),
    ];
    for (input, want) in cases {
        let sel = LabelSelector::parse(input).expect(input);
        assert_eq!(sel.matches_map(&l), want, "{input}");
    }
    let obj = json!({"metadata": {"labels": {"app": "web"}}});
    assert!(
        LabelSelector::parse("app=web")
            .expect("parse")
            .matches_object(&obj)
    );
    assert!(
        !LabelSelector::parse("app=web")
            .expect("parse")
            .matches_object(&json!({}))
    );
    assert!(LabelSelector::parse("").expect("parse").is_empty());
}

#[test]
fn converts_metav1_label_selectors() {
    let sel = LabelSelector::from_metav1(&json!({
        "matchLabels": {"app": "web"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["a", "b"]},
            {"key": "canary", "operator": "DoesNotExist"},
            {"key": "env", "operator": "Exists"},
            {"key": "zone", "operator": "NotIn", "values": ["z1"]}
        ]
    }))
    .expect("valid");
    assert_eq!(
        sel.to_string(),
        "app=web,!canary,env,tier in (a,b),zone notin (z1)"
    );
    assert!(sel.matches_map(&labels(&[("app", "web"), ("tier", "a"), ("env", "")])));
    assert!(!sel.matches_map(&labels(&[
        ("app", "web"),
        ("tier", "a"),
        ("env", ""),
        ("canary", "1")
    ])));

    assert!(
        LabelSelector::from_metav1(&json!({}))
            .expect("empty")
            .is_empty()
    );
    let none = LabelSelector::from_metav1(&json!(null)).expect("null");
    assert!(none.matches_nothing() && !none.matches_map(&labels(&[])));

    let bad = [
        json!({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]}),
        json!({"matchExpressions": [{"key": "a", "operator": "In"}]}),
        json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}),
        json!({"matchLabels": {"a b": "c"}}),
        json!({"matchLabels": {"a": 1}}),
        json!({"matchLabels": []}),
        json!({"matchExpressions": {}}),
        json!({"matchExpressions": [7]}),
        json!([]),
        json!("app=web"),
    ];
    for b in bad {
        assert!(LabelSelector::from_metav1(&b).is_err(), "{b}");
    }
    let err =
        LabelSelector::from_metav1(&json!({"matchExpressions": [{"key": "a", "operator": "Gt"}]}));
    assert_eq!(
        err.expect_err("gt").to_string(),
        "\"Gt\" is not a valid label selector operator"
    );
}

#[test]
fn parses_field_selectors() {
    let sel = FieldSelector::parse("metadata.name=web,status.phase!=Running,spec.nodeName==n1")
        .expect("valid");
    let reqs = sel.requirements();
    assert_eq!(reqs.len(), 3);
    assert_eq!(reqs[0].field, "metadata.name");
    assert_eq!(sel.requires_exact_match("spec.nodeName"), Some("n1"));
    assert_eq!(
        sel.to_string(),
        "metadata.name=web,spec.nodeName=n1,status.phase!=Running"
    );

    let escaped = FieldSelector::parse(r"metadata.name=a\,b\=c\\d").expect("escaped");
    assert_eq!(escaped.requirements()[0].value, r"a,b=c\d");
    assert_eq!(escaped.to_string(), r"metadata.name=a\,b\=c\\d");

    assert!(FieldSelector::parse("").expect("empty").is_empty());
    assert!(FieldSelector::parse(",,").expect("empty terms").is_empty());
    assert_eq!(
        FieldSelector::parse("a=")
            .expect("empty value")
            .requirements()[0]
            .value,
        ""
    );

    let errs = [
        ("a", "invalid selector: 'a'; can't understand 'a'"),
        ("x=1,b", "invalid selector: 'x=1,b'; can't understand 'b'"),
        (
            r"a=b\c",
            r"invalid field selector: invalid escape sequence: \c",
        ),
        (
            r"a=b\",
            r"invalid field selector: invalid escape sequence: \",
        ),
        (
            "a=b=c",
            "invalid field selector: unescaped character in value: =",
        ),
    ];
    for (input, want) in errs {
        assert_eq!(
            FieldSelector::parse(input).expect_err(input).to_string(),
            want
        );
    }
}

#[test]
fn field_selectors_match() {
    let sel = FieldSelector::parse("metadata.name=web,spec.nodeName!=n1").expect("valid");
    let get = |f: &str| match f {
        "metadata.name" => Some("web".to_string()),
        "spec.nodeName" => Some("n2".to_string()),
        _ => None,
    };
    assert!(sel.matches(&get));
    let unscheduled = FieldSelector::parse("spec.nodeName=").expect("valid");
    assert!(unscheduled.matches(&|_| None));
    assert!(!unscheduled.matches(&get));
}

#[test]
fn never_panics_on_odd_input() {
    let odd = [
        "(",
        ")",
        "!",
        "!!",
        "!=",
        "in",
        "notin",
        "x in",
        "x in (",
        "x notin ((",
        ",",
        "=",
        "==",
        "<",
        "é=ü",
        "a\u{0}b",
        "x in (a,,)",
        "x in (,)",
    ];
    for s in odd {
        let _ = LabelSelector::parse(s);
        let _ = FieldSelector::parse(s);
    }
    assert_eq!(
        LabelSelector::parse("x in (,)")
            .expect("empty values")
            .to_string(),
        "x in ()"
    );
}

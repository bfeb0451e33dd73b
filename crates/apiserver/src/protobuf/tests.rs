//! Decoding hand-built protobuf: every special type, presence rules, maps, repeated
//! fields, merging, and malformed input.

use serde_json::{Value, json};

use super::decode;
use super::wire::build::{bytes, int, msg, string};

/// A request body: magic, then runtime.Unknown {typeMeta, raw, "", ""} as client-go sends.
fn envelope(api_version: &str, kind: &str, raw: &[Vec<u8>]) -> Vec<u8> {
    let mut out = super::MAGIC.to_vec();
    out.extend(msg(1, &[string(1, api_version), string(2, kind)]));
    out.extend(bytes(2, &raw.concat()));
    out.extend(string(3, ""));
    out.extend(string(4, ""));
    out
}

fn ok(body: &[u8]) -> Value {
    match decode(body) {
        Ok(v) => v,
        Err(e) => panic!("decode failed: {e}"),
    }
}

fn err(body: &[u8]) -> String {
    match decode(body) {
        Ok(v) => panic!("decoded malformed input as {v}"),
        Err(e) => e.to_string(),
    }
}

/// ObjectMeta as gogo protobuf writes it: every non-pointer field, even when empty, and an
/// empty creationTimestamp.
fn meta(name: &str) -> Vec<u8> {
    msg(
        1,
        &[
            string(1, name),
            string(2, ""),
            string(3, "default"),
            string(4, ""),
            string(5, ""),
            string(6, ""),
            int(7, 0),
            msg(8, &[]),
        ],
    )
}

fn map_entry(tag: u32, key: &str, value: Vec<u8>) -> Vec<u8> {
    msg(tag, &[string(1, key), value])
}

#[test]
fn real_kubectl_configmap_body() {
    // Captured from `kubectl create configmap cm1 --from-literal=a=1` (kubectl 1.32).
    let body = b"k8s\x00\x0a\x0f\x0a\x02v1\x12\x09ConfigMap\x12$\x0a\x1a\x0a\x03cm1\x12\x00\x1a\x07default\x22\x00*\x002\x008\x00B\x00\x12\x06\x0a\x01a\x12\x011\x1a\x00\x22\x00";
    assert_eq!(
        ok(body),
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "cm1", "namespace": "default", "creationTimestamp": null},
            "data": {"a": "1"}
        })
    );
}

#[test]
fn zero_values_follow_go_pointer_rules() {
    // Deployment: replicas is *int32 (0 kept), minReadySeconds and paused are plain
    // omitempty fields (0 and false dropped), revisionHistoryLimit *int32 absent.
    let spec = msg(2, &[int(1, 0), int(5, 0), int(7, 0)]);
    let v = ok(&envelope("apps/v1", "Deployment", &[meta("d"), spec]));
    assert_eq!(v["spec"], json!({"replicas": 0}));
    // Secret: immutable is *bool, so a present false stays; type "" is dropped.
    let v = ok(&envelope(
        "v1",
        "Secret",
        &[meta("s"), string(3, ""), int(5, 0)],
    ));
    assert_eq!(v["immutable"], json!(false));
    assert!(v.get("type").is_none());
    // ServicePort: port has no omitempty (0 kept); nodePort has (0 dropped).
    let port = msg(1, &[int(3, 0), int(5, 0)]);
    let v = ok(&envelope("v1", "Service", &[meta("svc"), msg(2, &[port])]));
    assert_eq!(v["spec"]["ports"], json!([{"port": 0}]));
}

#[test]
fn eviction_keeps_a_zero_grace_period() {
    // DeleteOptions: 1 gracePeriodSeconds (*int64), 5 dryRun.
    let options = msg(2, &[int(1, 0), string(5, "All")]);
    let v = ok(&envelope("policy/v1", "Eviction", &[meta("p1"), options]));
    assert_eq!(
        v,
        json!({
            "kind": "Eviction",
            "apiVersion": "policy/v1",
            "metadata": {"name": "p1", "namespace": "default", "creationTimestamp": null},
            "deleteOptions": {"gracePeriodSeconds": 0, "dryRun": ["All"]}
        })
    );
}

#[test]
fn bytes_are_base64_and_maps_are_objects() {
    let data = [
        map_entry(2, "p", bytes(2, b"x\xff")),
        map_entry(2, "e", vec![]),
    ];
    let labels = map_entry(11, "app", string(2, "web"));
    let v = ok(&envelope(
        "v1",
        "Secret",
        &[msg(1, &[string(1, "s"), labels]), data.concat()],
    ));
    assert_eq!(v["data"], json!({"p": "eP8=", "e": ""}));
    assert_eq!(v["metadata"]["labels"], json!({"app": "web"}));
}

#[test]
fn map_keys_repeat_last_wins() {
    let data = [
        map_entry(2, "a", string(2, "1")),
        map_entry(2, "a", string(2, "2")),
    ];
    let v = ok(&envelope("v1", "ConfigMap", &[data.concat()]));
    assert_eq!(v["data"], json!({"a": "2"}));
}

#[test]
fn repeated_messages_inline_structs_and_packed_numbers() {
    let containers = [
        msg(2, &[string(1, "a"), string(2, "busybox")]),
        msg(
            2,
            &[
                string(1, "b"),
                msg(6, &[int(3, 80)]),
                msg(6, &[int(3, 443)]),
            ],
        ),
    ];
    // Volume{name, VolumeSource{configMap{LocalObjectReference{name}}}}: two inline levels.
    let volume = msg(
        1,
        &[
            string(1, "v"),
            msg(2, &[msg(19, &[msg(1, &[string(1, "cm")])])]),
        ],
    );
    // supplementalGroups twice unpacked, then once packed: all three values, in order.
    let mut packed = Vec::new();
    super::wire::build::varint(3, &mut packed);
    let security = msg(14, &[int(4, 1), int(4, 2), bytes(4, &packed)]);
    let spec = msg(2, &[volume, containers.concat(), security]);
    let v = ok(&envelope("v1", "Pod", &[spec]));
    assert_eq!(
        v["spec"],
        json!({
            "volumes": [{"name": "v", "configMap": {"name": "cm"}}],
            "containers": [
                {"name": "a", "image": "busybox"},
                {"name": "b", "ports": [{"containerPort": 80}, {"containerPort": 443}]}
            ],
            "securityContext": {"supplementalGroups": [1, 2, 3]}
        })
    );
}

#[test]
fn negative_numbers_are_sign_extended() {
    let v = ok(&envelope(
        "v1",
        "Service",
        &[msg(2, &[msg(1, &[int(3, -1i64 as u64)])])],
    ));
    assert_eq!(v["spec"]["ports"][0]["port"], json!(-1));
}

#[test]
fn repeated_singular_messages_merge() {
    let v = ok(&envelope(
        "v1",
        "ConfigMap",
        &[msg(1, &[string(1, "first")]), msg(1, &[string(3, "ns")])],
    ));
    assert_eq!(v["metadata"], json!({"name": "first", "namespace": "ns"}));
}

#[test]
fn times() {
    let m = msg(
        1,
        &[
            string(1, "x"),
            msg(8, &[int(1, 1_700_000_000), int(2, 5)]),
            msg(9, &[]),
        ],
    );
    let v = ok(&envelope("v1", "ConfigMap", &[m]));
    assert_eq!(
        v["metadata"]["creationTimestamp"],
        json!("2023-11-14T22:13:20Z")
    );
    assert_eq!(v["metadata"]["deletionTimestamp"], Value::Null);
    let event = msg(2, &[int(1, 1_700_000_000), int(2, 123_456_789)]);
    let v = ok(&envelope("events.k8s.io/v1", "Event", &[event]));
    assert_eq!(v["eventTime"], json!("2023-11-14T22:13:20.123456Z"));
    let far = msg(1, &[msg(8, &[int(1, i64::MAX as u64)])]);
    assert!(
        err(&envelope("v1", "ConfigMap", &[far])).contains("ConfigMap.metadata.creationTimestamp")
    );
}

#[test]
fn durations() {
    let v = ok(&envelope(
        "metrics.k8s.io/v1beta1",
        "PodMetrics",
        &[msg(3, &[int(1, 90_000_000_000)])],
    ));
    assert_eq!(v["window"], json!("1m30s"));
}

#[test]
fn quantities() {
    let hard = [
        map_entry(1, "cpu", msg(2, &[string(1, "500m")])),
        map_entry(1, "pods", msg(2, &[])),
    ];
    let v = ok(&envelope(
        "v1",
        "ResourceQuota",
        &[msg(2, &[hard.concat()])],
    ));
    assert_eq!(v["spec"]["hard"], json!({"cpu": "500m", "pods": "0"}));
}

#[test]
fn int_or_string() {
    let ports = [
        msg(
            1,
            &[
                int(3, 80),
                msg(4, &[int(1, 0), int(2, 8080), string(3, "")]),
            ],
        ),
        msg(
            1,
            &[
                int(3, 81),
                msg(4, &[int(1, 1), int(2, 0), string(3, "http")]),
            ],
        ),
    ];
    let v = ok(&envelope("v1", "Service", &[msg(2, &[ports.concat()])]));
    assert_eq!(v["spec"]["ports"][0]["targetPort"], json!(8080));
    assert_eq!(v["spec"]["ports"][1]["targetPort"], json!("http"));
    let bad = msg(2, &[msg(1, &[msg(4, &[int(1, 2)])])]);
    let e = err(&envelope("v1", "Service", &[bad]));
    assert!(e.contains("Service.spec.ports[0].targetPort"), "{e}");
}

#[test]
fn raw_extensions_hold_json_or_protobuf() {
    let v = ok(&envelope(
        "apps/v1",
        "ControllerRevision",
        &[msg(2, &[string(1, r#"{"a":[1]}"#)])],
    ));
    assert_eq!(v["data"], json!({"a": [1]}));
    let inner = envelope("v1", "ConfigMap", &[map_entry(2, "k", string(2, "v"))]);
    let v = ok(&envelope(
        "apps/v1",
        "ControllerRevision",
        &[msg(2, &[bytes(1, &inner)])],
    ));
    assert_eq!(
        v["data"],
        json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "v"}})
    );
    let v = ok(&envelope("apps/v1", "ControllerRevision", &[msg(2, &[])]));
    assert_eq!(v["data"], Value::Null);
    let e = err(&envelope(
        "apps/v1",
        "ControllerRevision",
        &[msg(2, &[string(1, "{nope")])],
    ));
    assert!(
        e.starts_with("invalid embedded JSON at ControllerRevision.data"),
        "{e}"
    );
}

#[test]
fn fields_v1_is_json() {
    let entry = msg(
        17,
        &[
            string(1, "kubectl"),
            msg(7, &[string(1, r#"{"f:data":{}}"#)]),
        ],
    );
    let v = ok(&envelope("v1", "ConfigMap", &[msg(1, &[entry])]));
    assert_eq!(
        v["metadata"]["managedFields"],
        json!([{"manager": "kubectl", "fieldsV1": {"f:data": {}}}])
    );
}

#[test]
fn slice_types_are_arrays() {
    let extra = map_entry(5, "scopes", msg(2, &[string(1, "a"), string(1, "b")]));
    let empty = map_entry(5, "none", vec![]);
    let v = ok(&envelope(
        "authorization.k8s.io/v1",
        "SubjectAccessReview",
        &[msg(2, &[extra, empty])],
    ));
    assert_eq!(
        v["spec"]["extra"],
        json!({"scopes": ["a", "b"], "none": []})
    );
}

#[test]
fn schema_unions() {
    // JSONSchemaProps: 30 additionalProperties (OrBool: 1 allows, 2 schema), 5 type.
    let allows = msg(30, &[int(1, 1)]);
    let schema = msg(30, &[int(1, 0), msg(2, &[string(5, "string")])]);
    for (props, want) in [(allows, json!(true)), (schema, json!({"type": "string"}))] {
        let crd = msg(2, &[msg(7, &[msg(4, &[msg(1, &[props])])])]);
        let v = ok(&envelope(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            &[crd],
        ));
        assert_eq!(
            v["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["additionalProperties"],
            want
        );
    }
}

#[test]
fn unknown_fields_are_skipped() {
    let v = ok(&envelope(
        "v1",
        "ConfigMap",
        &[
            int(99, 7),
            string(98, "x"),
            msg(1, &[string(1, "n"), int(1000, 1)]),
        ],
    ));
    assert_eq!(
        v,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "n"}})
    );
}

#[test]
fn envelope_errors() {
    assert!(err(b"{\"kind\":\"ConfigMap\"}").contains("does not start with"));
    assert!(err(b"k8s").contains("does not start with"));
    assert!(err(&envelope("v1", "", &[])).contains("apiVersion and kind"));
    let e = err(&envelope("example.com/v1", "Widget", &[]));
    assert!(
        e.contains("\"example.com/v1\"") && e.contains("\"Widget\""),
        "{e}"
    );
    let mut gz = envelope("v1", "ConfigMap", &[]);
    gz.extend(string(3, "gzip"));
    assert!(err(&gz).contains("contentEncoding \"gzip\""));
    let mut js = envelope("v1", "ConfigMap", &[]);
    js.extend(string(4, "application/json"));
    assert!(err(&js).contains("contentType \"application/json\""));
}

#[test]
fn malformed_bodies_are_errors() {
    let good = envelope("v1", "ConfigMap", &[meta("x")]);
    // Every truncation of a valid body fails cleanly or decodes; none panics.
    for n in 0..good.len() {
        let _ = decode(&good[..n]);
    }
    // metadata as a varint instead of a message.
    let e = err(&envelope("v1", "ConfigMap", &[int(1, 5)]));
    assert!(
        e.contains("ConfigMap.metadata") && e.contains("length-delimited"),
        "{e}"
    );
    // A length running past the end of the object.
    let e = err(&envelope("v1", "ConfigMap", &[vec![0x0a, 0x10, 0x0a]]));
    assert!(e.contains("runs past the end"), "{e}");
    // A truncated varint inside metadata.
    let e = err(&envelope("v1", "ConfigMap", &[msg(1, &[vec![0x38, 0x80]])]));
    assert!(
        e.contains("ConfigMap.metadata") && e.contains("middle of a value"),
        "{e}"
    );
    // Groups are not Kubernetes protobuf.
    assert!(err(&envelope("v1", "ConfigMap", &[vec![0x0b]])).contains("wire type 3"));
    // A double that JSON cannot hold.
    let nan = [vec![0x49], f64::NAN.to_le_bytes().to_vec()].concat();
    let crd = msg(2, &[msg(7, &[msg(4, &[msg(1, &[nan])])])]);
    let e = err(&envelope(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        &[crd],
    ));
    assert!(e.contains("openAPIV3Schema.maximum"), "{e}");
}

#[test]
fn deep_nesting_is_refused() {
    // JSONSchemaProps.not (28) nested far past the limit.
    let mut schema = Vec::new();
    for _ in 0..super::MAX_DEPTH + 10 {
        schema = msg(28, &[schema]);
    }
    let crd = msg(2, &[msg(7, &[msg(4, &[bytes(1, &schema)])])]);
    let e = err(&envelope(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        &[crd],
    ));
    assert!(e.contains("nest more than 100 levels"), "{e}");
    // The same through RawExtensions holding protobuf objects.
    let mut body = envelope("apps/v1", "ControllerRevision", &[]);
    for _ in 0..super::MAX_DEPTH {
        body = envelope(
            "apps/v1",
            "ControllerRevision",
            &[msg(2, &[bytes(1, &body)])],
        );
    }
    assert!(err(&body).contains("nest more than"));
}

#[test]
fn mutated_bodies_never_panic() {
    // A cheap deterministic fuzz: flip, drop and duplicate bytes of realistic bodies.
    let spec = msg(
        2,
        &[msg(
            1,
            &[int(3, 80), msg(4, &[int(1, 1), string(3, "http")])],
        )],
    );
    let seeds = [
        envelope("v1", "Service", &[meta("svc"), spec]),
        envelope(
            "apps/v1",
            "ControllerRevision",
            &[msg(2, &[string(1, "{}")])],
        ),
    ];
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for seed in &seeds {
        for _ in 0..2000 {
            let mut body = seed.clone();
            for _ in 0..1 + next() % 4 {
                let i = (next() as usize) % body.len();
                match next() % 3 {
                    0 => body[i] = next() as u8,
                    1 => {
                        body.remove(i);
                    }
                    _ => body.insert(i, body[i]),
                }
            }
            let _ = decode(&body);
        }
    }
}

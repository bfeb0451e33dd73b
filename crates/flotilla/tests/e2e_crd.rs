//! CustomResourceDefinitions and their custom resources through real kubectl.

mod common;

use common::Cluster;

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names:
    plural: widgets
    singular: widget
    kind: Widget
    shortNames: [wd]
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale:
        specReplicasPath: .spec.replicas
        statusReplicasPath: .status.replicas
    additionalPrinterColumns:
    - name: Size
      type: string
      jsonPath: .spec.size
    - name: Replicas
      type: integer
      jsonPath: .spec.replicas
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size:
                type: string
                enum: [small, large]
              replicas:
                type: integer
                minimum: 0
                default: 1
          status:
            type: object
            properties:
              replicas: {type: integer}
"#;

#[test]
fn custom_resources_are_served_validated_and_printed() {
    let c = Cluster::start(&[]);
    c.ok_in(None, &["apply", "-f", "-"], Some(CRD));
    c.ok(&[
        "wait",
        "--for=condition=established",
        "--timeout=30s",
        "crd/widgets.example.com",
    ]);
    let out = c.ok(&["api-resources", "--api-group=example.com"]);
    assert!(
        out.contains("widgets") && out.contains("wd") && out.contains("Widget"),
        "{out}"
    );

    let w =
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w1\nspec:\n  size: small\n";
    c.ok_in(None, &["apply", "-f", "-"], Some(w));
    let replicas = c.ok(&["get", "widget", "w1", "-o", "jsonpath={.spec.replicas}"]);
    assert_eq!(replicas, "1", "schema default applied");
    let table = c.ok(&["get", "wd"]);
    assert!(
        table.contains("SIZE") && table.contains("REPLICAS") && table.contains("small"),
        "{table}"
    );

    let bad =
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w2\nspec:\n  size: huge\n";
    let err = c.fails(&["apply", "-f", "-"], Some(bad));
    assert!(
        err.contains("spec.size") && err.contains("Unsupported value: \"huge\""),
        "{err}"
    );
    let missing =
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w3\nspec:\n  replicas: 2\n";
    let err = c.fails(&["apply", "-f", "-"], Some(missing));
    assert!(err.contains("spec.size: Required value"), "{err}");
    let unknown = "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w4\nspec:\n  size: small\n  colour: red\n";
    let err = c.fails(&["create", "-f", "-"], Some(unknown));
    assert!(err.contains("colour"), "{err}");

    c.ok(&["scale", "widget", "w1", "--replicas=3"]);
    assert_eq!(
        c.ok(&["get", "widget", "w1", "-o", "jsonpath={.spec.replicas}"]),
        "3"
    );
    let out = c.ok(&["explain", "widget.spec.size"]);
    assert!(out.contains("size"), "{out}");

    c.ok(&["delete", "crd", "widgets.example.com"]);
    let err = c.fails(&["get", "widgets"], None);
    assert!(
        err.contains("could not find the requested resource")
            || err.contains("doesn't have a resource type"),
        "{err}"
    );
}

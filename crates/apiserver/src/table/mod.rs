//! Server-side printing: the `meta.k8s.io/v1` `Table` that `kubectl get` asks for with
//! `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`. The columns and cell values follow
//! Kubernetes' printers for each built-in kind, so `kubectl get` and `-o wide` read the same
//! as against a real cluster. The server always fills the wide (priority 1) cells; kubectl
//! hides them unless asked.

mod cluster;
mod core;
mod custom;
mod events;
pub(crate) mod format;
mod pods;
mod storage;
mod workloads;

use std::borrow::Cow;
use std::time::{SystemTime, UNIX_EPOCH};

use apimachinery::resources::Resource;
use serde_json::{Map, Value, json};

pub(crate) use custom::{columns_or_age, custom_resource_table};

/// What each row carries besides its cells (`?includeObject=`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    /// A `PartialObjectMetadata` with the object's metadata; Kubernetes' default.
    #[default]
    Metadata,
    Object,
}

impl IncludeObject {
    /// Reads the `includeObject` query parameter; absent or unknown means `Metadata`.
    pub(crate) fn from_param(value: Option<&str>) -> Self {
        match value {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

/// One column of a built-in printer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Col {
    name: &'static str,
    ty: &'static str,
    format: &'static str,
    description: &'static str,
    priority: u8,
}

pub(crate) const NAME_DESC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
pub(crate) const AGE_DESC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

/// A normal column.
pub(crate) const fn col(name: &'static str, ty: &'static str, description: &'static str) -> Col {
    Col {
        name,
        ty,
        format: "",
        description,
        priority: 0,
    }
}

/// A column shown only with `-o wide`.
pub(crate) const fn wide(name: &'static str, ty: &'static str, description: &'static str) -> Col {
    Col {
        name,
        ty,
        format: "",
        description,
        priority: 1,
    }
}

pub(crate) const NAME: Col = Col {
    name: "Name",
    ty: "string",
    format: "name",
    description: NAME_DESC,
    priority: 0,
};
pub(crate) const AGE: Col = col("Age", "string", AGE_DESC);
pub(crate) const CONTAINERS: Col = wide(
    "Containers",
    "string",
    "Names of each container in the template.",
);
pub(crate) const IMAGES: Col = wide(
    "Images",
    "string",
    "Images referenced by each container in the template.",
);

/// Cells of one object and, for finished pods, the row condition kubectl uses to dim them.
pub(crate) struct Row {
    pub cells: Vec<Value>,
    pub conditions: Option<Value>,
}

impl From<Vec<Value>> for Row {
    fn from(cells: Vec<Value>) -> Self {
        Row {
            cells,
            conditions: None,
        }
    }
}

/// Columns and the function filling them for one kind.
pub(crate) struct Printer {
    pub columns: &'static [Col],
    pub print: fn(&Value, i64) -> Row,
}

/// The printer Kubernetes registers for a built-in kind, if any.
fn printer_for(resource: &Resource) -> Option<&'static Printer> {
    let group = resource.group.as_ref();
    let kind = resource.kind.as_ref();
    workloads::printer(group, kind)
        .or_else(|| core::printer(group, kind))
        .or_else(|| cluster::printer(group, kind))
}

/// `obj` as a `Table` for `resource`. `items` are the objects of a list (or the one object of
/// a get); `list_meta` becomes the table's `metadata` (resourceVersion, continue). Kinds
/// without a printer, custom resources included, get NAME and AGE, as Kubernetes prints a
/// custom resource without `additionalPrinterColumns`.
pub fn to_table(
    resource: &Resource,
    items: &[&Value],
    include_object: IncludeObject,
    list_meta: Value,
    now: SystemTime,
) -> Value {
    let now = unix_seconds(now);
    match printer_for(resource) {
        Some(printer) => {
            let columns: Vec<Value> = printer.columns.iter().map(column_definition).collect();
            let rows = items
                .iter()
                .map(|obj| row_value((printer.print)(obj, now), obj, include_object))
                .collect();
            table(columns, rows, list_meta)
        }
        None => {
            let columns = vec![column_definition(&NAME), column_definition(&AGE)];
            let rows = items
                .iter()
                .map(|obj| {
                    let cells = vec![
                        format::str_at(obj, "metadata.name").into(),
                        age(obj, now).into(),
                    ];
                    row_value(cells.into(), obj, include_object)
                })
                .collect();
            table(columns, rows, list_meta)
        }
    }
}

fn table(columns: Vec<Value>, rows: Vec<Value>, list_meta: Value) -> Value {
    let metadata = if list_meta.is_object() {
        list_meta
    } else {
        json!({})
    };
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": columns,
        "rows": rows,
    })
}

fn column_definition(c: &Col) -> Value {
    column_value(c.name, c.ty, c.format, c.description, i64::from(c.priority))
}

pub(crate) fn column_value(
    name: &str,
    ty: &str,
    format: &str,
    description: &str,
    priority: i64,
) -> Value {
    json!({"name": name, "type": ty, "format": format, "description": description, "priority": priority})
}

pub(crate) fn row_value(row: Row, obj: &Value, include_object: IncludeObject) -> Value {
    let mut out = Map::new();
    out.insert("cells".into(), Value::Array(row.cells));
    if let Some(conditions) = row.conditions {
        out.insert("conditions".into(), conditions);
    }
    match include_object {
        IncludeObject::None => {}
        IncludeObject::Metadata => {
            let metadata = obj.get("metadata").cloned().unwrap_or_else(|| json!({}));
            out.insert(
                "object".into(),
                json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": metadata}),
            );
        }
        IncludeObject::Object => {
            out.insert("object".into(), obj.clone());
        }
    }
    Value::Object(out)
}

pub(crate) fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// The AGE cell.
pub(crate) fn age(obj: &Value, now: i64) -> String {
    format::since(format::at(obj, "metadata.creationTimestamp"), now)
}

/// The name cell, which `kubectl get` prefixes with the resource when several kinds print.
pub(crate) fn name(obj: &Value) -> Value {
    format::str_at(obj, "metadata.name").into()
}

/// `Created At` cells of Kubernetes' default table (roles, CRDs): the raw RFC 3339 time.
pub(crate) fn created_at(obj: &Value) -> Value {
    match format::at(obj, "metadata.creationTimestamp") {
        Value::String(s) => Value::String(s.clone()),
        _ => Value::Null,
    }
}

pub(crate) fn text(s: impl Into<Cow<'static, str>>) -> Value {
    Value::String(s.into().into_owned())
}

#[cfg(test)]
mod tests;

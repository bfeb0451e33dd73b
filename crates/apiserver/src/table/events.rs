//! Printers for events of the core and `events.k8s.io` groups, which print alike.

use serde_json::Value;

use super::format::{at, int_at, since, str_at};
use super::{Printer, col, name, text, wide};

const EVENT_COLUMNS: &[super::Col] = &[
    col(
        "Last Seen",
        "string",
        "The time at which the most recent occurrence of this event was recorded.",
    ),
    col(
        "Type",
        "string",
        "Type of this event (Normal, Warning), new types could be added in the future",
    ),
    col(
        "Reason",
        "string",
        "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
    ),
    col("Object", "string", "The object that this event is about."),
    wide(
        "Subobject",
        "string",
        "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement.",
    ),
    wide(
        "Source",
        "string",
        "The component reporting this event. Should be a short machine understandable string.",
    ),
    col(
        "Message",
        "string",
        "A human-readable description of the status of this operation.",
    ),
    wide(
        "First Seen",
        "string",
        "The time at which the event was first recorded.",
    ),
    wide(
        "Count",
        "string",
        "The number of times this event has occurred.",
    ),
    super::Col {
        name: "Name",
        ty: "string",
        format: "name",
        description: super::NAME_DESC,
        priority: 1,
    },
];

pub(crate) static EVENT: Printer = Printer {
    columns: EVENT_COLUMNS,
    print: |e, now| print_event(e, &EventFields::CORE, now),
};
pub(crate) static EVENTS_V1: Printer = Printer {
    columns: EVENT_COLUMNS,
    print: |e, now| print_event(e, &EventFields::EVENTS_V1, now),
};

/// Where each printed field lives: `events.k8s.io/v1` renamed most of core's event fields.
struct EventFields {
    first: &'static str,
    last: &'static str,
    count: &'static str,
    object: &'static str,
    message: &'static str,
    source_component: &'static str,
    source_host: &'static str,
}

impl EventFields {
    const CORE: EventFields = EventFields {
        first: "firstTimestamp",
        last: "lastTimestamp",
        count: "count",
        object: "involvedObject",
        message: "message",
        source_component: "source.component",
        source_host: "source.host",
    };
    const EVENTS_V1: EventFields = EventFields {
        first: "deprecatedFirstTimestamp",
        last: "deprecatedLastTimestamp",
        count: "deprecatedCount",
        object: "regarding",
        message: "note",
        source_component: "deprecatedSource.component",
        source_host: "deprecatedSource.host",
    };
}

fn print_event(e: &Value, f: &EventFields, now: i64) -> super::Row {
    let first = match at(e, f.first) {
        Value::Null => since(at(e, "eventTime"), now),
        t => since(t, now),
    };
    let mut last = match at(e, f.last) {
        Value::Null => first.clone(),
        t => since(t, now),
    };
    let mut count = int_at(e, f.count);
    if at(e, "series").is_object() {
        last = since(at(e, "series.lastObservedTime"), now);
        count = int_at(e, "series.count");
    } else if count == 0 {
        count = 1;
    }
    let object = at(e, f.object);
    let kind = str_at(object, "kind").to_lowercase();
    let target = match str_at(object, "name") {
        "" => kind,
        n => format!("{kind}/{n}"),
    };
    let component = [
        str_at(e, f.source_component),
        str_at(e, "reportingController"),
    ]
    .into_iter()
    .find(|s| !s.is_empty());
    let host = [str_at(e, f.source_host), str_at(e, "reportingInstance")]
        .into_iter()
        .find(|s| !s.is_empty());
    let source = match (component, host) {
        (None, _) => "<unknown>".to_string(),
        (Some(c), None) => c.to_string(),
        (Some(c), Some(h)) => format!("{c}, {h}"),
    };
    vec![
        text(last),
        text(str_at(e, "type").to_string()),
        text(str_at(e, "reason").to_string()),
        text(target),
        text(str_at(object, "fieldPath").to_string()),
        text(source),
        text(str_at(e, f.message).trim().to_string()),
        text(first),
        count.into(),
        name(e),
    ]
    .into()
}

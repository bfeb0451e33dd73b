//! Printers for persistent volumes and their claims.

use serde_json::Value;

use super::format::{at, list_at, str_at};
use super::{AGE, NAME, Printer, age, col, name, text, wide};

/// `RWO,ROX,RWX,RWOP` in Kubernetes' fixed order.
fn access_modes(modes: &[Value]) -> String {
    let has = |m: &str| modes.iter().any(|v| v.as_str() == Some(m));
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .iter()
    .filter(|(long, _)| has(long))
    .map(|(_, short)| *short)
    .collect::<Vec<_>>()
    .join(",")
}

fn storage_class(obj: &Value) -> String {
    let class = str_at(obj, "spec.storageClassName");
    if !class.is_empty() {
        return class.into();
    }
    apimachinery::json::str_at(
        at(obj, "metadata.annotations"),
        "volume.beta.kubernetes.io/storage-class",
    )
    .to_string()
}

fn phase_or_terminating(obj: &Value) -> String {
    if at(obj, "metadata.deletionTimestamp").is_null() {
        str_at(obj, "status.phase").to_string()
    } else {
        "Terminating".into()
    }
}

pub(crate) fn quantity(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

pub(crate) static PERSISTENT_VOLUME: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Capacity",
            "string",
            "capacity is the description of the persistent volume's resources and capacity.",
        ),
        col(
            "Access Modes",
            "string",
            "accessModes contains all ways the volume can be mounted.",
        ),
        col(
            "Reclaim Policy",
            "string",
            "persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from its claim.",
        ),
        col(
            "Status",
            "string",
            "phase indicates if a volume is available, bound to a claim, or released by a claim.",
        ),
        col(
            "Claim",
            "string",
            "claimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim.",
        ),
        col("StorageClass", "string", "StorageClass of the pv"),
        col(
            "VolumeAttributesClass",
            "string",
            "VolumeAttributesClass of the pv",
        ),
        col(
            "Reason",
            "string",
            "reason is a brief CamelCase string that describes any failure and is meant for machine parsing and tidy display in the CLI.",
        ),
        AGE,
        wide(
            "VolumeMode",
            "string",
            "volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain in raw block state.",
        ),
    ],
    print: |pv, now| {
        let claim = match at(pv, "spec.claimRef") {
            Value::Null => String::new(),
            c => format!("{}/{}", str_at(c, "namespace"), str_at(c, "name")),
        };
        let vac = match str_at(pv, "spec.volumeAttributesClassName") {
            "" => "<unset>",
            c => c,
        };
        let mode = match str_at(pv, "spec.volumeMode") {
            "" => "<unset>",
            m => m,
        };
        vec![
            name(pv),
            text(quantity(at(pv, "spec.capacity.storage"))),
            text(access_modes(list_at(pv, "spec.accessModes"))),
            text(str_at(pv, "spec.persistentVolumeReclaimPolicy").to_string()),
            text(phase_or_terminating(pv)),
            text(claim),
            text(storage_class(pv)),
            text(vac.to_string()),
            text(str_at(pv, "status.reason").to_string()),
            text(age(pv, now)),
            text(mode.to_string()),
        ]
        .into()
    },
};

pub(crate) static PERSISTENT_VOLUME_CLAIM: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Status",
            "string",
            "phase represents the current phase of PersistentVolumeClaim.",
        ),
        col(
            "Volume",
            "string",
            "volumeName is the binding reference to the PersistentVolume backing this claim.",
        ),
        col(
            "Capacity",
            "string",
            "capacity represents the actual resources of the underlying volume.",
        ),
        col(
            "Access Modes",
            "string",
            "accessModes contains the actual access modes the volume backing the PVC has.",
        ),
        col("StorageClass", "string", "StorageClass of the pvc"),
        col(
            "VolumeAttributesClass",
            "string",
            "VolumeAttributesClass of the pvc",
        ),
        AGE,
        wide(
            "VolumeMode",
            "string",
            "volumeMode defines what type of volume is required by the claim.",
        ),
    ],
    print: |pvc, now| {
        let bound = !str_at(pvc, "spec.volumeName").is_empty();
        let (capacity, modes) = if bound {
            (
                quantity(at(pvc, "status.capacity.storage")),
                access_modes(list_at(pvc, "status.accessModes")),
            )
        } else {
            (String::new(), String::new())
        };
        let vac = match str_at(pvc, "spec.volumeAttributesClassName") {
            "" => "<unset>",
            c => c,
        };
        let mode = match str_at(pvc, "spec.volumeMode") {
            "" => "<unset>",
            m => m,
        };
        vec![
            name(pvc),
            text(phase_or_terminating(pvc)),
            text(str_at(pvc, "spec.volumeName").to_string()),
            text(capacity),
            text(modes),
            text(storage_class(pvc)),
            text(vac.to_string()),
            text(age(pvc, now)),
            text(mode.to_string()),
        ]
        .into()
    },
};

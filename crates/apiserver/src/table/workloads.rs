//! Printers for pods and the workloads that own them.

use serde_json::Value;

use super::format::{
    at, bool_at, container_cells, format_label_selector, format_labels, int_at, list_at,
    opt_int_at, since, str_at,
};
use super::{AGE, CONTAINERS, Col, IMAGES, NAME, Printer, Row, age, col, name, text, wide};

pub(crate) fn printer(group: &str, kind: &str) -> Option<&'static Printer> {
    Some(match (group, kind) {
        ("", "Pod") => &super::pods::POD,
        ("", "ReplicationController") => &REPLICATION_CONTROLLER,
        ("", "PodTemplate") => &POD_TEMPLATE,
        ("apps", "Deployment") => &DEPLOYMENT,
        ("apps", "ReplicaSet") => &REPLICA_SET,
        ("apps", "StatefulSet") => &STATEFUL_SET,
        ("apps", "DaemonSet") => &DAEMON_SET,
        ("apps", "ControllerRevision") => &CONTROLLER_REVISION,
        ("batch", "Job") => &JOB,
        ("batch", "CronJob") => &CRON_JOB,
        ("autoscaling", "HorizontalPodAutoscaler") => &HPA,
        ("policy", "PodDisruptionBudget") => &PDB,
        _ => return None,
    })
}

const SELECTOR: Col = wide(
    "Selector",
    "string",
    "A label query over pods that should match the replica count.",
);

/// `spec.replicas`, which defaults to 1 when unset.
fn desired_replicas(obj: &Value) -> i64 {
    opt_int_at(obj, "spec.replicas").unwrap_or(1)
}

static DEPLOYMENT: Printer = Printer {
    columns: &[
        NAME,
        col("Ready", "string", "Number of the pod with ready state"),
        col(
            "Up-to-date",
            "string",
            "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
        ),
        col(
            "Available",
            "string",
            "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
        ),
        AGE,
        CONTAINERS,
        IMAGES,
        SELECTOR,
    ],
    print: |d, now| {
        let (names, images) = container_cells(list_at(d, "spec.template.spec.containers"));
        vec![
            name(d),
            text(format!(
                "{}/{}",
                int_at(d, "status.readyReplicas"),
                desired_replicas(d)
            )),
            int_at(d, "status.updatedReplicas").into(),
            int_at(d, "status.availableReplicas").into(),
            text(age(d, now)),
            text(names),
            text(images),
            text(format_label_selector(at(d, "spec.selector"))),
        ]
        .into()
    },
};

const REPLICA_COLUMNS: &[Col] = &[
    NAME,
    col(
        "Desired",
        "integer",
        "Replicas is the number of desired pods.",
    ),
    col(
        "Current",
        "integer",
        "Replicas is the most recently observed number of replicas.",
    ),
    col(
        "Ready",
        "integer",
        "The number of ready replicas for this replica set.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

fn print_replicas(obj: &Value, now: i64, selector: String) -> Row {
    let (names, images) = container_cells(list_at(obj, "spec.template.spec.containers"));
    vec![
        name(obj),
        desired_replicas(obj).into(),
        int_at(obj, "status.replicas").into(),
        int_at(obj, "status.readyReplicas").into(),
        text(age(obj, now)),
        text(names),
        text(images),
        text(selector),
    ]
    .into()
}

static REPLICA_SET: Printer = Printer {
    columns: REPLICA_COLUMNS,
    print: |rs, now| print_replicas(rs, now, format_label_selector(at(rs, "spec.selector"))),
};

static REPLICATION_CONTROLLER: Printer = Printer {
    columns: REPLICA_COLUMNS,
    print: |rc, now| print_replicas(rc, now, format_labels(at(rc, "spec.selector"))),
};

static STATEFUL_SET: Printer = Printer {
    columns: &[
        NAME,
        col("Ready", "string", "Number of the pod with ready state"),
        AGE,
        CONTAINERS,
        IMAGES,
    ],
    print: |s, now| {
        let (names, images) = container_cells(list_at(s, "spec.template.spec.containers"));
        vec![
            name(s),
            text(format!(
                "{}/{}",
                int_at(s, "status.readyReplicas"),
                desired_replicas(s)
            )),
            text(age(s, now)),
            text(names),
            text(images),
        ]
        .into()
    },
};

static DAEMON_SET: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Desired",
            "integer",
            "The total number of nodes that should be running the daemon pod.",
        ),
        col(
            "Current",
            "integer",
            "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod.",
        ),
        col(
            "Ready",
            "integer",
            "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running with a Ready Condition.",
        ),
        col(
            "Up-to-date",
            "integer",
            "The total number of nodes that are running updated daemon pod",
        ),
        col(
            "Available",
            "integer",
            "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available.",
        ),
        col(
            "Node Selector",
            "string",
            "NodeSelector is a selector which must be true for the pod to fit on a node.",
        ),
        AGE,
        CONTAINERS,
        IMAGES,
        SELECTOR,
    ],
    print: |ds, now| {
        let (names, images) = container_cells(list_at(ds, "spec.template.spec.containers"));
        vec![
            name(ds),
            int_at(ds, "status.desiredNumberScheduled").into(),
            int_at(ds, "status.currentNumberScheduled").into(),
            int_at(ds, "status.numberReady").into(),
            int_at(ds, "status.updatedNumberScheduled").into(),
            int_at(ds, "status.numberAvailable").into(),
            text(format_labels(at(ds, "spec.template.spec.nodeSelector"))),
            text(age(ds, now)),
            text(names),
            text(images),
            text(format_label_selector(at(ds, "spec.selector"))),
        ]
        .into()
    },
};

static CONTROLLER_REVISION: Printer = Printer {
    columns: &[
        NAME,
        col("Controller", "string", "Controller of the object"),
        col(
            "Revision",
            "string",
            "Revision indicates the revision of the state represented by Data.",
        ),
        AGE,
    ],
    print: |cr, now| {
        let controller = list_at(cr, "metadata.ownerReferences")
            .iter()
            .find(|o| bool_at(o, "controller"))
            .map(|o| {
                let api_version = str_at(o, "apiVersion");
                let group = api_version
                    .rsplit_once('/')
                    .map(|(g, _)| g)
                    .unwrap_or_default();
                let kind = str_at(o, "kind").to_lowercase();
                let resource = if group.is_empty() {
                    kind
                } else {
                    format!("{kind}.{group}")
                };
                format!("{resource}/{}", str_at(o, "name"))
            })
            .unwrap_or_else(|| "<none>".into());
        vec![
            name(cr),
            text(controller),
            int_at(cr, "revision").into(),
            text(age(cr, now)),
        ]
        .into()
    },
};

fn job_has(job: &Value, kind: &str) -> bool {
    list_at(job, "status.conditions")
        .iter()
        .any(|c| str_at(c, "type") == kind && str_at(c, "status") == "True")
}

static JOB: Printer = Printer {
    columns: &[
        NAME,
        col("Status", "string", "Status of the job."),
        col(
            "Completions",
            "string",
            "The number of pods which reached phase Succeeded.",
        ),
        col("Duration", "string", "Time required to complete the job."),
        AGE,
        CONTAINERS,
        IMAGES,
        SELECTOR,
    ],
    print: |job, now| {
        let status = if job_has(job, "Complete") {
            "Complete"
        } else if job_has(job, "Failed") {
            "Failed"
        } else if !at(job, "metadata.deletionTimestamp").is_null() {
            "Terminating"
        } else if job_has(job, "Suspended") {
            "Suspended"
        } else if job_has(job, "FailureTarget") {
            "FailureTarget"
        } else if job_has(job, "SuccessCriteriaMet") {
            "SuccessCriteriaMet"
        } else {
            "Running"
        };
        let succeeded = int_at(job, "status.succeeded");
        let completions = match opt_int_at(job, "spec.completions") {
            Some(c) => format!("{succeeded}/{c}"),
            None => match opt_int_at(job, "spec.parallelism").unwrap_or(0) {
                p if p > 1 => format!("{succeeded}/1 of {p}"),
                _ => format!("{succeeded}/1"),
            },
        };
        let start = super::format::parse_time(at(job, "status.startTime"));
        let end = super::format::parse_time(at(job, "status.completionTime"));
        let duration = match (start, end) {
            (None, _) => String::new(),
            (Some(s), None) => super::format::human_duration(now - s),
            (Some(s), Some(e)) => super::format::human_duration(e - s),
        };
        let (names, images) = container_cells(list_at(job, "spec.template.spec.containers"));
        vec![
            name(job),
            text(status),
            text(completions),
            text(duration),
            text(age(job, now)),
            text(names),
            text(images),
            text(format_label_selector(at(job, "spec.selector"))),
        ]
        .into()
    },
};

static CRON_JOB: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Schedule",
            "string",
            "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron.",
        ),
        col(
            "Timezone",
            "string",
            "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones.",
        ),
        col(
            "Suspend",
            "boolean",
            "This flag tells the controller to suspend subsequent executions, it does not apply to already started executions.",
        ),
        col(
            "Active",
            "integer",
            "A list of pointers to currently running jobs.",
        ),
        col(
            "Last Schedule",
            "string",
            "Information when was the last time the job was successfully scheduled.",
        ),
        AGE,
        CONTAINERS,
        IMAGES,
        SELECTOR,
    ],
    print: |cj, now| {
        let suspend = match at(cj, "spec.suspend").as_bool() {
            Some(true) => "True",
            Some(false) => "False",
            None => "<unset>",
        };
        let last = match at(cj, "status.lastScheduleTime") {
            Value::Null => "<none>".to_string(),
            t => since(t, now),
        };
        let template = at(cj, "spec.jobTemplate.spec");
        let (names, images) = container_cells(list_at(template, "template.spec.containers"));
        vec![
            name(cj),
            text(str_at(cj, "spec.schedule").to_string()),
            text(super::format::or_none(str_at(cj, "spec.timeZone"))),
            text(suspend),
            (list_at(cj, "status.active").len() as i64).into(),
            text(last),
            text(age(cj, now)),
            text(names),
            text(images),
            text(format_label_selector(at(template, "selector"))),
        ]
        .into()
    },
};

static POD_TEMPLATE: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Containers",
            "string",
            "Names of each container in the template.",
        ),
        col(
            "Images",
            "string",
            "Images referenced by each container in the template.",
        ),
        col("Pod Labels", "string", "The labels for the pod template."),
    ],
    print: |pt, _| {
        let (names, images) = container_cells(list_at(pt, "template.spec.containers"));
        vec![
            name(pt),
            text(names),
            text(images),
            text(format_labels(at(pt, "template.metadata.labels"))),
        ]
        .into()
    },
};

static HPA: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Reference",
            "string",
            "reference to scaled resource; horizontal pod autoscaler will learn the current resource consumption and will set the desired number of pods by using its Scale subresource.",
        ),
        col(
            "Targets",
            "string",
            "metrics contains the specifications for which to use to calculate the desired replica count (the maximum replica count across all metrics will be used).",
        ),
        col(
            "MinPods",
            "string",
            "minReplicas is the lower limit for the number of replicas to which the autoscaler can scale down.",
        ),
        col(
            "MaxPods",
            "string",
            "maxReplicas is the upper limit for the number of pods that can be set by the autoscaler; cannot be smaller than MinReplicas.",
        ),
        col(
            "Replicas",
            "string",
            "currentReplicas is current number of replicas of pods managed by this autoscaler, as last seen by the autoscaler.",
        ),
        AGE,
    ],
    print: |hpa, now| {
        let reference = format!(
            "{}/{}",
            str_at(hpa, "spec.scaleTargetRef.kind"),
            str_at(hpa, "spec.scaleTargetRef.name")
        );
        let min =
            opt_int_at(hpa, "spec.minReplicas").map_or("<unset>".to_string(), |m| m.to_string());
        vec![
            name(hpa),
            text(reference),
            text(hpa_targets(hpa)),
            text(min),
            int_at(hpa, "spec.maxReplicas").into(),
            int_at(hpa, "status.currentReplicas").into(),
            text(age(hpa, now)),
        ]
        .into()
    },
};

/// Resource metrics as `cpu: 40%/80%`; other metric sources print their target only.
fn hpa_targets(hpa: &Value) -> String {
    let metrics = list_at(hpa, "spec.metrics");
    if metrics.is_empty() {
        return "<none>".into();
    }
    let current = list_at(hpa, "status.currentMetrics");
    let mut out: Vec<String> = Vec::new();
    for (i, m) in metrics.iter().enumerate() {
        if str_at(m, "type") == "Resource" {
            let resource = str_at(m, "resource.name");
            let now = current
                .get(i)
                .filter(|c| str_at(c, "resource.name") == resource);
            if let Some(target) = opt_int_at(m, "resource.target.averageUtilization") {
                let have = now.and_then(|c| opt_int_at(c, "resource.current.averageUtilization"));
                let have = have.map_or("<unknown>".to_string(), |h| format!("{h}%"));
                out.push(format!("{resource}: {have}/{target}%"));
                continue;
            }
            let target = str_at(m, "resource.target.averageValue");
            let have = now
                .map(|c| str_at(c, "resource.current.averageValue"))
                .filter(|s| !s.is_empty());
            out.push(format!(
                "{resource}: {}/{target}",
                have.unwrap_or("<unknown>")
            ));
        } else {
            out.push(format!("<unknown>/{}", str_at(m, "type")));
        }
    }
    let shown = out.len().min(3);
    let mut joined = out[..shown].join(", ");
    if out.len() > shown {
        joined.push_str(&format!(" + {} more...", out.len() - shown));
    }
    joined
}

static PDB: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Min Available",
            "string",
            "The minimum number of pods that must be available.",
        ),
        col(
            "Max Unavailable",
            "string",
            "The maximum number of pods that may be unavailable.",
        ),
        col(
            "Allowed Disruptions",
            "integer",
            "Calculated number of pods that may be disrupted at this time.",
        ),
        AGE,
    ],
    print: |pdb, now| {
        let int_or_string = |path| match at(pdb, path) {
            Value::Null => "N/A".to_string(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        vec![
            name(pdb),
            text(int_or_string("spec.minAvailable")),
            text(int_or_string("spec.maxUnavailable")),
            int_at(pdb, "status.disruptionsAllowed").into(),
            text(age(pdb, now)),
        ]
        .into()
    },
};

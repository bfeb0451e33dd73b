//! The matching rules of scheduling constraints, parsed once per object:
//! node selector terms, pod affinity terms, tolerations.

use std::collections::{BTreeMap, BTreeSet};

use apimachinery::selectors::{LabelSelector, Operator, Requirement};
use k8s_openapi::api::core::v1::{
    NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, PodAffinityTerm, Taint, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as KLabelSelector;
use serde_json::{Value, json};

pub type Labels = BTreeMap<String, String>;

/// One `nodeSelectorTerms` entry: all of its expressions and fields must hold.
#[derive(Debug, Clone, Default)]
pub struct NodeTerm {
    labels: Vec<Requirement>,
    /// `matchFields`; Kubernetes supports only `metadata.name`.
    names: Vec<Requirement>,
    /// A term with an unknown operator or field matches no node, as in Kubernetes.
    invalid: bool,
}

impl NodeTerm {
    pub fn parse(term: &NodeSelectorTerm) -> Self {
        let mut out = Self::default();
        for r in term.match_expressions.iter().flatten() {
            match requirement(r) {
                Some(req) => out.labels.push(req),
                None => out.invalid = true,
            }
        }
        for r in term.match_fields.iter().flatten() {
            let valid_op = matches!(r.operator.as_str(), "In" | "NotIn");
            match requirement(r) {
                Some(req) if r.key == "metadata.name" && valid_op => out.names.push(req),
                _ => out.invalid = true,
            }
        }
        out
    }

    pub fn matches(&self, node_name: &str, labels: &Labels) -> bool {
        if self.invalid || (self.labels.is_empty() && self.names.is_empty()) {
            return false;
        }
        let get = |k: &str| labels.get(k).map(String::as_str);
        self.labels.iter().all(|r| r.matches(&get))
            && self
                .names
                .iter()
                .all(|r| r.matches(&|_: &str| Some(node_name)))
    }
}

fn requirement(r: &NodeSelectorRequirement) -> Option<Requirement> {
    let operator = match r.operator.as_str() {
        "In" => Operator::In,
        "NotIn" => Operator::NotIn,
        "Exists" => Operator::Exists,
        "DoesNotExist" => Operator::DoesNotExist,
        "Gt" => Operator::GreaterThan,
        "Lt" => Operator::LessThan,
        _ => return None,
    };
    let mut values = r.values.clone().unwrap_or_default();
    values.sort();
    values.dedup();
    Some(Requirement {
        key: r.key.clone(),
        operator,
        values,
    })
}

/// `requiredDuringSchedulingIgnoredDuringExecution` of node affinity (or a
/// local volume's node affinity): the terms are ORed.
#[derive(Debug, Clone, Default)]
pub struct NodeSelectorTerms(pub Vec<NodeTerm>);

impl NodeSelectorTerms {
    pub fn parse(sel: &NodeSelector) -> Self {
        Self(
            sel.node_selector_terms
                .iter()
                .map(NodeTerm::parse)
                .collect(),
        )
    }

    pub fn matches(&self, node_name: &str, labels: &Labels) -> bool {
        self.0.iter().any(|t| t.matches(node_name, labels))
    }
}

/// Converts a typed label selector; `None` (absent) matches nothing. Extra
/// requirements come from `matchLabelKeys` / `mismatchLabelKeys`.
pub fn label_selector(
    sel: Option<&KLabelSelector>,
    extra: Vec<Value>,
) -> Result<LabelSelector, String> {
    let Some(sel) = sel else {
        return Ok(LabelSelector::nothing());
    };
    let mut value = serde_json::to_value(sel).map_err(|e| e.to_string())?;
    if !extra.is_empty()
        && let Some(obj) = value.as_object_mut()
    {
        let exprs = obj.entry("matchExpressions").or_insert_with(|| json!([]));
        if let Some(list) = exprs.as_array_mut() {
            list.extend(extra);
        }
    }
    LabelSelector::from_metav1(&value).map_err(|e| e.to_string())
}

/// `key In [value]` for each `matchLabelKeys` key the pod carries (and `NotIn`
/// for `mismatchLabelKeys`), so a term applies to the pod's own revision or group.
pub fn label_key_requirements(labels: &Labels, keys: Option<&Vec<String>>, op: &str) -> Vec<Value> {
    keys.into_iter()
        .flatten()
        .filter_map(|k| {
            let v = labels.get(k)?;
            Some(json!({"key": k, "operator": op, "values": [v]}))
        })
        .collect()
}

/// One pod (anti-)affinity term with the namespaces it applies to resolved
/// against the namespace of the pod that declared it.
#[derive(Debug, Clone)]
pub struct AffinityTerm {
    pub topology_key: String,
    selector: LabelSelector,
    namespaces: BTreeSet<String>,
    /// `namespaceSelector`: `None` when absent.
    namespace_selector: Option<LabelSelector>,
}

impl AffinityTerm {
    pub fn parse(
        term: &PodAffinityTerm,
        own_ns: &str,
        own_labels: &Labels,
    ) -> Result<Self, String> {
        let mut extra = label_key_requirements(own_labels, term.match_label_keys.as_ref(), "In");
        extra.extend(label_key_requirements(
            own_labels,
            term.mismatch_label_keys.as_ref(),
            "NotIn",
        ));
        let selector = label_selector(term.label_selector.as_ref(), extra)?;
        let mut namespaces: BTreeSet<String> = term.namespaces.iter().flatten().cloned().collect();
        let namespace_selector = match term.namespace_selector.as_ref() {
            Some(s) => Some(label_selector(Some(s), Vec::new())?),
            None => None,
        };
        if namespaces.is_empty() && namespace_selector.is_none() {
            namespaces.insert(own_ns.to_string());
        }
        Ok(Self {
            topology_key: term.topology_key.clone(),
            selector,
            namespaces,
            namespace_selector,
        })
    }

    /// Whether a pod in namespace `ns` with `labels` is one this term selects;
    /// `ns_labels` looks up a namespace's labels for `namespaceSelector`.
    pub fn matches(
        &self,
        ns: &str,
        labels: &Labels,
        ns_labels: &dyn Fn(&str) -> Option<Labels>,
    ) -> bool {
        let ns_ok = self.namespaces.contains(ns)
            || self.namespace_selector.as_ref().is_some_and(|sel| {
                sel.is_empty() || ns_labels(ns).is_some_and(|l| sel.matches_map(&l))
            });
        ns_ok && self.selector.matches_map(labels)
    }
}

/// Whether `toleration` tolerates `taint` (Kubernetes' `ToleratesTaint`).
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = toleration.effect.as_deref()
        && !effect.is_empty()
        && effect != taint.effect
    {
        return false;
    }
    if let Some(key) = toleration.key.as_deref()
        && !key.is_empty()
        && key != taint.key
    {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => {
            toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
        _ => false,
    }
}

/// The first taint with one of `effects` that no toleration tolerates.
pub fn untolerated<'a>(
    taints: &'a [Taint],
    tolerations: &[Toleration],
    effects: &[&str],
) -> Option<&'a Taint> {
    taints
        .iter()
        .filter(|t| effects.contains(&t.effect.as_str()))
        .find(|t| !tolerations.iter().any(|tol| tolerates(tol, t)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::labels;

    fn req(key: &str, op: &str, values: &[&str]) -> NodeSelectorRequirement {
        NodeSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(values.iter().map(|s| s.to_string()).collect()),
        }
    }

    #[test]
    fn every_node_selector_operator() {
        let l = labels(&[("zone", "a"), ("cores", "8")]);
        let check = |r: NodeSelectorRequirement| {
            NodeTerm::parse(&NodeSelectorTerm {
                match_expressions: Some(vec![r]),
                match_fields: None,
            })
            .matches("n1", &l)
        };
        assert!(check(req("zone", "In", &["a", "b"])));
        assert!(!check(req("zone", "NotIn", &["a"])));
        assert!(check(req("zone", "Exists", &[])));
        assert!(check(req("gpu", "DoesNotExist", &[])));
        assert!(check(req("cores", "Gt", &["4"])));
        assert!(!check(req("cores", "Lt", &["4"])));
        assert!(
            !check(req("zone", "Gt", &["4"])),
            "non-integer label never matches Gt"
        );
        assert!(
            !check(req("zone", "Sideways", &["a"])),
            "unknown operator matches nothing"
        );
    }

    #[test]
    fn match_fields_on_metadata_name_and_empty_terms() {
        let term = NodeTerm::parse(&NodeSelectorTerm {
            match_expressions: None,
            match_fields: Some(vec![req("metadata.name", "In", &["n1"])]),
        });
        assert!(term.matches("n1", &Labels::new()));
        assert!(!term.matches("n2", &Labels::new()));
        assert!(
            !NodeTerm::default().matches("n1", &Labels::new()),
            "an empty term matches nothing"
        );
        let bad_field = NodeTerm::parse(&NodeSelectorTerm {
            match_expressions: None,
            match_fields: Some(vec![req("metadata.uid", "In", &["x"])]),
        });
        assert!(!bad_field.matches("n1", &Labels::new()));
    }

    #[test]
    fn toleration_rules() {
        let taint = Taint {
            key: "dedicated".into(),
            value: Some("gpu".into()),
            effect: "NoSchedule".into(),
            time_added: None,
        };
        let tol = |key: Option<&str>,
                   op: Option<&str>,
                   value: Option<&str>,
                   effect: Option<&str>| Toleration {
            key: key.map(Into::into),
            operator: op.map(Into::into),
            value: value.map(Into::into),
            effect: effect.map(Into::into),
            toleration_seconds: None,
        };
        assert!(tolerates(
            &tol(Some("dedicated"), None, Some("gpu"), None),
            &taint
        ));
        assert!(!tolerates(
            &tol(Some("dedicated"), None, Some("cpu"), None),
            &taint
        ));
        assert!(tolerates(
            &tol(Some("dedicated"), Some("Exists"), None, Some("NoSchedule")),
            &taint
        ));
        assert!(!tolerates(
            &tol(Some("dedicated"), Some("Exists"), None, Some("NoExecute")),
            &taint
        ));
        assert!(
            tolerates(&tol(None, Some("Exists"), None, None), &taint),
            "tolerates everything"
        );
        assert!(!tolerates(
            &tol(Some("dedicated"), Some("Bogus"), None, None),
            &taint
        ));
    }

    #[test]
    fn affinity_term_namespaces() {
        let own = labels(&[("app", "web")]);
        let term = PodAffinityTerm {
            label_selector: Some(KLabelSelector {
                match_labels: Some([("app".to_string(), "db".to_string())].into()),
                match_expressions: None,
            }),
            topology_key: "zone".into(),
            ..Default::default()
        };
        let t = AffinityTerm::parse(&term, "prod", &own).expect("parses");
        let db = labels(&[("app", "db")]);
        let none = |_: &str| None;
        assert!(t.matches("prod", &db, &none));
        assert!(
            !t.matches("dev", &db, &none),
            "own namespace only by default"
        );

        let all = PodAffinityTerm {
            namespace_selector: Some(KLabelSelector::default()),
            ..term.clone()
        };
        let t = AffinityTerm::parse(&all, "prod", &own).expect("parses");
        assert!(
            t.matches("dev", &db, &none),
            "empty namespaceSelector selects every namespace"
        );

        let labelled = PodAffinityTerm {
            namespace_selector: Some(KLabelSelector {
                match_labels: Some([("team".to_string(), "a".to_string())].into()),
                match_expressions: None,
            }),
            ..term
        };
        let t = AffinityTerm::parse(&labelled, "prod", &own).expect("parses");
        let team_a = |ns: &str| (ns == "dev").then(|| labels(&[("team", "a")]));
        assert!(t.matches("dev", &db, &team_a));
        assert!(!t.matches("prod", &db, &team_a));
    }

    #[test]
    fn match_label_keys_narrow_the_selector() {
        let own = labels(&[("app", "web"), ("rev", "2")]);
        let term = PodAffinityTerm {
            label_selector: Some(KLabelSelector {
                match_labels: Some([("app".to_string(), "web".to_string())].into()),
                match_expressions: None,
            }),
            match_label_keys: Some(vec!["rev".into()]),
            topology_key: "zone".into(),
            ..Default::default()
        };
        let t = AffinityTerm::parse(&term, "ns", &own).expect("parses");
        let none = |_: &str| None;
        assert!(t.matches("ns", &own, &none));
        assert!(!t.matches("ns", &labels(&[("app", "web"), ("rev", "1")]), &none));
    }
}

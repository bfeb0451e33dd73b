use k8s_openapi::api::core::v1::{
    Affinity, Pod, PodAffinity, PodAffinityTerm, PodAntiAffinity, WeightedPodAffinityTerm,
};

use super::*;
use crate::testing::{NodeBuilder, PodBuilder, run_filter, run_score, selector};

fn nodes() -> Vec<k8s_openapi::api::core::v1::Node> {
    vec![
        NodeBuilder::new("a1").label("zone", "a").build(),
        NodeBuilder::new("a2").label("zone", "a").build(),
        NodeBuilder::new("b1").label("zone", "b").build(),
        NodeBuilder::new("nolabel").build(),
    ]
}

fn term(key: &str, app: &str) -> PodAffinityTerm {
    PodAffinityTerm {
        label_selector: Some(selector(&[("app", app)])),
        topology_key: key.into(),
        ..Default::default()
    }
}

fn with_affinity(name: &str, app: &str, affinity: Affinity) -> PodBuilder {
    PodBuilder::new(name).label("app", app).affinity(affinity)
}

fn required(t: PodAffinityTerm) -> Affinity {
    Affinity {
        pod_affinity: Some(PodAffinity {
            required_during_scheduling_ignored_during_execution: Some(vec![t]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn required_anti(t: PodAffinityTerm) -> Affinity {
    Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            required_during_scheduling_ignored_during_execution: Some(vec![t]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn db_on(node: &str) -> Pod {
    PodBuilder::new("db").label("app", "db").node(node).build()
}

#[test]
fn required_affinity_follows_the_domain_of_matching_pods() {
    let pod = with_affinity("p", "web", required(term("zone", "db"))).build();
    let placed = [db_on("a1")];
    assert!(
        run_filter(&InterPodAffinity, &pod, &nodes(), &placed, "a2").is_ok(),
        "same zone"
    );
    let err = run_filter(&InterPodAffinity, &pod, &nodes(), &placed, "b1").unwrap_err();
    assert_eq!(
        err.reason_list(),
        vec!["node(s) didn't match pod affinity rules"]
    );
    assert!(run_filter(&InterPodAffinity, &pod, &nodes(), &placed, "nolabel").is_err());
}

#[test]
fn a_self_selecting_first_pod_may_start_its_group() {
    let pod = with_affinity("p", "web", required(term("zone", "web"))).build();
    assert!(run_filter(&InterPodAffinity, &pod, &nodes(), &[], "b1").is_ok());
    let other = with_affinity("p", "web", required(term("zone", "db"))).build();
    assert!(run_filter(&InterPodAffinity, &other, &nodes(), &[], "b1").is_err());
}

#[test]
fn required_anti_affinity_keeps_away_from_the_domain() {
    let pod = with_affinity("p", "web", required_anti(term("zone", "db"))).build();
    let placed = [db_on("a1")];
    let err = run_filter(&InterPodAffinity, &pod, &nodes(), &placed, "a2").unwrap_err();
    assert_eq!(
        err.reason_list(),
        vec!["node(s) didn't match pod anti-affinity rules"]
    );
    assert!(err.resolvable);
    assert!(run_filter(&InterPodAffinity, &pod, &nodes(), &placed, "b1").is_ok());
    assert!(run_filter(&InterPodAffinity, &pod, &nodes(), &placed, "nolabel").is_ok());
}

#[test]
fn existing_pods_anti_affinity_is_symmetric() {
    let placed = [with_affinity(
        "db",
        "db",
        required_anti(term("kubernetes.io/hostname", "web")),
    )
    .node("a1")
    .build()];
    let pod = PodBuilder::new("p").label("app", "web").build();
    let err = run_filter(&InterPodAffinity, &pod, &nodes(), &placed, "a1").unwrap_err();
    assert_eq!(
        err.reason_list(),
        vec!["node(s) didn't satisfy existing pods anti-affinity rules"]
    );
    assert!(run_filter(&InterPodAffinity, &pod, &nodes(), &placed, "a2").is_ok());
}

#[test]
fn preferred_terms_score_both_ways() {
    let pod = with_affinity(
        "p",
        "web",
        Affinity {
            pod_affinity: Some(PodAffinity {
                preferred_during_scheduling_ignored_during_execution: Some(vec![
                    WeightedPodAffinityTerm {
                        weight: 10,
                        pod_affinity_term: term("zone", "db"),
                    },
                ]),
                ..Default::default()
            }),
            pod_anti_affinity: Some(PodAntiAffinity {
                preferred_during_scheduling_ignored_during_execution: Some(vec![
                    WeightedPodAffinityTerm {
                        weight: 10,
                        pod_affinity_term: term("kubernetes.io/hostname", "db"),
                    },
                ]),
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .build();
    let placed = [db_on("a1")];
    let s = run_score(&InterPodAffinity, &pod, &nodes(), &placed);
    // a1: +10 (zone) −10 (host) = 0; a2: +10; b1 and nolabel: 0.
    assert_eq!((s["a2"], s["a1"], s["b1"]), (100, 0, 0));

    // An existing pod's preferred affinity for the incoming pod attracts it.
    let placed = [with_affinity(
        "cache",
        "cache",
        Affinity {
            pod_affinity: Some(PodAffinity {
                preferred_during_scheduling_ignored_during_execution: Some(vec![
                    WeightedPodAffinityTerm {
                        weight: 50,
                        pod_affinity_term: term("zone", "web"),
                    },
                ]),
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .node("b1")
    .build()];
    let plain = PodBuilder::new("p").label("app", "web").build();
    let s = run_score(&InterPodAffinity, &plain, &nodes(), &placed);
    assert_eq!((s["b1"], s["a1"]), (100, 0));
}

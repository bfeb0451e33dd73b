//! The crate layering ARCHITECTURE.md describes, checked against what Cargo
//! resolves: `cargo metadata` gives every package's dependencies, and each rule
//! names crates that a workspace crate must not reach through its normal
//! (non-dev, non-build) dependencies, directly or through other crates.
//!
//! - The API clients — scheduler, controllers, leaderelection, and the node
//!   components (kubelet, proxy, dns, ingress) once those crates exist — talk
//!   to the server over HTTP only: no `store`, no `apiserver`.
//! - `apimachinery` is types and pure functions shared by the server and the
//!   clients: no async runtime and no HTTP client or server ([`NO_IO`]).
//! - `store` is below the API: no `apiserver`, and no Kubernetes types
//!   (`k8s-openapi`); it stores bytes under keys.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// Async runtimes and HTTP clients and servers (with the crates they are made
/// of), none of which `apimachinery` may pull in. The `http` crate (types
/// only, no I/O) is not on the list.
const NO_IO: &[&str] = &[
    // async runtimes and event loops
    "tokio",
    "mio",
    "async-std",
    "async-executor",
    "async-global-executor",
    "async-io",
    "smol",
    "glommio",
    "monoio",
    "actix-rt",
    // HTTP servers, clients, and their protocol layers
    "hyper",
    "hyper-util",
    "h2",
    "h3",
    "axum",
    "actix-web",
    "warp",
    "rocket",
    "poem",
    "tide",
    "tower-http",
    "reqwest",
    "ureq",
    "isahc",
    "surf",
    "curl",
    "attohttpc",
    "tonic",
    "kube",
    "kube-client",
];

/// API clients, and the crates that may not be under them.
const CLIENTS: &[&str] = &[
    "scheduler",
    "controllers",
    "leaderelection",
    "kubelet",
    "proxy",
    "dns",
    "ingress",
];
const SERVER_SIDE: &[&str] = &["store", "apiserver"];

/// One rule: `krate` must not reach any of `forbidden`, because `why`.
struct Rule {
    krate: &'static str,
    forbidden: &'static [&'static str],
    why: &'static str,
}

fn rules() -> Vec<Rule> {
    let mut rules: Vec<Rule> = CLIENTS
        .iter()
        .map(|&krate| Rule {
            krate,
            forbidden: SERVER_SIDE,
            why: "it is an API client and reaches the server over HTTP only",
        })
        .collect();
    rules.push(Rule {
        krate: "apimachinery",
        forbidden: NO_IO,
        why: "it holds types and pure functions, with no async runtime or HTTP stack",
    });
    rules.push(Rule {
        krate: "store",
        forbidden: &["apiserver", "k8s-openapi"],
        why: "it sits below the API server and knows no Kubernetes types",
    });
    rules
}

/// Package id → (name, ids of its normal dependencies).
struct Graph {
    packages: BTreeMap<String, (String, Vec<String>)>,
    workspace: BTreeMap<String, String>,
}

fn metadata() -> Value {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(&manifest)
        .output()
        .expect("running cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON")
}

fn graph(meta: &Value) -> Graph {
    let names: BTreeMap<&str, &str> = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| {
            (
                p["id"].as_str().expect("id"),
                p["name"].as_str().expect("name"),
            )
        })
        .collect();
    let mut packages = BTreeMap::new();
    for node in meta["resolve"]["nodes"].as_array().expect("resolve nodes") {
        let id = node["id"].as_str().expect("node id");
        let normal: Vec<String> = node["deps"]
            .as_array()
            .expect("deps")
            .iter()
            .filter(|d| {
                d["dep_kinds"]
                    .as_array()
                    .is_some_and(|kinds| kinds.iter().any(|k| k["kind"].is_null()))
            })
            .map(|d| d["pkg"].as_str().expect("pkg").to_string())
            .collect();
        packages.insert(id.to_string(), (names[id].to_string(), normal));
    }
    let workspace = meta["workspace_members"]
        .as_array()
        .expect("workspace members")
        .iter()
        .map(|id| {
            let id = id.as_str().expect("member id");
            (names[id].to_string(), id.to_string())
        })
        .collect();
    Graph {
        packages,
        workspace,
    }
}

/// Every forbidden crate `root` reaches through normal dependencies, each with
/// the shortest chain of crates leading to it.
fn violations(g: &Graph, root: &str, forbidden: &[&str]) -> Vec<String> {
    let mut via: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = VecDeque::from([root]);
    let mut found = Vec::new();
    while let Some(id) = queue.pop_front() {
        for dep in &g.packages[id].1 {
            if dep == root || via.contains_key(dep.as_str()) {
                continue;
            }
            via.insert(dep, id);
            queue.push_back(dep);
            if forbidden.contains(&g.packages[dep].0.as_str()) {
                let mut chain = vec![g.packages[dep].0.as_str()];
                let mut at = id;
                while at != root {
                    chain.push(g.packages[at].0.as_str());
                    at = via[at];
                }
                chain.push(g.packages[root].0.as_str());
                chain.reverse();
                found.push(chain.join(" -> "));
            }
        }
    }
    found
}

#[test]
fn crates_keep_to_their_layers() {
    let g = graph(&metadata());
    let mut failures = Vec::new();
    let mut checked = BTreeSet::new();
    for rule in rules() {
        let Some(id) = g.workspace.get(rule.krate) else {
            continue; // a crate not written yet
        };
        checked.insert(rule.krate);
        for chain in violations(&g, id, rule.forbidden) {
            failures.push(format!(
                "{} must not depend on {} ({}), but: {chain}",
                rule.krate,
                chain.rsplit(" -> ").next().unwrap_or_default(),
                rule.why
            ));
        }
    }
    // The rules are about crates that exist; a renamed crate must not make
    // them pass by checking nothing.
    for must in [
        "scheduler",
        "controllers",
        "leaderelection",
        "kubelet",
        "apimachinery",
        "store",
    ] {
        assert!(checked.contains(must), "no workspace crate named {must}");
    }
    assert!(
        failures.is_empty(),
        "crate layering broken (normal dependencies, direct or indirect; \
         see crates/testkit/tests/layering.rs and ARCHITECTURE.md):\n  {}",
        failures.join("\n  ")
    );
}

/// The checker itself, on a made-up graph: it finds indirect paths and
/// ignores crates reached only through dev-dependencies (which the graph
/// leaves out).
#[test]
fn finds_indirect_dependencies() {
    let edges = [
        ("a", vec!["b", "c"]),
        ("b", vec!["d"]),
        ("c", vec![]),
        ("d", vec!["tokio"]),
        ("tokio", vec![]),
    ];
    let g = Graph {
        packages: edges
            .iter()
            .map(|(n, deps)| {
                (
                    n.to_string(),
                    (n.to_string(), deps.iter().map(|d| d.to_string()).collect()),
                )
            })
            .collect(),
        workspace: BTreeMap::new(),
    };
    assert_eq!(
        violations(&g, "a", &["tokio"]),
        vec!["a -> b -> d -> tokio"]
    );
    assert_eq!(violations(&g, "a", &["c"]), vec!["a -> c"]);
    assert!(violations(&g, "c", &["tokio"]).is_empty());
}

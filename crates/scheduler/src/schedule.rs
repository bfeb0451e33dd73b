//! One scheduling cycle: filter nodes until enough feasible ones are found
//! (Kubernetes' adaptive `percentageOfNodesToScore`), score them, and pick
//! the best, breaking ties at random. The cycle only reads the cache.

use std::collections::HashMap;
use std::sync::Arc;

use crate::cache::Cache;
use crate::framework::{CycleState, Failure, Framework};
use crate::pod::PodInfo;

/// Why a pod fits no node: per-node failures, or one pre-filter failure for all.
#[derive(Debug, Clone)]
pub struct FitError {
    pub num_nodes: usize,
    pub pre_filter: Option<Failure>,
    /// Node index (into `Cache::nodes`) and why it was rejected.
    pub failures: Vec<(usize, Failure)>,
}

impl FitError {
    /// Kubernetes' wording: `0/3 nodes are available: 1 Insufficient cpu, 2
    /// node(s) had untolerated taint {dedicated: gpu}.`
    pub fn message(&self) -> String {
        if self.num_nodes == 0 {
            return "no nodes available to schedule pods".into();
        }
        let head = format!("0/{} nodes are available:", self.num_nodes);
        if let Some(pre) = &self.pre_filter {
            return format!("{head} {}.", pre.reasons().collect::<Vec<_>>().join(", "));
        }
        let mut histogram: HashMap<&str, usize> = HashMap::new();
        for (_, f) in &self.failures {
            for r in f.reasons() {
                *histogram.entry(r).or_default() += 1;
            }
        }
        let mut parts: Vec<String> = histogram
            .into_iter()
            .map(|(r, n)| format!("{n} {r}"))
            .collect();
        parts.sort();
        format!("{head} {}.", parts.join(", "))
    }
}

/// How many feasible nodes to find before scoring: all below 100 nodes, else
/// `percentage` of them (0: adaptive, 50% − nodes/125, at least 5%), at least 100.
pub fn num_feasible_to_find(num_nodes: usize, percentage: u32) -> usize {
    const MIN_FEASIBLE: usize = 100;
    if num_nodes < MIN_FEASIBLE || percentage >= 100 {
        return num_nodes;
    }
    let pct = if percentage == 0 {
        (50 - i64::try_from(num_nodes / 125).unwrap_or(50)).max(5) as usize
    } else {
        percentage as usize
    };
    (num_nodes * pct / 100).max(MIN_FEASIBLE)
}

/// A small xorshift generator for tie-breaking: no dependency, no locking.
pub struct Rng(u64);

impl Rng {
    pub fn seeded() -> Self {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9E37_79B9_7F4A_7C15, |d| d.as_nanos() as u64);
        Self(t | 1)
    }

    pub fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }
}

/// What one cycle decided, with counts for metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub node: String,
    pub evaluated: usize,
    pub feasible: usize,
}

pub struct Scheduler {
    pub framework: Framework,
    /// `percentageOfNodesToScore`; 0 = adaptive.
    pub percentage: u32,
    next_start: usize,
    rng: Rng,
}

impl Scheduler {
    pub fn new(framework: Framework, percentage: u32) -> Self {
        Self {
            framework,
            percentage,
            next_start: 0,
            rng: Rng::seeded(),
        }
    }

    pub fn schedule(&mut self, cache: &Cache, pod: &Arc<PodInfo>) -> Result<Placement, FitError> {
        let num_nodes = cache.num_nodes();
        let no_fit = |pre_filter: Option<Failure>, failures| FitError {
            num_nodes,
            pre_filter,
            failures,
        };
        if num_nodes == 0 {
            return Err(no_fit(None, Vec::new()));
        }
        if let Some(e) = &pod.invalid {
            return Err(no_fit(Some(Failure::unresolvable(e.clone())), Vec::new()));
        }
        let mut state = CycleState::new(pod.clone());
        self.framework
            .pre_filter(&mut state, cache)
            .map_err(|f| no_fit(Some(f), Vec::new()))?;

        let nodes = cache.nodes();
        // A node nominated by an earlier preemption is tried first and taken if it fits.
        if let Some(i) = cache.node_index(&pod.nominated_node_name)
            && nodes[i].node.is_some()
            && self.framework.filter(&state, cache, &nodes[i]).is_ok()
        {
            return Ok(Placement {
                node: nodes[i].name.clone(),
                evaluated: 1,
                feasible: 1,
            });
        }

        let want = num_feasible_to_find(num_nodes, self.percentage);
        let n = nodes.len();
        let start = self.next_start % n.max(1);
        let early = self.framework.early_filters();
        let mut feasible = Vec::with_capacity(want.min(n));
        let mut failures = Vec::new();
        let mut skipped = 0;
        let mut processed = 0;
        for k in 0..n {
            let i = (start + k) % n;
            processed = k + 1;
            if nodes[i].node.is_none() {
                continue;
            }
            if !early
                .iter()
                .all(|f| f.filter(&state, cache, &nodes[i]).is_ok())
            {
                skipped += 1;
                continue;
            }
            match self.framework.filter(&state, cache, &nodes[i]) {
                Ok(()) => {
                    feasible.push(i);
                    if feasible.len() >= want {
                        break;
                    }
                }
                Err(f) => failures.push((i, f)),
            }
        }
        self.next_start = (start + processed) % n.max(1);
        if feasible.is_empty() && skipped > 0 {
            // Every node was visited: report each one's first failure in order.
            failures = (0..n)
                .filter(|&i| nodes[i].node.is_some())
                .filter_map(|i| Some((i, self.framework.filter(&state, cache, &nodes[i]).err()?)))
                .collect();
        }
        let evaluated =
            feasible.len() + failures.len() + if feasible.is_empty() { 0 } else { skipped };
        match feasible.len() {
            0 => Err(no_fit(None, failures)),
            1 => Ok(Placement {
                node: nodes[feasible[0]].name.clone(),
                evaluated,
                feasible: 1,
            }),
            count => {
                let scores = self.framework.score(&mut state, cache, &feasible);
                let best = self.select(&scores);
                Ok(Placement {
                    node: nodes[feasible[best]].name.clone(),
                    evaluated,
                    feasible: count,
                })
            }
        }
    }

    /// The index of the highest score; ties broken uniformly at random.
    fn select(&mut self, scores: &[i64]) -> usize {
        let mut best = 0;
        let mut ties = 0;
        for (i, &s) in scores.iter().enumerate() {
            if s > scores[best] {
                best = i;
                ties = 1;
            } else if s == scores[best] {
                ties += 1;
                if self.rng.below(ties) == 0 {
                    best = i;
                }
            }
        }
        best
    }
}

#[cfg(test)]
mod tests;

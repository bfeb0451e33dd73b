//! ImageLocality: prefers nodes that already have the pod's images, scaled by
//! how widely each image is spread (so one node with a popular image does not
//! attract everything).

use super::{CycleState, MAX_NODE_SCORE, ScorePlugin};
use crate::cache::Cache;
use crate::node::NodeInfo;

pub struct ImageLocality;

const MB: i64 = 1024 * 1024;
const MIN_THRESHOLD: i64 = 23 * MB;
const MAX_CONTAINER_THRESHOLD: i64 = 1000 * MB;

impl ScorePlugin for ImageLocality {
    fn name(&self) -> &'static str {
        "ImageLocality"
    }

    fn weight(&self) -> i64 {
        1
    }

    fn pre_score(&self, state: &mut CycleState, cache: &Cache, _feasible: &[usize]) {
        let total = cache.num_nodes().max(1) as f64;
        let spread: Vec<(String, f64)> = state
            .pod
            .images
            .iter()
            .filter_map(|image| {
                let n = cache.nodes_with_image(image);
                (n > 0).then(|| (image.clone(), n as f64 / total))
            })
            .collect();
        // Images every node has add the same to every score: skip the lookups.
        let everywhere = spread.iter().all(|(_, share)| *share >= 1.0);
        state.image_spread = if everywhere { Vec::new() } else { spread };
    }

    fn score(&self, state: &CycleState, _cache: &Cache, node: &NodeInfo) -> i64 {
        if state.image_spread.is_empty() || !node.summary.has_images {
            return 0;
        }
        let Some(spec) = node.spec() else {
            return 0;
        };
        if state.image_spread.is_empty() || spec.images.is_empty() {
            return 0;
        }
        let pod = &state.pod;
        let sum: i64 = state
            .image_spread
            .iter()
            .filter_map(|(image, spread)| {
                let size = *spec.images.get(image)?;
                Some((size as f64 * spread) as i64)
            })
            .sum();
        let max = MAX_CONTAINER_THRESHOLD * i64::try_from(pod.images.len()).unwrap_or(1);
        let clamped = sum.clamp(MIN_THRESHOLD, max);
        MAX_NODE_SCORE * (clamped - MIN_THRESHOLD) / (max - MIN_THRESHOLD)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{NodeBuilder, PodBuilder, run_score};

    #[test]
    fn nodes_with_the_image_score_by_size_and_spread() {
        let nodes = [
            NodeBuilder::new("has").image("big:1", 500 * MB).build(),
            NodeBuilder::new("also").image("big:1", 500 * MB).build(),
            NodeBuilder::new("none").build(),
            NodeBuilder::new("tiny").image("big:1", MB).build(),
        ];
        let pod = PodBuilder::new("p").image("big:1").build();
        let s = run_score(&ImageLocality, &pod, &nodes, &[]);
        // 500 MB × 3/4 spread = 375 MB → (375 − 23) × 100 / (1000 − 23) = 36.
        assert_eq!(s["has"], 36);
        assert_eq!(s["none"], 0);
        assert_eq!(s["tiny"], 0, "below the 23 MB threshold");
        let untagged = PodBuilder::new("p").image("big").build();
        assert_eq!(run_score(&ImageLocality, &untagged, &nodes, &[])["has"], 0);
    }
}

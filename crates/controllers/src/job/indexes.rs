//! Completion indexes of Indexed Jobs, and their `1,3-5` notation in
//! `status.completedIndexes`.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Pod;

pub const INDEX_ANNOTATION: &str = "batch.kubernetes.io/job-completion-index";

/// A pod's completion index, when it has a valid one below `completions`.
pub fn of(pod: &Pod, completions: i32) -> Option<i32> {
    let v = pod.metadata.annotations.as_ref()?.get(INDEX_ANNOTATION)?;
    v.parse::<i32>()
        .ok()
        .filter(|i| (0..completions).contains(i))
}

pub fn parse(s: &str) -> BTreeSet<i32> {
    let mut out = BTreeSet::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<i32>(), b.parse::<i32>()) {
                    out.extend(a..=b);
                }
            }
            None => {
                if let Ok(i) = part.parse() {
                    out.insert(i);
                }
            }
        }
    }
    out
}

pub fn format(set: &BTreeSet<i32>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut iter = set.iter().copied().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&(end + 1)) {
            end += 1;
            iter.next();
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
    }
    out.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_ranges() {
        let set = parse("0,2-4,7");
        assert_eq!(set.iter().copied().collect::<Vec<_>>(), vec![0, 2, 3, 4, 7]);
        assert_eq!(format(&set), "0,2-4,7");
        assert_eq!(format(&BTreeSet::new()), "");
        assert_eq!(format(&[1, 2].into()), "1-2");
    }
}

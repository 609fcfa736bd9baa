//! Why a pod fits nowhere, in kube-scheduler's words: the reasons of every node counted,
//! `"{count} {reason}"` sorted as text, joined by commas
//! (`FitError.Error()` in `pkg/scheduler/framework/types.go`).
//!
//! Worked example, three nodes, two short of memory and one without OCI:
//! `0/3 nodes are available: 1 node(s) lack the OCI runtime, 2 Insufficient memory.`

use std::collections::HashMap;
use std::fmt;

use crate::filters::Reason;

/// kube-scheduler's `ErrNoNodesAvailable`, for a cluster with no nodes at all.
pub const NO_NODES: &str = "no nodes available to schedule pods";

#[derive(Debug, Default)]
pub struct Diagnosis {
    pub nodes: usize,
    pub reasons: HashMap<Reason, usize>,
}

impl Diagnosis {
    pub fn record(&mut self, reasons: Vec<Reason>) {
        for r in reasons {
            *self.reasons.entry(r).or_default() += 1;
        }
    }
}

impl fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nodes == 0 {
            return f.write_str(NO_NODES);
        }
        let mut counted: Vec<String> = self
            .reasons
            .iter()
            .map(|(reason, n)| format!("{n} {reason}"))
            .collect();
        counted.sort();
        write!(f, "0/{} nodes are available:", self.nodes)?;
        if !counted.is_empty() {
            write!(f, " {}.", counted.join(", "))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use sextant_api::runtime::Runtime;

    use super::*;

    #[test]
    fn the_worked_example() {
        let mut d = Diagnosis {
            nodes: 3,
            ..Diagnosis::default()
        };
        d.record(vec![Reason::Insufficient("memory".into())]);
        d.record(vec![Reason::MissingRuntime(Runtime::Oci)]);
        d.record(vec![Reason::Insufficient("memory".into())]);
        assert_eq!(
            d.to_string(),
            "0/3 nodes are available: 1 node(s) lack the OCI runtime, 2 Insufficient memory."
        );
    }

    #[test]
    fn a_node_short_of_two_resources_counts_for_both() {
        let mut d = Diagnosis {
            nodes: 1,
            ..Diagnosis::default()
        };
        d.record(vec![
            Reason::Insufficient("cpu".into()),
            Reason::Insufficient("memory".into()),
        ]);
        assert_eq!(
            d.to_string(),
            "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory."
        );
    }

    #[test]
    fn no_nodes_at_all() {
        assert_eq!(Diagnosis::default().to_string(), NO_NODES);
    }
}

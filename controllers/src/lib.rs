//! The controller manager: one level-triggered reconciler per resource kind.
//!
//! Filled in by issue #4. It talks to the control plane only through the Kubernetes API.

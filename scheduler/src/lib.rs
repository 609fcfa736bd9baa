//! The scheduler: binds pending pods to nodes through the `pods/binding` subresource.
//!
//! Filled in by issue #4. It talks to the control plane only through the Kubernetes API.

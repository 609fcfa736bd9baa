//! The Kubernetes REST API over Sextant's replicated store (`sextant-store`).
//!
//! Filled in by issue #3: discovery, OpenAPI, CRUD, patch, watch, authentication, admission.

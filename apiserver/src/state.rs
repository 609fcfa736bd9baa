//! What every handler shares.

use sextant_store::Store;
use tokio_util::sync::CancellationToken;

use crate::auth::Authenticator;
use crate::registry::Registry;

#[derive(Clone)]
pub struct ApiState {
    pub store: Store,
    pub registry: Registry,
    pub auth: Authenticator,
    /// Cancelled when the server stops: long-running responses (watches) end with it.
    pub shutdown: CancellationToken,
    pub openapi: crate::openapi::Cache,
    /// How `pods/log` reaches node agents; set by the binary (`set_kubelet_client`).
    pub kubelet: crate::nodeproxy::KubeletSlot,
    /// Where Services' cluster IPs and node ports come from (`services/`).
    pub services: crate::services::ServiceRanges,
}

impl ApiState {
    /// The same state, allocating Service cluster IPs and node ports from `ranges`.
    pub fn with_service_ranges(mut self, ranges: crate::services::ServiceRanges) -> Self {
        self.services = ranges;
        self
    }
}

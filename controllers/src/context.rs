//! What every reconciler receives.

use std::sync::Arc;

use sextant_events::{Recorder, Reporter};

use crate::Config;

#[derive(Clone)]
pub(crate) struct Context {
    pub client: kube::Client,
    pub config: Arc<Config>,
}

impl Context {
    pub fn new(client: kube::Client, config: Config) -> Self {
        Context {
            client,
            config: Arc::new(config),
        }
    }

    /// An Event recorder reporting as `controller` (e.g. "replicaset-controller"), the
    /// name `kubectl describe` shows in its Events' "From" column.
    pub fn recorder(&self, controller: &str) -> Recorder {
        Recorder::new(
            self.client.clone(),
            Reporter {
                controller: controller.to_owned(),
                instance: Some(self.config.identity.clone()),
            },
        )
    }
}

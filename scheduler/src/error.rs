//! The scheduler's one error type. None of these stops the scheduler: each is logged, and
//! the pod concerned is tried again.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "cannot bind pod {pod} to node {node}: {source}; the pod goes back to the queue and is tried again after a backoff"
    )]
    Bind {
        pod: String,
        node: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "cannot write on pod {pod} why it is unschedulable: {source}; the next attempt writes it again"
    )]
    Report {
        pod: String,
        #[source]
        source: kube::Error,
    },
}

impl Error {
    /// The pod no longer exists: there is nothing left to retry.
    pub fn pod_is_gone(&self) -> bool {
        let (Error::Bind { source, .. } | Error::Report { source, .. }) = self;
        matches!(source, kube::Error::Api(s) if s.code == 404)
    }
}

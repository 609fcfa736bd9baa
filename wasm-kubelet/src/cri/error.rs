//! Why a call to the container runtime failed. The Display of each variant is what a user
//! reads in a pod's waiting message or an Event, so each one names what was being done and
//! what to do about it; [`CriError::reason`] is the Kubernetes waiting reason that goes with it.

use std::path::PathBuf;
use std::time::Duration;

/// A failed call to the CRI runtime. `Clone` so that one outcome can be reported in several
/// places (status, Event, log).
#[derive(Debug, Clone, thiserror::Error)]
pub enum CriError {
    /// Nothing answers on the socket: the runtime is not running, or the path is wrong.
    #[error(
        "{rpc}: cannot reach the container runtime ({cause}): is containerd running on {}? \
         start it or pass --cri-socket",
        socket.display()
    )]
    Unreachable {
        rpc: &'static str,
        socket: PathBuf,
        cause: String,
    },

    /// The runtime answered with an error.
    #[error("{rpc} failed: {message}")]
    Call {
        rpc: &'static str,
        code: tonic::Code,
        message: String,
    },

    /// The runtime did not answer in time.
    #[error("{rpc}: the container runtime did not answer within {}s", after.as_secs())]
    Timeout { rpc: &'static str, after: Duration },

    /// `imagePullPolicy: Never` and the runtime does not have the image.
    #[error(
        "image {image} is not present on this node and imagePullPolicy is Never: \
         import it into the runtime or change the policy"
    )]
    NeverPull { image: String },

    /// The runtime could not pull the image; `cause` is its own words.
    #[error("cannot pull image {image}: {cause}")]
    Pull { image: String, cause: String },

    /// The `image` string is not a reference the runtime could pull.
    #[error("invalid image name {image:?}: {reason}")]
    InvalidImage { image: String, reason: String },
}

impl CriError {
    /// The Kubernetes waiting reason for a container that failed this way:
    /// `ErrImagePull`, `ErrImageNeverPull`, `InvalidImageName`, `CreatePodSandboxError`,
    /// `CreateContainerError` or `RunContainerError` (the kubelet's words), chosen by the
    /// step that failed.
    pub fn reason(&self) -> &'static str {
        match self {
            CriError::NeverPull { .. } => "ErrImageNeverPull",
            CriError::Pull { .. } => "ErrImagePull",
            CriError::InvalidImage { .. } => "InvalidImageName",
            CriError::Unreachable { rpc, .. }
            | CriError::Call { rpc, .. }
            | CriError::Timeout { rpc, .. } => match *rpc {
                "ImageStatus" | "PullImage" => "ErrImagePull",
                "RunPodSandbox" => "CreatePodSandboxError",
                "CreateContainer" => "CreateContainerError",
                _ => "RunContainerError",
            },
        }
    }

    /// True when the runtime said the object does not exist (already removed, never made).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            CriError::Call {
                code: tonic::Code::NotFound,
                ..
            }
        )
    }

    /// The error for a failed RPC: unreachable when the channel could not connect at all,
    /// else the runtime's own status message.
    pub(super) fn from_status(
        rpc: &'static str,
        socket: &std::path::Path,
        status: tonic::Status,
    ) -> CriError {
        if let Some(cause) = connect_failure(&status) {
            return CriError::Unreachable {
                rpc,
                socket: socket.to_path_buf(),
                cause,
            };
        }
        CriError::Call {
            rpc,
            code: status.code(),
            message: status.message().to_owned(),
        }
    }
}

/// The innermost cause when a status comes from the transport failing to connect (no
/// socket, nobody listening), rather than from the runtime.
fn connect_failure(status: &tonic::Status) -> Option<String> {
    if status.code() != tonic::Code::Unavailable {
        return None;
    }
    let mut err: &(dyn std::error::Error + 'static) = std::error::Error::source(status)?;
    let mut io = None;
    loop {
        if let Some(e) = err.downcast_ref::<std::io::Error>() {
            io = Some(e);
        }
        match err.source() {
            Some(next) => err = next,
            None => break,
        }
    }
    let io = io?;
    let text = io.to_string();
    Some(match text.find(" (os error ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_follow_the_failed_step() {
        let call = |rpc| CriError::Call {
            rpc,
            code: tonic::Code::Unknown,
            message: "boom".into(),
        };
        assert_eq!(call("PullImage").reason(), "ErrImagePull");
        assert_eq!(call("CreateContainer").reason(), "CreateContainerError");
        assert_eq!(call("StartContainer").reason(), "RunContainerError");
        assert_eq!(call("RunPodSandbox").reason(), "CreatePodSandboxError");
        let never = CriError::NeverPull {
            image: "a:1".into(),
        };
        assert_eq!(never.reason(), "ErrImageNeverPull");
        let unreachable = CriError::Unreachable {
            rpc: "CreateContainer",
            socket: "/run/x.sock".into(),
            cause: "connection refused".into(),
        };
        assert_eq!(unreachable.reason(), "CreateContainerError");
        let text = unreachable.to_string();
        assert!(
            text.contains("is containerd running on /run/x.sock"),
            "{text}"
        );
        assert!(text.contains("--cri-socket"), "{text}");
    }
}

//! One run of an OCI container, from creation to removal, reported as the wasm runtime
//! reports its runs ([`Exit`]); and exec into a running container.

use std::path::Path;
use std::time::Duration;

use k8s_cri::v1::{
    ContainerConfig, ContainerState, ContainerStatus, ContainerStatusRequest,
    CreateContainerRequest, ExecRequest, ExecSyncRequest, PodSandboxConfig, RemoveContainerRequest,
    StartContainerRequest, StopContainerRequest,
};
use tokio_util::sync::CancellationToken;

use super::container::join_sandbox;
use super::{CALL_TIMEOUT, Cri, CriError, LIFECYCLE_TIMEOUT, request};
use crate::wasm::{Exit, ExitReason, KILLED_CODE};

/// The first wait between two looks at a running container, doubled up to [`LAST_POLL`]:
/// short commands are seen to end quickly, long-running ones cost one call a second.
const FIRST_POLL: Duration = Duration::from_millis(50);
const LAST_POLL: Duration = Duration::from_secs(1);

/// What a command run by [`Cri::exec_sync`] printed, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub exit_code: i32,
}

impl Cri {
    /// Runs a container made from `config` in the sandbox `sandbox_id` (whose config is
    /// `sandbox`) to its end: creates and starts it, calls `started` with its id, waits for
    /// it to exit, then removes it (its log stays: it is a file in the pod's directory). The
    /// config gets the pod's labels, namespaces and pod-level identity from `sandbox`.
    ///
    /// When `stop` is cancelled, the runtime stops the container: SIGTERM, then SIGKILL once
    /// the grace period has passed. `grace` is asked for it only then, because the period
    /// depends on why the container stops (the pod's deletion, a failed liveness probe). A container that then ends with a nonzero code ends `Killed`; one
    /// that exits 0 on SIGTERM is `Completed`, as Kubernetes shows it. A container the
    /// kernel killed at its memory limit ends `OOMKilled`. Failures to create or start end
    /// with code 128, reason `Error`, and a message naming the step and the runtime's words.
    ///
    /// Await this future to its end: dropping it early leaves the container running in the
    /// runtime, where only [`Cri::remove_pod`] (or the next run's removal of the pod) ends it.
    pub async fn run(
        &self,
        sandbox_id: &str,
        sandbox: &PodSandboxConfig,
        mut config: ContainerConfig,
        started: impl FnOnce(&str) + Send,
        stop: CancellationToken,
        grace: impl FnOnce() -> Duration + Send,
    ) -> Exit {
        join_sandbox(&mut config, sandbox);
        let name = config
            .metadata
            .as_ref()
            .map(|m| m.name.clone())
            .unwrap_or_default();
        // The runtime opens the log file but, like the kubelet's runtimes, expects its
        // directory to exist.
        if !config.log_path.is_empty() {
            let log = Path::new(&sandbox.log_directory).join(&config.log_path);
            if let Some(dir) = log.parent()
                && let Err(e) = tokio::fs::create_dir_all(dir).await
            {
                return Exit::cannot_run(format!(
                    "cannot create the log directory {} of container {name}: {e}",
                    dir.display()
                ));
            }
        }
        if stop.is_cancelled() {
            return Exit::killed();
        }

        let created = self
            .call(
                "CreateContainer",
                LIFECYCLE_TIMEOUT,
                self.rt().create_container(request(
                    CreateContainerRequest {
                        pod_sandbox_id: sandbox_id.to_owned(),
                        config: Some(config),
                        sandbox_config: Some(sandbox.clone()),
                    },
                    LIFECYCLE_TIMEOUT,
                )),
            )
            .await;
        let id = match created {
            Ok(response) => response.container_id,
            Err(e) => return Exit::cannot_run(format!("cannot create container {name}: {e}")),
        };
        let start = self
            .call(
                "StartContainer",
                LIFECYCLE_TIMEOUT,
                self.rt().start_container(request(
                    StartContainerRequest {
                        container_id: id.clone(),
                    },
                    LIFECYCLE_TIMEOUT,
                )),
            )
            .await;
        if let Err(e) = start {
            self.remove_container(&id).await;
            return Exit::cannot_run(format!("cannot start container {name}: {e}"));
        }
        started(&id);

        let exit = self.wait(&id, &stop, grace).await;
        self.remove_container(&id).await;
        exit
    }

    /// Runs `cmd` in the container and returns what it printed. The runtime ends the command
    /// after `timeout` (at least a second: the CRI counts whole seconds).
    pub async fn exec_sync(
        &self,
        container_id: &str,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> Result<ExecOutput, CriError> {
        let seconds = whole_seconds(timeout).max(1);
        let wait = Duration::from_secs(seconds as u64) + CALL_TIMEOUT;
        let response = self
            .call(
                "ExecSync",
                wait,
                self.rt().exec_sync(request(
                    ExecSyncRequest {
                        container_id: container_id.to_owned(),
                        cmd,
                        timeout: seconds,
                    },
                    wait,
                )),
            )
            .await?;
        Ok(ExecOutput {
            stdout: response.stdout,
            stderr: response.stderr,
            exit_code: response.exit_code,
        })
    }

    /// The URL of the runtime's streaming server where one exec of `cmd` in the container
    /// is served (the Kubernetes exec protocol over SPDY or websockets), for the agent to
    /// proxy `kubectl exec` to. At least one of the streams must be asked for, and not
    /// `stderr` with `tty` (a terminal has one output).
    pub async fn exec_url(
        &self,
        container_id: &str,
        cmd: Vec<String>,
        stdin: bool,
        stdout: bool,
        stderr: bool,
        tty: bool,
    ) -> Result<String, CriError> {
        let response = self
            .call(
                "Exec",
                CALL_TIMEOUT,
                self.rt().exec(request(
                    ExecRequest {
                        container_id: container_id.to_owned(),
                        cmd,
                        tty,
                        stdin,
                        stdout,
                        stderr,
                    },
                    CALL_TIMEOUT,
                )),
            )
            .await?;
        Ok(response.url)
    }

    /// Polls the container until it exits, or stops it when `stop` is cancelled.
    async fn wait(
        &self,
        id: &str,
        stop: &CancellationToken,
        grace: impl FnOnce() -> Duration,
    ) -> Exit {
        let mut interval = FIRST_POLL;
        loop {
            let look = async {
                tokio::time::sleep(interval).await;
                self.container_status(id).await
            };
            let status = tokio::select! {
                () = stop.cancelled() => return self.stop(id, grace()).await,
                status = look => status,
            };
            interval = (interval * 2).min(LAST_POLL);
            match status {
                Ok(status) if status.state == ContainerState::ContainerExited as i32 => {
                    return exit_of(&status, false);
                }
                Ok(_) => {}
                Err(e) if e.is_not_found() => {
                    return Exit {
                        code: KILLED_CODE,
                        reason: ExitReason::Error,
                        message: Some("the container was removed from the runtime".to_owned()),
                    };
                }
                // The runtime may be restarting: its containers run on; look again.
                Err(e) => {
                    tracing::warn!(container = id, error = %e, "cannot read a container's status")
                }
            }
        }
    }

    /// Stops the container (SIGTERM, SIGKILL after `grace`) and reads how it ended.
    async fn stop(&self, id: &str, grace: Duration) -> Exit {
        let seconds = whole_seconds(grace);
        let wait = Duration::from_secs(seconds as u64) + LIFECYCLE_TIMEOUT;
        let stopped = self
            .call(
                "StopContainer",
                wait,
                self.rt().stop_container(request(
                    StopContainerRequest {
                        container_id: id.to_owned(),
                        timeout: seconds,
                    },
                    wait,
                )),
            )
            .await;
        match self.container_status(id).await {
            Ok(status) if status.state == ContainerState::ContainerExited as i32 => {
                exit_of(&status, true)
            }
            status => {
                let why = match (stopped, status) {
                    (Err(e), _) | (_, Err(e)) => e.to_string(),
                    (Ok(_), Ok(_)) => "it is still running".to_owned(),
                };
                tracing::warn!(container = id, error = %why, "a stopped container did not end");
                Exit {
                    code: KILLED_CODE,
                    reason: ExitReason::Killed,
                    message: Some(format!(
                        "stopped, but the runtime did not confirm its end: {why}"
                    )),
                }
            }
        }
    }

    pub(super) async fn container_status(&self, id: &str) -> Result<ContainerStatus, CriError> {
        let response = self
            .call(
                "ContainerStatus",
                CALL_TIMEOUT,
                self.rt().container_status(request(
                    ContainerStatusRequest {
                        container_id: id.to_owned(),
                        verbose: false,
                    },
                    CALL_TIMEOUT,
                )),
            )
            .await?;
        response.status.ok_or_else(|| CriError::Call {
            rpc: "ContainerStatus",
            code: tonic::Code::Internal,
            message: "the runtime returned no status".to_owned(),
        })
    }

    /// Removes an ended container. A failure only leaves it for [`Cri::remove_pod`].
    async fn remove_container(&self, id: &str) {
        let removed = self
            .call(
                "RemoveContainer",
                LIFECYCLE_TIMEOUT,
                self.rt().remove_container(request(
                    RemoveContainerRequest {
                        container_id: id.to_owned(),
                    },
                    LIFECYCLE_TIMEOUT,
                )),
            )
            .await;
        if let Err(e) = removed
            && !e.is_not_found()
        {
            tracing::warn!(container = id, error = %e, "cannot remove an ended container");
        }
    }
}

/// How an exited container ended; `stopped` when it was asked to stop.
fn exit_of(status: &ContainerStatus, stopped: bool) -> Exit {
    let runtime_message = Some(status.message.clone()).filter(|m| !m.is_empty());
    let code = status.exit_code;
    if status.reason == "OOMKilled" {
        return Exit {
            code,
            reason: ExitReason::OOMKilled,
            message: runtime_message.or_else(|| {
                Some(
                    "the container reached its memory limit and the kernel killed it; \
                     raise resources.limits.memory"
                        .to_owned(),
                )
            }),
        };
    }
    if code == 0 {
        return Exit::code(0);
    }
    if stopped {
        return Exit {
            code,
            reason: ExitReason::Killed,
            message: Some("stopped".to_owned()),
        };
    }
    Exit {
        code,
        reason: ExitReason::Error,
        message: runtime_message.or_else(|| Some(format!("exited with code {code}"))),
    }
}

/// A duration in whole seconds, rounded up (the CRI's timeouts count seconds).
fn whole_seconds(d: Duration) -> i64 {
    let seconds = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    i64::try_from(seconds).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exited(code: i32, reason: &str) -> ContainerStatus {
        ContainerStatus {
            state: ContainerState::ContainerExited as i32,
            exit_code: code,
            reason: reason.to_owned(),
            ..ContainerStatus::default()
        }
    }

    #[test]
    fn exits_map_to_kubernetes_reasons() {
        assert_eq!(
            exit_of(&exited(0, "Completed"), false).reason,
            ExitReason::Completed
        );
        let e = exit_of(&exited(3, "Error"), false);
        assert_eq!((e.code, e.reason), (3, ExitReason::Error));
        let e = exit_of(&exited(137, "OOMKilled"), false);
        assert_eq!((e.code, e.reason), (137, ExitReason::OOMKilled));
        let e = exit_of(&exited(137, "Error"), true);
        assert_eq!((e.code, e.reason), (137, ExitReason::Killed));
        // Exiting cleanly on SIGTERM is a completion.
        assert_eq!(
            exit_of(&exited(0, "Completed"), true).reason,
            ExitReason::Completed
        );
    }

    #[test]
    fn seconds_round_up() {
        assert_eq!(whole_seconds(Duration::ZERO), 0);
        assert_eq!(whole_seconds(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds(Duration::from_secs(30)), 30);
    }
}

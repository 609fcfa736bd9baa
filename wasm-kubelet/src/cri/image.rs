//! Making a container's image present in the runtime, as its `imagePullPolicy` says. The
//! runtime pulls; the agent only decides whether to ask, and with which credentials.

use k8s_cri::v1::{AuthConfig, ImageSpec, ImageStatusRequest, PodSandboxConfig, PullImageRequest};
use oci_client::Reference;

use super::{CALL_TIMEOUT, Cri, CriError, PULL_TIMEOUT, request};
use crate::modules::{PullPolicy, RegistryAuth, find_auth as find, normalise_registry};

impl Cri {
    /// Makes `image` present as `policy` says and returns the runtime's reference to it (its
    /// image id), which is what a container is created from. `Always` pulls, `IfNotPresent`
    /// pulls when the runtime lacks the image, `Never` fails when it does. The pull carries
    /// the credentials of `auth` (the pod's pull secrets) whose registry is the image's
    /// (`docker.io` for bare names such as `busybox`); `sandbox` is the pod's, which some
    /// runtimes use to pick a platform or a runtime handler.
    pub async fn ensure_image(
        &self,
        image: &str,
        policy: PullPolicy,
        auth: &[RegistryAuth],
        sandbox: &PodSandboxConfig,
    ) -> Result<String, CriError> {
        let registry = registry_of(image)?;
        let spec = ImageSpec {
            image: image.to_owned(),
            user_specified_image: image.to_owned(),
            ..ImageSpec::default()
        };
        let present = self
            .call(
                "ImageStatus",
                CALL_TIMEOUT,
                self.img().image_status(request(
                    ImageStatusRequest {
                        image: Some(spec.clone()),
                        verbose: false,
                    },
                    CALL_TIMEOUT,
                )),
            )
            .await?
            .image;
        match (policy, present) {
            (PullPolicy::IfNotPresent | PullPolicy::Never, Some(found)) => return Ok(found.id),
            (PullPolicy::Never, None) => {
                return Err(CriError::NeverPull {
                    image: image.to_owned(),
                });
            }
            _ => {}
        }

        let auth = find(auth, &registry).map(|a| AuthConfig {
            username: a.username.clone(),
            password: a.password.clone(),
            server_address: registry.clone(),
            ..AuthConfig::default()
        });
        tracing::debug!(image, %registry, with_auth = auth.is_some(), "pulling image");
        let pulled = self
            .call(
                "PullImage",
                PULL_TIMEOUT,
                self.img().pull_image(request(
                    PullImageRequest {
                        image: Some(spec),
                        auth,
                        sandbox_config: Some(sandbox.clone()),
                    },
                    PULL_TIMEOUT,
                )),
            )
            .await;
        match pulled {
            Ok(response) => Ok(response.image_ref),
            Err(CriError::Call { message, .. }) => Err(CriError::Pull {
                image: image.to_owned(),
                cause: message,
            }),
            Err(CriError::Timeout { after, .. }) => Err(CriError::Pull {
                image: image.to_owned(),
                cause: format!("the pull did not finish within {}s", after.as_secs()),
            }),
            Err(other) => Err(other),
        }
    }
}

/// The registry host (host or host:port) an image reference pulls from, with Docker Hub's
/// conventions for bare names.
fn registry_of(image: &str) -> Result<String, CriError> {
    let reference: Reference =
        image
            .parse()
            .map_err(|e: oci_client::ParseError| CriError::InvalidImage {
                image: image.to_owned(),
                reason: e.to_string(),
            })?;
    Ok(normalise_registry(reference.registry()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registries_of_references() {
        assert_eq!(registry_of("busybox").unwrap(), "docker.io");
        assert_eq!(registry_of("library/busybox:1.36").unwrap(), "docker.io");
        assert_eq!(registry_of("index.docker.io/a/b:1").unwrap(), "docker.io");
        assert_eq!(
            registry_of("127.0.0.1:5000/app:v2").unwrap(),
            "127.0.0.1:5000"
        );
        assert_eq!(registry_of("localhost/app").unwrap(), "localhost");
        assert_eq!(
            registry_of("sextant.local/busybox:1").unwrap(),
            "sextant.local"
        );
        let err = registry_of("Not A Reference").unwrap_err();
        assert_eq!(err.reason(), "InvalidImageName");
    }

    #[test]
    fn credentials_match_the_registry() {
        let auth = |registry: &str, username: &str| RegistryAuth {
            registry: registry.into(),
            username: username.into(),
            password: "p".into(),
        };
        let auths = [
            auth("https://index.docker.io/v1/", "hub"),
            auth("127.0.0.1:5000", "local"),
        ];
        let user = |image| find(&auths, &registry_of(image).unwrap()).map(|a| a.username.as_str());
        assert_eq!(user("busybox:1.36"), Some("hub"));
        assert_eq!(user("127.0.0.1:5000/app:v2"), Some("local"));
        assert_eq!(user("127.0.0.1:5001/app:v2"), None);
    }
}

//! `wasm://` modules: OCI artifacts in the CNCF wasm layout (one layer of media type
//! `application/wasm`), pulled with oci-client.

use std::net::IpAddr;

use futures::StreamExt;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::manifest::{ImageIndexEntry, OciDescriptor, WASM_LAYER_MEDIA_TYPE};
use oci_client::secrets::RegistryAuth as OciAuth;
use oci_client::{Client, Reference};

use super::auth::{self, RegistryAuth};
use super::cache::Cache;
use super::error::{Error, root_cause};
use super::{Fetched, Limits};

/// The layer media type of the CNCF wasm OCI artifact layout.
pub const WASM_MEDIA_TYPE: &str = "application/wasm";
/// The layer media type runwasi's containerd shims use for wasm modules in an image.
const RUNWASI_MEDIA_TYPE: &str = "application/vnd.module.wasm.content.layer.v1+wasm";

/// Layer media types that hold a wasm module: the CNCF layout's, and the older
/// `wasm-to-oci` (oci-client's `WASM_LAYER_MEDIA_TYPE`) and runwasi ones.
pub const WASM_LAYER_MEDIA_TYPES: [&str; 3] =
    [WASM_MEDIA_TYPE, WASM_LAYER_MEDIA_TYPE, RUNWASI_MEDIA_TYPE];

/// Resolves `reference` to its wasm layer and streams that layer into the cache (unless a
/// blob with the layer's digest is already there).
pub(crate) async fn fetch(
    cache: &Cache,
    limits: &Limits,
    reference: &Reference,
    auths: &[RegistryAuth],
) -> Result<Fetched, Error> {
    let shown = format!("wasm://{}", reference.whole());
    match tokio::time::timeout(
        limits.fetch_timeout,
        pull(cache, limits, reference, &shown, auths),
    )
    .await
    {
        Ok(result) => result,
        Err(_) => Err(Error::Registry {
            reference: shown,
            cause: format!("timed out after {}s", limits.fetch_timeout.as_secs()),
        }),
    }
}

async fn pull(
    cache: &Cache,
    limits: &Limits,
    reference: &Reference,
    shown: &str,
    auths: &[RegistryAuth],
) -> Result<Fetched, Error> {
    let registry_error = |e: oci_client::errors::OciDistributionError| Error::Registry {
        reference: shown.to_string(),
        cause: registry_cause(&e),
    };
    // A client per pull: oci-client keeps the first credentials it sees for a registry, and
    // pods with different pull secrets must not inherit each other's.
    let client = client(reference.resolve_registry(), limits);
    let auth = match auth::find(auths, reference.registry()) {
        Some(a) => OciAuth::Basic(a.username.clone(), a.password.clone()),
        None => OciAuth::Anonymous,
    };
    let (manifest, _manifest_digest) = client
        .pull_image_manifest(reference, &auth)
        .await
        .map_err(registry_error)?;
    let layer = wasm_layer(&manifest.layers).map_err(|reason| Error::NotWasm {
        reference: shown.to_string(),
        reason,
    })?;
    if u64::try_from(layer.size).is_ok_and(|size| size > limits.max_module_bytes) {
        return Err(Error::TooLarge {
            source_ref: shown.to_string(),
            limit: limits.max_module_bytes,
        });
    }
    if !super::reference::is_sha256_digest(&layer.digest) {
        return Err(Error::NotWasm {
            reference: shown.to_string(),
            reason: format!(
                "its wasm layer has digest {:?}; only sha256 is supported",
                layer.digest
            ),
        });
    }
    if let Some(cached) = cache.blob(&layer.digest).await {
        return Ok(cached);
    }
    let mut stream = client
        .pull_blob_stream(reference, layer)
        .await
        .map_err(registry_error)?;
    let mut writer = cache.writer(shown, limits.max_module_bytes).await?;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Error::Registry {
            reference: shown.to_string(),
            cause: root_cause(&e),
        })?;
        writer.write(&chunk).await?;
    }
    writer.finish(Some(&layer.digest)).await
}

fn client(registry: &str, limits: &Limits) -> Client {
    let protocol = if is_loopback(registry) {
        ClientProtocol::Http
    } else {
        ClientProtocol::Https
    };
    Client::new(ClientConfig {
        protocol,
        read_timeout: Some(limits.read_timeout),
        connect_timeout: Some(limits.connect_timeout),
        platform_resolver: Some(Box::new(wasm_platform)),
        ..ClientConfig::default()
    })
}

/// True for registries on this machine (`localhost`, `127.x.x.x`, `[::1]`, any port), which
/// are spoken to over plain HTTP like Docker's default insecure registries.
pub(crate) fn is_loopback(registry: &str) -> bool {
    let host = match registry.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => registry.rsplit_once(':').map_or(registry, |(host, _)| host),
    };
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// From a multi-platform index, the wasm entry (os `wasip1`/`wasip2`/`wasi`, or arch `wasm`),
/// else the only entry.
fn wasm_platform(entries: &[ImageIndexEntry]) -> Option<String> {
    let is_wasm = |e: &&ImageIndexEntry| {
        e.platform.as_ref().is_some_and(|p| {
            let os = p.os.to_string();
            os.starts_with("wasi") || p.architecture.to_string() == "wasm"
        })
    };
    entries
        .iter()
        .find(is_wasm)
        .or(if entries.len() == 1 {
            entries.first()
        } else {
            None
        })
        .map(|e| e.digest.clone())
}

/// The one layer holding the module.
fn wasm_layer(layers: &[OciDescriptor]) -> Result<&OciDescriptor, String> {
    let wasm: Vec<&OciDescriptor> = layers
        .iter()
        .filter(|l| WASM_LAYER_MEDIA_TYPES.contains(&l.media_type.as_str()))
        .collect();
    match wasm.as_slice() {
        [one] => Ok(one),
        [] => Err(format!(
            "no layer of media type {WASM_MEDIA_TYPE} (layers: {})",
            layers
                .iter()
                .map(|l| l.media_type.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
        many => Err(format!(
            "{} wasm layers; a container runs exactly one module",
            many.len()
        )),
    }
}

/// What the registry said, without oci-client's URL-and-envelope wrapping, and with what to
/// do about it where that is clear.
fn registry_cause(e: &oci_client::errors::OciDistributionError) -> String {
    use oci_client::errors::{OciDistributionError as E, OciErrorCode as Code};
    const SECRETS: &str = "check the pod's imagePullSecrets";
    match e {
        E::AuthenticationFailure(why) => format!("authentication failed ({why}); {SECRETS}"),
        E::UnauthorizedError { .. } => format!("not authorized; {SECRETS}"),
        E::ImageManifestNotFoundError(_) => "not found in the registry".to_string(),
        E::RegistryError { envelope, .. } => {
            let said: Vec<&str> = envelope.errors.iter().map(|e| e.message.as_str()).collect();
            let said = said.join("; ");
            let code = |wanted: &[Code]| envelope.errors.iter().any(|e| wanted.contains(&e.code));
            if code(&[Code::ManifestUnknown, Code::NameUnknown, Code::NotFound]) {
                format!("not found in the registry ({said})")
            } else if code(&[Code::Unauthorized, Code::Denied]) {
                format!("{said}; {SECRETS}")
            } else {
                format!("registry answered: {said}")
            }
        }
        E::ServerError { code, message, .. } => format!("registry answered {code}: {message}"),
        E::RequestError(inner) if inner.is_timeout() => "timed out".to_string(),
        _ => root_cause(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_registries() {
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("127.0.0.9"));
        assert!(is_loopback("localhost:5000"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("index.docker.io"));
        assert!(!is_loopback("10.0.0.1:5000"));
    }

    #[test]
    fn picks_the_one_wasm_layer() {
        let layer = |mt: &str| OciDescriptor {
            media_type: mt.into(),
            ..Default::default()
        };
        let layers = [
            layer("application/vnd.oci.image.layer.v1.tar"),
            layer(WASM_MEDIA_TYPE),
        ];
        assert_eq!(wasm_layer(&layers).unwrap().media_type, WASM_MEDIA_TYPE);
        assert!(wasm_layer(&[layer(WASM_LAYER_MEDIA_TYPE)]).is_ok());
        let err = wasm_layer(&layers[..1]).unwrap_err();
        assert!(
            err.contains("no layer of media type application/wasm"),
            "{err}"
        );
        assert!(wasm_layer(&[layer(WASM_MEDIA_TYPE), layer(WASM_MEDIA_TYPE)]).is_err());
    }
}

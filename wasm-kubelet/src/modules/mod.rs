//! Fetching wasm modules named by a container's `image` into the node's module cache.
//!
//! [`Fetcher::fetch`] turns `file://`, `http(s)://` and `wasm://` references (and plain
//! references in a `runtimeClassName: wasm` pod) into a file in a content-addressed cache,
//! honouring `imagePullPolicy`. The digest it returns is the module's own SHA-256, so the
//! compiled-code cache keys on content whatever the module's source.
//!
//! Layout: `reference.rs` parses references; `cache.rs` holds the blob store and its index;
//! `file.rs`, `http.rs` and `oci.rs` fetch from each kind of source; `auth.rs` reads pull
//! secrets; `error.rs` says what went wrong in words a pod's status can carry.

mod auth;
mod cache;
mod error;
mod file;
mod http;
mod oci;
mod reference;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};

pub use auth::{RegistryAuth, auths_from_docker_config};
pub(crate) use auth::{find as find_auth, normalise_registry};
pub use error::Error;
pub use oci::{WASM_LAYER_MEDIA_TYPES, WASM_MEDIA_TYPE};
pub use reference::is_wasm_image;

use cache::Cache;
use reference::Source;

/// A module in the cache: its content digest (`sha256:<hex>`) and where it lies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub digest: String,
    pub path: PathBuf,
}

/// A container's `imagePullPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    /// Fetch again every time (a digest-pinned reference already cached is not refetched:
    /// its content cannot have changed).
    Always,
    /// Use the cached module for this reference if there is one.
    IfNotPresent,
    /// Never touch the network; fail if nothing is cached.
    Never,
}

impl PullPolicy {
    /// The policy from the container spec's field, defaulted as Kubernetes does when the
    /// field is absent: `Always` for an untagged or `:latest` image, else `IfNotPresent`.
    pub fn from_spec(policy: Option<&str>, image: &str) -> PullPolicy {
        match policy {
            Some("Always") => PullPolicy::Always,
            Some("Never") => PullPolicy::Never,
            Some("IfNotPresent") => PullPolicy::IfNotPresent,
            _ => {
                let name = image.rsplit('/').next().unwrap_or(image);
                let name = name.split('#').next().unwrap_or(name);
                if image.contains("@sha256:") || image.contains("#sha256=") {
                    PullPolicy::IfNotPresent
                } else if !name.contains(':') || name.ends_with(":latest") {
                    PullPolicy::Always
                } else {
                    PullPolicy::IfNotPresent
                }
            }
        }
    }
}

/// Bounds on what a fetch may cost.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Modules larger than this are refused.
    pub max_module_bytes: u64,
    /// Time to establish a connection.
    pub connect_timeout: Duration,
    /// Longest wait for the next bytes of a response.
    pub read_timeout: Duration,
    /// Longest a whole fetch may take.
    pub fetch_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_module_bytes: 256 * 1024 * 1024,
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            fetch_timeout: Duration::from_secs(300),
        }
    }
}

/// Fetches modules into the cache under one directory. Cheap to clone; clones share the
/// cache and the set of downloads in flight.
#[derive(Clone)]
pub struct Fetcher {
    inner: Arc<Inner>,
}

type SharedFetch = Shared<BoxFuture<'static, Result<Fetched, Error>>>;

struct Inner {
    cache: Cache,
    http: reqwest::Client,
    limits: Limits,
    /// Network fetches under way, by reference key: a second pod asking for a module while
    /// it downloads waits for the same download.
    in_flight: Mutex<HashMap<String, SharedFetch>>,
}

impl Fetcher {
    /// A fetcher with the default [`Limits`] caching under `cache_dir` (created if absent).
    pub fn new(cache_dir: PathBuf) -> Result<Fetcher, Error> {
        Fetcher::with_limits(cache_dir, Limits::default())
    }

    pub fn with_limits(cache_dir: PathBuf, limits: Limits) -> Result<Fetcher, Error> {
        // reqwest is built without a TLS provider of its own and panics without one; the
        // binaries install ring, and this makes a fetcher usable where they have not.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let cache = Cache::open(cache_dir.clone())?;
        let http = reqwest::Client::builder()
            .connect_timeout(limits.connect_timeout)
            .read_timeout(limits.read_timeout)
            .user_agent(concat!("sextant-wasm-kubelet/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::cache(&cache_dir, std::io::Error::other(e)))?;
        Ok(Fetcher {
            inner: Arc::new(Inner {
                cache,
                http,
                limits,
                in_flight: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The module named by `image` (as in the container spec; `wasm_class` = the pod's
    /// runtimeClassName is "wasm"), from the cache or the network as `policy` allows.
    /// `auth` are the pod's pull-secret credentials.
    pub async fn fetch(
        &self,
        image: &str,
        wasm_class: bool,
        policy: PullPolicy,
        auth: &[RegistryAuth],
    ) -> Result<Fetched, Error> {
        let source = Source::parse(image, wasm_class)?;
        let cache = &self.inner.cache;
        let key = source.key();

        if let Source::File(path) = &source {
            // On the node already: nothing to pull whatever the policy.
            let fetched = file::fetch(cache, path, self.inner.limits.max_module_bytes).await?;
            cache.record(&key, &fetched.digest).await?;
            return Ok(fetched);
        }
        let cached = match source.pinned_digest() {
            Some(digest) => cache.blob(digest).await,
            None => cache.lookup(&key).await,
        };
        match (policy, cached) {
            (_, Some(fetched)) if source.pinned_digest().is_some() => return Ok(fetched),
            (PullPolicy::IfNotPresent | PullPolicy::Never, Some(fetched)) => return Ok(fetched),
            (PullPolicy::Never, None) => {
                return Err(Error::NeverPull {
                    reference: image.to_string(),
                });
            }
            _ => {}
        }
        self.fetch_coalesced(key, source, auth.to_vec()).await
    }

    /// Downloads `source`, or joins the download of it already under way.
    async fn fetch_coalesced(
        &self,
        key: String,
        source: Source,
        auth: Vec<RegistryAuth>,
    ) -> Result<Fetched, Error> {
        let shared = {
            let mut in_flight = self
                .inner
                .in_flight
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            match in_flight.get(&key) {
                Some(shared) => shared.clone(),
                None => {
                    let this = self.clone();
                    let download_key = key.clone();
                    let download =
                        async move { this.download(&download_key, &source, &auth).await }
                            .boxed()
                            .shared();
                    in_flight.insert(key.clone(), download.clone());
                    download
                }
            }
        };
        let result = shared.clone().await;
        // Whoever sees it finish forgets it, so the next fetch looks afresh. (A download
        // whose every waiter went away stays here, unfinished, for the next one to resume.)
        let mut in_flight = self
            .inner
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if in_flight.get(&key).is_some_and(|s| s.ptr_eq(&shared)) {
            in_flight.remove(&key);
        }
        result
    }

    async fn download(
        &self,
        key: &str,
        source: &Source,
        auth: &[RegistryAuth],
    ) -> Result<Fetched, Error> {
        let inner = &self.inner;
        let fetched = match source {
            Source::Http { url, digest } => {
                http::fetch(
                    &inner.http,
                    &inner.cache,
                    &inner.limits,
                    url,
                    digest.as_deref(),
                    auth,
                )
                .await?
            }
            Source::Oci(reference) => {
                oci::fetch(&inner.cache, &inner.limits, reference, auth).await?
            }
            Source::File(path) => {
                file::fetch(&inner.cache, path, inner.limits.max_module_bytes).await?
            }
        };
        inner.cache.record(key, &fetched.digest).await?;
        tracing::debug!(reference = key, digest = %fetched.digest, "module fetched");
        Ok(fetched)
    }
}

#[cfg(test)]
mod tests;

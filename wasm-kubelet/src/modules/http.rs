//! `http(s)://` modules: one GET, streamed into the cache, hashed on the way.

use reqwest::Url;

use super::auth::{self, RegistryAuth};
use super::cache::Cache;
use super::error::{Error, root_cause};
use super::{Fetched, Limits};

/// Downloads `url` into the cache, checking `expected` when the reference pinned a digest.
/// Credentials whose registry is the URL's host:port are sent as HTTP Basic auth.
pub(crate) async fn fetch(
    client: &reqwest::Client,
    cache: &Cache,
    limits: &Limits,
    url: &Url,
    expected: Option<&str>,
    auths: &[RegistryAuth],
) -> Result<Fetched, Error> {
    let shown = shown_url(url);
    let download = download(client, cache, limits, url, &shown, expected, auths);
    match tokio::time::timeout(limits.fetch_timeout, download).await {
        Ok(result) => result,
        Err(_) => Err(Error::Fetch {
            url: shown,
            cause: format!("timed out after {}s", limits.fetch_timeout.as_secs()),
        }),
    }
}

async fn download(
    client: &reqwest::Client,
    cache: &Cache,
    limits: &Limits,
    url: &Url,
    shown: &str,
    expected: Option<&str>,
    auths: &[RegistryAuth],
) -> Result<Fetched, Error> {
    let fetch_error = |e: reqwest::Error| Error::Fetch {
        url: shown.to_string(),
        cause: if e.is_timeout() {
            "timed out".to_string()
        } else {
            root_cause(&e)
        },
    };
    let mut request = client.get(url.clone());
    let host_port = match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_string(),
        _ => String::new(),
    };
    if let Some(auth) = auth::find(auths, &host_port) {
        request = request.basic_auth(&auth.username, Some(&auth.password));
    }
    let mut response = request.send().await.map_err(fetch_error)?;
    let status = response.status();
    if !status.is_success() {
        return Err(Error::Fetch {
            url: shown.to_string(),
            cause: format!("server answered {status}"),
        });
    }
    if response
        .content_length()
        .is_some_and(|len| len > limits.max_module_bytes)
    {
        return Err(Error::TooLarge {
            source_ref: shown.to_string(),
            limit: limits.max_module_bytes,
        });
    }
    let mut writer = cache.writer(shown, limits.max_module_bytes).await?;
    while let Some(chunk) = response.chunk().await.map_err(fetch_error)? {
        writer.write(&chunk).await?;
    }
    writer.finish(expected).await
}

/// The URL as shown in messages: without credentials or fragment.
pub(crate) fn shown_url(url: &Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_password(None);
    let _ = shown.set_username("");
    shown.set_fragment(None);
    shown.to_string()
}

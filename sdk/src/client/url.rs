//! Outbound URLs and cluster names: `http://backend/…` means the Service `backend` of the
//! pod's own namespace, as a pod's DNS search path makes it mean in Kubernetes.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::Error;

/// The DNS suffix of Services.
pub const CLUSTER_DOMAIN: &str = "svc.cluster.local";

/// Where a request goes: the pieces `wasi:http` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `true` for `https`.
    pub https: bool,
    /// Host (cluster names expanded) and port if the URL gave one, e.g.
    /// `backend.default.svc.cluster.local` or `10.0.0.1:8080`.
    pub authority: String,
    /// Path and query, at least `/`.
    pub path_with_query: String,
}

impl Target {
    /// The full URL, as errors and logs name it.
    pub fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}{}", self.authority, self.path_with_query)
    }
}

/// Parses an `http` or `https` URL and expands its host with [`cluster_host`] for
/// `namespace`. Fragments are dropped; user info is refused (send an `authorization`
/// header instead).
pub fn resolve(url: &str, namespace: &str) -> Result<Target, Error> {
    let invalid = |reason: &str| Error::InvalidUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| invalid("use http://NAME/… or https://NAME/…"))?;
    let https = match scheme.to_ascii_lowercase().as_str() {
        "http" => false,
        "https" => true,
        _ => return Err(invalid("only http and https are supported")),
    };
    let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if authority.contains('@') {
        return Err(invalid(
            "credentials in URLs are not supported; send an authorization header",
        ));
    }
    let (host, port) = split_port(authority).ok_or_else(|| invalid("the port is not a number"))?;
    if host.is_empty() {
        return Err(invalid("the URL has no host"));
    }
    let host = if host.starts_with('[') {
        host.strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .and_then(|h| h.parse::<Ipv6Addr>().ok())
            .ok_or_else(|| invalid("the IPv6 address is not valid"))?;
        host.to_owned()
    } else {
        let valid = host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !valid || host.starts_with('.') || host.contains("..") {
            return Err(invalid("the host name is not valid"));
        }
        cluster_host(host, namespace)
    };
    let authority = match port {
        Some(port) => format!("{host}:{port}"),
        None => host,
    };
    let path_with_query = match path {
        "" => "/".to_owned(),
        p if p.starts_with('?') => format!("/{p}"),
        p => p.to_owned(),
    };
    Ok(Target {
        https,
        authority,
        path_with_query,
    })
}

/// Host and port of an authority; `None` if the port is not a number.
fn split_port(authority: &str) -> Option<(&str, Option<u16>)> {
    let colon = match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => i,
        _ => return Some((authority, None)),
    };
    let port = authority[colon + 1..].parse().ok()?;
    Some((&authority[..colon], Some(port)))
}

/// The full DNS name for `host` seen from a pod in `namespace`:
///
/// | host | becomes |
/// |---|---|
/// | `backend` | `backend.NAMESPACE.svc.cluster.local` |
/// | `backend.shop` | `backend.shop.svc.cluster.local` |
/// | `backend.shop.svc` | `backend.shop.svc.cluster.local` |
/// | `backend.shop.svc.cluster.local`, `api.example.com`, IPs, `localhost` | unchanged |
/// | `example.com.` (a trailing dot: an absolute name) | `example.com` |
///
/// As in Kubernetes, a two-label name is taken as `SERVICE.NAMESPACE`: write an external
/// two-label host with a trailing dot. Names are lower-cased.
pub fn cluster_host(host: &str, namespace: &str) -> String {
    if let Some(absolute) = host.strip_suffix('.') {
        return absolute.to_ascii_lowercase();
    }
    let host = host.to_ascii_lowercase();
    if host == "localhost" || host.parse::<Ipv4Addr>().is_ok() || host.starts_with('[') {
        return host;
    }
    let labels: Vec<&str> = host.split('.').collect();
    match labels.as_slice() {
        [_service] => format!("{host}.{namespace}.{CLUSTER_DOMAIN}"),
        [_service, _namespace] => format!("{host}.{CLUSTER_DOMAIN}"),
        [_service, _namespace, "svc"] => format!("{host}.cluster.local"),
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_service_names_expand_in_the_pod_namespace() {
        for (host, full) in [
            ("backend", "backend.shop.svc.cluster.local"),
            ("Backend", "backend.shop.svc.cluster.local"),
            ("backend.other", "backend.other.svc.cluster.local"),
            ("backend.other.svc", "backend.other.svc.cluster.local"),
            (
                "backend.other.svc.cluster.local",
                "backend.other.svc.cluster.local",
            ),
            ("api.example.com", "api.example.com"),
            ("example.com.", "example.com"),
            ("127.0.0.1", "127.0.0.1"),
            ("localhost", "localhost"),
        ] {
            assert_eq!(cluster_host(host, "shop"), full, "{host}");
        }
    }

    #[test]
    fn urls_resolve_to_wasi_http_parts() {
        let t = resolve("http://backend/items/7?x=1#frag", "default").unwrap();
        assert_eq!(
            t,
            Target {
                https: false,
                authority: "backend.default.svc.cluster.local".into(),
                path_with_query: "/items/7?x=1".into(),
            }
        );
        assert_eq!(
            t.url(),
            "http://backend.default.svc.cluster.local/items/7?x=1"
        );

        let t = resolve("HTTPS://backend.shop:8443", "default").unwrap();
        assert!(t.https);
        assert_eq!(t.authority, "backend.shop.svc.cluster.local:8443");
        assert_eq!(t.path_with_query, "/");

        let t = resolve("http://127.0.0.1:8080?q", "x").unwrap();
        assert_eq!(
            (t.authority.as_str(), t.path_with_query.as_str()),
            ("127.0.0.1:8080", "/?q")
        );
        let t = resolve("http://[::1]:9000/a", "x").unwrap();
        assert_eq!(t.authority, "[::1]:9000");
    }

    #[test]
    fn bad_urls_say_why() {
        for (url, why) in [
            ("backend/items", "use http://"),
            ("ftp://backend/", "only http and https"),
            ("http:///x", "no host"),
            ("http://u:p@backend/", "credentials"),
            ("http://backend:http/", "port"),
            ("http://back_end/", "host name"),
            ("http://[zz]/", "IPv6"),
        ] {
            let err = resolve(url, "default").unwrap_err();
            assert!(err.to_string().contains(why), "{url}: {err}");
        }
    }
}

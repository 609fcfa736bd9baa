//! What a container's `image` string says about where its module lives.
//!
//! `file:///abs/path.wasm` is a file on the node, `http(s)://…[#sha256=HEX]` a URL,
//! `wasm://registry/repo:tag` (or `@sha256:…`) an OCI artifact, and in a pod with
//! `runtimeClassName: wasm` any plain reference is an OCI artifact too.

use std::path::PathBuf;

use oci_client::Reference;
use reqwest::Url;

use super::error::Error;

/// Where a module comes from, parsed and checked.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Source {
    /// An absolute path on this node.
    File(PathBuf),
    /// A URL, with the digest the content must have when the reference pins one.
    Http { url: Url, digest: Option<String> },
    /// An artifact in an OCI registry.
    Oci(Reference),
}

/// True if `image` names a wasm module (run in wasmtime) rather than an OCI container image
/// (run through CRI): the URL schemes always do, plain references only in a wasm pod.
pub fn is_wasm_image(image: &str, wasm_class: bool) -> bool {
    wasm_class
        || ["file://", "http://", "https://", "wasm://"]
            .iter()
            .any(|s| image.starts_with(s))
}

impl Source {
    pub(crate) fn parse(image: &str, wasm_class: bool) -> Result<Source, Error> {
        let invalid = |reason: &str| Error::InvalidReference {
            reference: image.to_string(),
            reason: reason.to_string(),
        };
        if image.starts_with("file:") {
            let url = Url::parse(image).map_err(|e| invalid(&e.to_string()))?;
            let path = url.to_file_path().map_err(|()| {
                invalid("a file:// module must be an absolute path on the node, e.g. file:///opt/app.wasm")
            })?;
            if !path.is_absolute() {
                return Err(invalid(
                    "a file:// module must be an absolute path on the node",
                ));
            }
            return Ok(Source::File(path));
        }
        if image.starts_with("http://") || image.starts_with("https://") {
            let mut url = Url::parse(image).map_err(|e| invalid(&e.to_string()))?;
            if url.host_str().is_none_or(str::is_empty) {
                return Err(invalid("the URL has no host"));
            }
            let digest = match url.fragment() {
                None | Some("") => None,
                Some(fragment) => Some(parse_fragment_digest(fragment).ok_or_else(|| {
                    invalid("the only URL fragment understood is #sha256=<64 hex digits>")
                })?),
            };
            url.set_fragment(None);
            return Ok(Source::Http { url, digest });
        }
        let plain = match image.strip_prefix("wasm://") {
            Some(rest) => rest,
            None if wasm_class && !image.contains("://") => image,
            None if image.contains("://") => {
                return Err(invalid(
                    "unknown scheme; use file://, http://, https:// or wasm://",
                ));
            }
            None => {
                return Err(invalid(
                    "this is an OCI container image, not a wasm module; use wasm://, http(s):// \
                     or file://, or set runtimeClassName: wasm",
                ));
            }
        };
        let reference: Reference = plain
            .parse()
            .map_err(|e: oci_client::ParseError| invalid(&e.to_string()))?;
        if let Some(digest) = reference.digest()
            && !is_sha256_digest(digest)
        {
            return Err(invalid("only sha256 digests are supported"));
        }
        Ok(Source::Oci(reference))
    }

    /// The key under which concurrent fetches are coalesced and the cache index remembers
    /// the reference's digest: one string per distinct module source.
    pub(crate) fn key(&self) -> String {
        match self {
            Source::File(path) => format!("file://{}", path.display()),
            Source::Http {
                url,
                digest: Some(d),
            } => format!("{url}#{}", d.replacen(':', "=", 1)),
            Source::Http { url, digest: None } => url.to_string(),
            Source::Oci(reference) => format!("wasm://{}", reference.whole()),
        }
    }

    /// The digest the content must have, when the reference itself says (an OCI `@sha256:`
    /// pins the manifest, not the module, so it is not one of these).
    pub(crate) fn pinned_digest(&self) -> Option<&str> {
        match self {
            Source::Http { digest, .. } => digest.as_deref(),
            _ => None,
        }
    }
}

/// `sha256=HEX` → `sha256:hex`.
fn parse_fragment_digest(fragment: &str) -> Option<String> {
    let hex = fragment.strip_prefix("sha256=")?;
    let digest = format!("sha256:{}", hex.to_ascii_lowercase());
    is_sha256_digest(&digest).then_some(digest)
}

pub(crate) fn is_sha256_digest(digest: &str) -> bool {
    digest
        .strip_prefix("sha256:")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "ab0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd";

    #[test]
    fn file_references_must_be_absolute() {
        assert_eq!(
            Source::parse("file:///opt/app%20x.wasm", false).unwrap(),
            Source::File(PathBuf::from("/opt/app x.wasm"))
        );
        let err = Source::parse("file://relative/app.wasm", false).unwrap_err();
        assert!(err.to_string().contains("absolute path"), "{err}");
    }

    #[test]
    fn http_references_carry_their_digest() {
        let s = Source::parse(
            &format!("https://h.example/app.wasm#sha256={}", HEX.to_uppercase()),
            false,
        )
        .unwrap();
        let Source::Http { url, digest } = &s else {
            panic!("{s:?}")
        };
        assert_eq!(url.as_str(), "https://h.example/app.wasm");
        assert_eq!(digest.as_deref(), Some(format!("sha256:{HEX}").as_str()));
        assert_eq!(s.key(), format!("https://h.example/app.wasm#sha256={HEX}"));
        assert!(Source::parse("http://h/app.wasm#md5=00", false).is_err());
        assert!(Source::parse("http://h/app.wasm#sha256=abc", false).is_err());
        assert_eq!(
            Source::parse("http://h/app.wasm", false).unwrap(),
            Source::Http {
                url: Url::parse("http://h/app.wasm").unwrap(),
                digest: None
            }
        );
    }

    #[test]
    fn oci_references() {
        let Source::Oci(r) = Source::parse("wasm://127.0.0.1:5000/apps/hello:v1", false).unwrap()
        else {
            panic!()
        };
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(r.repository(), "apps/hello");
        assert_eq!(r.tag(), Some("v1"));

        assert!(Source::parse(&format!("reg.example/app@sha256:{HEX}"), false).is_err());
        let Source::Oci(r) = Source::parse(&format!("reg.example/app@sha256:{HEX}"), true).unwrap()
        else {
            panic!()
        };
        assert_eq!(r.digest(), Some(format!("sha256:{HEX}").as_str()));

        // Plain references follow docker.io's conventions in a wasm pod.
        let Source::Oci(r) = Source::parse("hello:1.0", true).unwrap() else {
            panic!()
        };
        assert_eq!(r.registry(), "docker.io");
        assert_eq!(r.repository(), "library/hello");
        let err = Source::parse("busybox:1.36", false).unwrap_err();
        assert!(err.to_string().contains("not a wasm module"), "{err}");
        assert!(Source::parse("ftp://h/x.wasm", true).is_err());
    }

    #[test]
    fn wasm_images_are_recognised() {
        assert!(is_wasm_image("file:///a.wasm", false));
        assert!(is_wasm_image("wasm://r/a:1", false));
        assert!(is_wasm_image("https://h/a.wasm", false));
        assert!(!is_wasm_image("busybox:1.36", false));
        assert!(is_wasm_image("busybox:1.36", true));
    }
}

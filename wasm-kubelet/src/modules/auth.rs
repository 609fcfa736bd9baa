//! Registry credentials from a pod's `imagePullSecrets` (`kubernetes.io/dockerconfigjson`).

use std::fmt;

/// A user name and password for one registry (host, or host:port).
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryAuth {
    pub registry: String,
    pub username: String,
    pub password: String,
}

impl fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryAuth")
            .field("registry", &self.registry)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The credentials in a `kubernetes.io/dockerconfigjson` secret's `.dockerconfigjson`
/// (`{"auths":{"reg":{"username":…,"password":…}}}`), or in the older
/// `kubernetes.io/dockercfg` layout without the `auths` wrapper. Entries that carry only the
/// base64 `auth` field are skipped: `kubectl create secret docker-registry` writes
/// `username` and `password` as well. Malformed input yields no credentials.
pub fn auths_from_docker_config(json: &[u8]) -> Vec<RegistryAuth> {
    let Ok(serde_json::Value::Object(root)) = serde_json::from_slice::<serde_json::Value>(json)
    else {
        return Vec::new();
    };
    let entries = match root.get("auths") {
        Some(serde_json::Value::Object(auths)) => auths,
        _ => &root,
    };
    let mut out = Vec::new();
    for (registry, entry) in entries {
        let field = |name: &str| {
            entry
                .get(name)
                .and_then(|v| v.as_str())
                .filter(|s| !s.is_empty())
        };
        match (field("username"), field("password")) {
            (Some(username), Some(password)) => out.push(RegistryAuth {
                registry: registry.clone(),
                username: username.to_string(),
                password: password.to_string(),
            }),
            _ => {
                if field("auth").is_some() {
                    tracing::warn!(
                        registry,
                        "pull secret entry has only a base64 'auth' field; add username and password"
                    );
                }
            }
        }
    }
    out
}

/// The registry a docker config key or a reference names, in one spelling: no scheme, no
/// path, and Docker Hub's many names folded into `docker.io`.
pub(crate) fn normalise_registry(name: &str) -> String {
    let name = name.trim();
    let name = name.split_once("://").map_or(name, |(_, rest)| rest);
    let host = name.split('/').next().unwrap_or(name).to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".into()
        }
        _ => host,
    }
}

/// The credentials for `registry` among `auths`, if any.
pub(crate) fn find<'a>(auths: &'a [RegistryAuth], registry: &str) -> Option<&'a RegistryAuth> {
    let wanted = normalise_registry(registry);
    auths
        .iter()
        .find(|a| normalise_registry(&a.registry) == wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dockerconfigjson() {
        let json = br#"{"auths":{
            "https://index.docker.io/v1/":{"username":"u1","password":"p1","auth":"dTE6cDE="},
            "127.0.0.1:5000":{"username":"u2","password":"p2"},
            "only-auth.example":{"auth":"dTpw"}
        }}"#;
        let auths = auths_from_docker_config(json);
        assert_eq!(auths.len(), 2);
        assert_eq!(find(&auths, "docker.io").unwrap().username, "u1");
        assert_eq!(find(&auths, "index.docker.io").unwrap().password, "p1");
        assert_eq!(find(&auths, "127.0.0.1:5000").unwrap().username, "u2");
        assert!(find(&auths, "127.0.0.1:5001").is_none());
        assert!(!format!("{:?}", auths[0]).contains("p1"));
    }

    #[test]
    fn tolerates_legacy_and_garbage() {
        let legacy = br#"{"reg.example":{"username":"u","password":"p"}}"#;
        assert_eq!(auths_from_docker_config(legacy)[0].registry, "reg.example");
        assert!(auths_from_docker_config(b"not json").is_empty());
        assert!(auths_from_docker_config(b"[1]").is_empty());
    }
}

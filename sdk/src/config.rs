//! Typed configuration the two Kubernetes ways: env vars (`env`, `valueFrom` ConfigMap/Secret
//! keys, fieldRefs) and files of mounted ConfigMap/Secret volumes.
//!
//! - [`env()`] (required), [`optional`] and [`env_or`] parse a variable with [`FromStr`]; an
//!   empty value counts as unset, as Kubernetes writes `""` for absent optional keys. Errors
//!   name the variable and say what to put in the manifest.
//! - [`file()`], [`file_opt`], [`file_value`] and [`json_file`] read mounted keys (a volume
//!   mounted at `/etc/config` shows key `greeting` as `/etc/config/greeting`).
//! - [`pod_name`] and [`pod_namespace`] read `POD_NAME`/`POD_NAMESPACE`, which manifests set
//!   through the downward API (`valueFrom.fieldRef.fieldPath: metadata.name` / `metadata.namespace`).
//!
//! Every error is [`Error::is_config`], so [`crate::run`] exits with 2 for it. For tests,
//! [`Env::from_pairs`] gives the same lookups over a fixed set of variables.
//!
//! ```
//! use sextant_sdk::config::{self, Env};
//!
//! #[derive(Debug)]
//! struct Settings { port: u16, greeting: String, verbose: bool }
//!
//! fn settings(env: &Env) -> Result<Settings, sextant_sdk::Error> {
//!     Ok(Settings {
//!         port: env.get_or("PORT", 8080)?,
//!         greeting: env.get("GREETING")?,
//!         verbose: env.optional("VERBOSE")?.unwrap_or(false),
//!     })
//! }
//!
//! let s = settings(&Env::from_pairs([("GREETING", "hi"), ("VERBOSE", "true")])).unwrap();
//! assert_eq!((s.port, s.greeting.as_str(), s.verbose), (8080, "hi", true));
//! let err = settings(&Env::from_pairs([("PORT", "eighty")])).unwrap_err();
//! assert!(err.to_string().starts_with("env PORT=\"eighty\" is not valid"));
//! // In the workload itself: `settings(&Env::process())`, or the free functions:
//! let _greeting: Option<String> = config::optional("GREETING").unwrap();
//! ```

use std::collections::HashMap;
use std::fmt::Display;
use std::path::Path;
use std::str::FromStr;

use serde::de::DeserializeOwned;

use crate::Error;

/// The namespace assumed when `POD_NAMESPACE` is unset.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Where variables come from: the process's environment, or a fixed map (tests).
#[derive(Debug, Clone, Default)]
pub struct Env {
    fixed: Option<HashMap<String, String>>,
}

impl Env {
    /// The module's own environment (what the pod spec's `env`/`envFrom` gave it).
    pub fn process() -> Env {
        Env { fixed: None }
    }

    /// A fixed set of variables, e.g. for unit tests of a workload's configuration.
    pub fn from_pairs<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Env
    where
        K: Into<String>,
        V: Into<String>,
    {
        Env {
            fixed: Some(
                pairs
                    .into_iter()
                    .map(|(k, v)| (k.into(), v.into()))
                    .collect(),
            ),
        }
    }

    /// The raw value of `name`, `None` if unset, empty or not Unicode.
    pub fn raw(&self, name: &str) -> Option<String> {
        let value = match &self.fixed {
            Some(vars) => vars.get(name).cloned(),
            None => std::env::var(name).ok(),
        };
        value.filter(|v| !v.is_empty())
    }

    /// `name` parsed as `T`; an error if it is unset or does not parse.
    pub fn get<T>(&self, name: &str) -> Result<T, Error>
    where
        T: FromStr,
        T::Err: Display,
    {
        self.optional(name)?.ok_or_else(|| Error::MissingEnv {
            name: name.to_owned(),
        })
    }

    /// `name` parsed as `T`, `None` if unset; an error only if it is set and does not parse.
    pub fn optional<T>(&self, name: &str) -> Result<Option<T>, Error>
    where
        T: FromStr,
        T::Err: Display,
    {
        let Some(value) = self.raw(name) else {
            return Ok(None);
        };
        match value.trim().parse() {
            Ok(parsed) => Ok(Some(parsed)),
            Err(e) => Err(Error::InvalidEnv {
                name: name.to_owned(),
                value,
                reason: e.to_string(),
            }),
        }
    }

    /// `name` parsed as `T`, `default` if unset; an error if it is set and does not parse.
    pub fn get_or<T>(&self, name: &str, default: T) -> Result<T, Error>
    where
        T: FromStr,
        T::Err: Display,
    {
        Ok(self.optional(name)?.unwrap_or(default))
    }
}

/// Required env var `name` as `T` (see [`Env::get`]).
pub fn env<T>(name: &str) -> Result<T, Error>
where
    T: FromStr,
    T::Err: Display,
{
    Env::process().get(name)
}

/// Optional env var `name` as `T` (see [`Env::optional`]).
pub fn optional<T>(name: &str) -> Result<Option<T>, Error>
where
    T: FromStr,
    T::Err: Display,
{
    Env::process().optional(name)
}

/// Env var `name` as `T`, or `default` if unset (see [`Env::get_or`]).
pub fn env_or<T>(name: &str, default: T) -> Result<T, Error>
where
    T: FromStr,
    T::Err: Display,
{
    Env::process().get_or(name, default)
}

/// The pod's name from env `POD_NAME`, if the manifest sets it (downward API `metadata.name`).
pub fn pod_name() -> Option<String> {
    Env::process().raw("POD_NAME")
}

/// The pod's namespace from env `POD_NAMESPACE` (downward API `metadata.namespace`), or
/// [`DEFAULT_NAMESPACE`].
pub fn pod_namespace() -> String {
    Env::process()
        .raw("POD_NAMESPACE")
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned())
}

/// The whole text of a mounted file, as written (ConfigMap values often end with a newline).
pub fn file(path: impl AsRef<Path>) -> Result<String, Error> {
    let path = path.as_ref();
    std::fs::read_to_string(path).map_err(|source| Error::ReadFile {
        path: path.display().to_string(),
        source,
    })
}

/// Like [`file()`], but `None` when the file does not exist (an optional ConfigMap key).
pub fn file_opt(path: impl AsRef<Path>) -> Result<Option<String>, Error> {
    match file(path) {
        Ok(text) => Ok(Some(text)),
        Err(Error::ReadFile { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// A mounted file's text, trimmed, parsed as `T` (e.g. a port or a limit in a ConfigMap key).
pub fn file_value<T>(path: impl AsRef<Path>) -> Result<T, Error>
where
    T: FromStr,
    T::Err: Display,
{
    let path = path.as_ref();
    file(path)?
        .trim()
        .parse()
        .map_err(|e: T::Err| Error::InvalidFile {
            path: path.display().to_string(),
            reason: e.to_string(),
        })
}

/// A mounted JSON file deserialized as `T` (a whole settings document in one ConfigMap key).
pub fn json_file<T: DeserializeOwned>(path: impl AsRef<Path>) -> Result<T, Error> {
    let path = path.as_ref();
    serde_json::from_str(&file(path)?).map_err(|e| Error::InvalidFile {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_lookups_parse_and_name_the_variable() {
        let env = Env::from_pairs([("PORT", "8081"), ("EMPTY", ""), ("BAD", "x1")]);
        assert_eq!(env.get::<u16>("PORT").unwrap(), 8081);
        assert_eq!(env.get_or::<u16>("MISSING", 80).unwrap(), 80);
        assert_eq!(env.optional::<u16>("EMPTY").unwrap(), None);

        let err = env.get::<u16>("MISSING").unwrap_err();
        assert!(matches!(&err, Error::MissingEnv { name } if name == "MISSING"));
        assert!(err.to_string().contains("valueFrom"), "{err}");

        let err = env.get_or::<u32>("BAD", 1).unwrap_err();
        assert_eq!(
            err.to_string(),
            "env BAD=\"x1\" is not valid: invalid digit found in string"
        );
        assert!(err.is_config());
    }

    #[test]
    fn files_are_read_parsed_and_missing_ones_explained() {
        let dir = tempfile::tempdir().unwrap();
        let limit = dir.path().join("limit");
        std::fs::write(&limit, "250\n").unwrap();
        let settings = dir.path().join("settings.json");
        std::fs::write(&settings, r#"{"name":"shop","replicas":3}"#).unwrap();

        assert_eq!(file(&limit).unwrap(), "250\n");
        assert_eq!(file_value::<u32>(&limit).unwrap(), 250);
        #[derive(Debug, serde::Deserialize)]
        struct Settings {
            name: String,
            replicas: u8,
        }
        let s: Settings = json_file(&settings).unwrap();
        assert_eq!((s.name.as_str(), s.replicas), ("shop", 3));

        let absent = dir.path().join("absent");
        assert_eq!(file_opt(&absent).unwrap(), None);
        let err = file(&absent).unwrap_err();
        assert!(err.to_string().contains("mount the ConfigMap"), "{err}");
        assert!(err.is_config());

        let err = file_value::<bool>(&limit).unwrap_err();
        assert!(matches!(err, Error::InvalidFile { .. }), "{err}");
        let err = json_file::<Settings>(&limit).unwrap_err();
        assert!(err.to_string().contains("is not valid"), "{err}");
    }
}

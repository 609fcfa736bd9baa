//! A command that reads its configuration the two Kubernetes ways: env `GREETING` (set from a
//! Secret through `secretKeyRef`) and the file `/config/message` (a ConfigMap volume). It
//! prints `GREETING=...` and `message=...` and exits 0, or exits 1 saying what is missing, so
//! a test sees from the log and exit code that env and volumes reached the module.
//!
//! `CONFIG_FILE` overrides the file's path (for running it outside a pod).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Where the ConfigMap volume's `message` key appears inside the pod.
const DEFAULT_CONFIG_FILE: &str = "/config/message";

/// Why the configuration could not be read; each message says what to put in the manifest.
#[derive(Debug, thiserror::Error)]
enum Error {
    #[error(
        "env GREETING is not set: give the container an env entry GREETING (e.g. valueFrom.secretKeyRef)"
    )]
    MissingGreeting,
    #[error(
        "cannot read {path}: {source}: mount a ConfigMap with a `message` key at {}",
        Path::new(path).parent().map_or("/".into(), |p| p.display().to_string())
    )]
    MissingMessage {
        path: String,
        source: std::io::Error,
    },
}

/// The configuration this workload was given.
#[derive(Debug, PartialEq, Eq)]
struct Config {
    greeting: String,
    message: String,
}

fn read_config(greeting: Option<String>, file: &Path) -> Result<Config, Error> {
    let greeting = greeting.ok_or(Error::MissingGreeting)?;
    let message = std::fs::read_to_string(file).map_err(|source| Error::MissingMessage {
        path: file.display().to_string(),
        source,
    })?;
    Ok(Config { greeting, message })
}

fn main() -> ExitCode {
    let file = std::env::var_os("CONFIG_FILE")
        .map_or_else(|| PathBuf::from(DEFAULT_CONFIG_FILE), PathBuf::from);
    match read_config(std::env::var("GREETING").ok(), &file) {
        Ok(config) => {
            println!("GREETING={}", config.greeting);
            println!("message={}", config.message.trim_end());
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("config-reader: {err}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_env_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("message");
        std::fs::write(&file, "from the configmap\n").unwrap();

        let config = read_config(Some("hi".into()), &file).unwrap();
        assert_eq!(config.greeting, "hi");
        assert_eq!(config.message, "from the configmap\n");
    }

    #[test]
    fn missing_pieces_say_what_to_fix() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("message");

        let err = read_config(None, &file).unwrap_err();
        assert!(matches!(err, Error::MissingGreeting));
        assert!(err.to_string().contains("secretKeyRef"));

        let err = read_config(Some("hi".into()), &file).unwrap_err();
        assert!(matches!(err, Error::MissingMessage { .. }));
        assert!(err.to_string().contains("ConfigMap"), "{err}");
    }
}

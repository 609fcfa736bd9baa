//! The exit convention of commands and jobs: [`run`] wraps `main`'s body, logs a failure as
//! one `error` line on stderr (what `kubectl logs` shows) and ends with
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | [`EXIT_ERROR`] = 1 | the run failed |
//! | [`EXIT_CONFIG`] = 2 | the configuration is wrong (a missing or invalid env var or mounted file): fix the manifest, not the code |
//!
//! WASI 0.2's `wasi:cli/exit.exit` carries only success or failure, so the node agent
//! records every failure as exit code 1; the log line carries the exact `exit_code`. With
//! the crate feature `exit-with-code` the SDK reports 2 through the (unstable in WASI 0.2)
//! `exit-with-code` instead; only turn it on for nodes whose agent links that function, as a
//! module that imports it cannot be instantiated elsewhere. Host builds always exit with the
//! exact code.
//!
//! ```
//! use std::process::ExitCode;
//!
//! fn main() -> ExitCode {
//!     sextant_sdk::run(|| {
//!         let batch: u32 = sextant_sdk::config::env_or("BATCH", 100)?;
//!         sextant_sdk::info!("starting", batch = batch);
//!         Ok::<(), sextant_sdk::Error>(())
//!     })
//! }
//! ```

use std::error::Error as StdError;
use std::process::ExitCode;

use crate::Error;
use crate::log::{self, Level};

/// The exit code of a failed run.
pub const EXIT_ERROR: u8 = 1;

/// The exit code of a run that could not start because its configuration is wrong.
pub const EXIT_CONFIG: u8 = 2;

/// Runs a command's body and turns its outcome into the process's exit code.
///
/// `Ok(())` exits 0. An error is logged at level `error` on stderr with its whole cause
/// chain and the `exit_code` field, and exits [`EXIT_CONFIG`] if any error in the chain is a
/// configuration [`Error`] (see [`Error::is_config`]), [`EXIT_ERROR`] otherwise. Any error
/// type converts (`Box<dyn Error>`, `String`, your own `std::error::Error`).
pub fn run<E>(main: impl FnOnce() -> Result<(), E>) -> ExitCode
where
    E: Into<Box<dyn StdError>>,
{
    match main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let err: Box<dyn StdError> = err.into();
            let code = exit_code(&*err);
            log::emit(
                Level::Error,
                &describe(&*err),
                &[("exit_code", serde_json::Value::from(code))],
            );
            exit(code)
        }
    }
}

/// The exit code for `err`: [`EXIT_CONFIG`] if it or any of its causes is a configuration
/// [`Error`].
pub fn exit_code(err: &(dyn StdError + 'static)) -> u8 {
    let mut next = Some(err);
    while let Some(err) = next {
        if err.downcast_ref::<Error>().is_some_and(Error::is_config) {
            return EXIT_CONFIG;
        }
        next = err.source();
    }
    EXIT_ERROR
}

/// `err` and its causes on one line, outermost first, joined by `": "`; a cause whose text
/// the outer message already holds is not repeated.
pub fn describe(err: &(dyn StdError + 'static)) -> String {
    let mut text = err.to_string();
    let mut next = err.source();
    while let Some(cause) = next {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        next = cause.source();
    }
    text
}

#[cfg(all(target_arch = "wasm32", feature = "exit-with-code"))]
fn exit(code: u8) -> ExitCode {
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    wasip2::cli::exit::exit_with_code(code);
    ExitCode::from(code)
}

#[cfg(not(all(target_arch = "wasm32", feature = "exit-with-code")))]
fn exit(code: u8) -> ExitCode {
    ExitCode::from(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot load the job")]
    struct Outer(#[source] Error);

    #[test]
    fn config_errors_anywhere_in_the_chain_exit_2() {
        let config = Error::MissingEnv {
            name: "INPUT".into(),
        };
        assert_eq!(exit_code(&config), EXIT_CONFIG);
        assert_eq!(exit_code(&Outer(config)), EXIT_CONFIG);
        assert_eq!(exit_code(&Outer(Error::BadText)), EXIT_ERROR);
        let plain: Box<dyn StdError> = "disk full".into();
        assert_eq!(exit_code(&*plain), EXIT_ERROR);
    }

    #[test]
    fn describe_joins_the_cause_chain() {
        let err = Outer(Error::MissingEnv {
            name: "INPUT".into(),
        });
        let text = describe(&err);
        assert!(
            text.starts_with("cannot load the job: env INPUT is not set"),
            "{text}"
        );
    }

    #[test]
    fn run_maps_results_to_exit_codes() {
        assert_eq!(run(|| Ok::<(), Error>(())), ExitCode::SUCCESS);
        assert_eq!(
            run(|| Err(Error::MissingEnv { name: "X".into() })),
            ExitCode::from(EXIT_CONFIG)
        );
        assert_eq!(run(|| Err("boom")), ExitCode::from(EXIT_ERROR));
    }
}

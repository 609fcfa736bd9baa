//! A long-running command: prints `tick N` every second, forever, so that tests can watch a
//! Running pod's logs grow (`kubectl logs -f`) and see it survive agent or control-plane
//! restarts.
//!
//! Env: `TICKS=n` exits 0 after n ticks (a finite run for Completed/restart tests);
//! `TICK_MS=m` changes the interval from 1000 ms (faster tests).

use std::process::ExitCode;
use std::time::Duration;

/// How the ticker was asked to run, read from its environment.
#[derive(Debug, PartialEq, Eq)]
struct Settings {
    /// `None` ticks forever.
    ticks: Option<u64>,
    interval: Duration,
}

impl Settings {
    /// Parses `TICKS` and `TICK_MS`; the error names the variable so the pod's log says what
    /// to fix in the manifest.
    fn from_vars(ticks: Option<&str>, tick_ms: Option<&str>) -> Result<Settings, String> {
        let ticks = ticks
            .map(|v| {
                v.trim()
                    .parse::<u64>()
                    .map_err(|e| format!("TICKS={v:?} is not a whole number of ticks: {e}"))
            })
            .transpose()?;
        let interval = match tick_ms {
            Some(v) => Duration::from_millis(v.trim().parse::<u64>().map_err(|e| {
                format!("TICK_MS={v:?} is not a whole number of milliseconds: {e}")
            })?),
            None => Duration::from_secs(1),
        };
        Ok(Settings { ticks, interval })
    }
}

fn main() -> ExitCode {
    let var = |name| std::env::var(name).ok();
    let settings = match Settings::from_vars(var("TICKS").as_deref(), var("TICK_MS").as_deref()) {
        Ok(settings) => settings,
        Err(message) => {
            eprintln!("ticker: {message}");
            return ExitCode::from(2);
        }
    };
    let mut n: u64 = 0;
    loop {
        n += 1;
        println!("tick {n}");
        if settings.ticks.is_some_and(|ticks| n >= ticks) {
            return ExitCode::SUCCESS;
        }
        std::thread::sleep(settings.interval);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_tick_every_second_forever() {
        let settings = Settings::from_vars(None, None).unwrap();
        assert_eq!(
            settings,
            Settings {
                ticks: None,
                interval: Duration::from_secs(1)
            }
        );
    }

    #[test]
    fn reads_ticks_and_interval() {
        let settings = Settings::from_vars(Some("3"), Some("50")).unwrap();
        assert_eq!(settings.ticks, Some(3));
        assert_eq!(settings.interval, Duration::from_millis(50));
    }

    #[test]
    fn bad_values_name_the_variable() {
        assert!(
            Settings::from_vars(Some("many"), None)
                .unwrap_err()
                .contains("TICKS")
        );
        assert!(
            Settings::from_vars(None, Some("-1"))
                .unwrap_err()
                .contains("TICK_MS")
        );
    }
}

//! A hostile command: tries to reach the host's filesystem and says what happened. A wasm
//! container sees only the volumes its spec mounts, so in a pod it must fail everywhere.
//!
//! Exit code: 0 when `/etc/passwd` could NOT be read (isolation holds), 2 when it could (a
//! test fails on that). Every attempt is logged, one line each, so a failing test shows what
//! leaked. Listing `/` is reported but does not change the exit code: a pod with volumes
//! legitimately sees their mount points there.

use std::path::Path;
use std::process::ExitCode;

/// Paths that all name the host's `/etc/passwd`, directly or by climbing out of a directory
/// a pod may have mounted.
const PASSWD_PATHS: &[&str] = &[
    "/etc/passwd",
    "../../../../etc/passwd",
    "/config/../../../../etc/passwd",
    "/data/../etc/passwd",
];

/// What one attempt to read a file gave.
#[derive(Debug)]
enum Attempt {
    Read(usize),
    Denied(std::io::Error),
}

fn try_read(path: &Path) -> Attempt {
    match std::fs::read(path) {
        Ok(bytes) => Attempt::Read(bytes.len()),
        Err(err) => Attempt::Denied(err),
    }
}

/// Lists a directory's entry names, sorted, or the error that stopped it.
fn try_list(path: &Path) -> std::io::Result<Vec<String>> {
    let mut names = std::fs::read_dir(path)?
        .map(|entry| entry.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<std::io::Result<Vec<_>>>()?;
    names.sort();
    Ok(names)
}

fn main() -> ExitCode {
    let mut leaked = false;
    for path in PASSWD_PATHS {
        match try_read(Path::new(path)) {
            Attempt::Read(len) => {
                leaked = true;
                println!("escape: read {path}: READ {len} bytes (isolation broken)");
            }
            Attempt::Denied(err) => println!("escape: read {path}: denied ({err})"),
        }
    }
    match try_list(Path::new("/")) {
        Ok(names) => println!(
            "escape: list /: {} entries: {}",
            names.len(),
            names.join(" ")
        ),
        Err(err) => println!("escape: list /: denied ({err})"),
    }
    if leaked {
        eprintln!("escape: the host's /etc/passwd was readable from inside the sandbox");
        ExitCode::from(2)
    } else {
        println!("escape: isolated");
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_reads_and_denials() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        std::fs::write(dir.join("present"), b"abc").unwrap();

        assert!(matches!(try_read(&dir.join("present")), Attempt::Read(3)));
        assert!(matches!(try_read(&dir.join("absent")), Attempt::Denied(_)));
        assert_eq!(try_list(dir).unwrap(), vec!["present".to_owned()]);
        assert!(try_list(&dir.join("absent")).is_err());
    }
}

//! The example workloads, built for wasm32-wasip2 by `cargo build-examples` (once per test
//! binary; cargo's own lock serialises test binaries that ask at the same time).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The target dir this test binary was built in (`…/target/debug/deps/<test>`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).unwrap().to_path_buf()
}

/// This crate's directory in the checkout being tested. Read at run time (cargo and nextest
/// set it) because the compile-time value is stale when one target dir serves two checkouts:
/// cargo does not rebuild a test binary just because the checkout moved.
fn crate_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// Where the example modules are, building them first if needed.
pub fn examples_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let target = target_dir();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = Command::new(cargo)
            .arg("build-examples")
            .env("CARGO_TARGET_DIR", &target)
            .current_dir(crate_dir())
            .output()
            .expect("cargo runs");
        assert!(
            out.status.success(),
            "cannot build the examples (cargo build-examples):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        target.join("wasm32-wasip2").join("debug")
    })
}

/// The path of one example's module (crate name with underscores).
pub fn module(name: &str) -> PathBuf {
    examples_dir().join(format!("{}.wasm", name.replace('-', "_")))
}

/// An example's manifest with SEXTANT_EXAMPLES pointing at the built modules.
pub fn manifest(example: &str, file: &str) -> String {
    let path = crate_dir()
        .join("../examples")
        .join(example)
        .join("manifests")
        .join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.replace("SEXTANT_EXAMPLES", examples_dir().to_str().unwrap())
}

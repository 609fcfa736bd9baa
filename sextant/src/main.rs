//! The `sextant` command. Parses flags and hands over to the library; see `lib.rs`.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "sextant",
    version,
    about = "A Kubernetes-compatible orchestrator for wasm and OCI pods"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start a control-plane node.
    Server(Box<sextant::server::ServerArgs>),
    /// Run the scheduler alone against a cluster (`sextant server` runs one in-process).
    Scheduler(sextant::standalone::ClientArgs),
    /// Run the controller manager alone against a cluster (`sextant server` runs one in-process).
    ControllerManager(sextant::standalone::ControllerManagerArgs),
}

fn main() -> anyhow::Result<()> {
    sextant::logging::init();
    let cli = Cli::parse();
    // Watches, pods' listeners (with the embedded node agent) and clients all hold open
    // files; the usual soft limit of 1,024 caps a server near a thousand of them. Raised to
    // the hard limit, the administrator's word, as Go programs (Kubernetes') do at start.
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        tracing::warn!(error = %e, "cannot raise the open-file limit; many pods or watches may run out of sockets");
    }
    let runtime = tokio::runtime::Runtime::new()?;
    match cli.command {
        Cmd::Server(args) => runtime.block_on(sextant::server::run(
            *args,
            sextant::signals::shutdown_signal(),
        )),
        Cmd::Scheduler(args) => runtime.block_on(sextant::standalone::scheduler(
            args,
            sextant::signals::shutdown_signal(),
        )),
        Cmd::ControllerManager(args) => runtime.block_on(sextant::standalone::controller_manager(
            args,
            sextant::signals::shutdown_signal(),
        )),
    }
}

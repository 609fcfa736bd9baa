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

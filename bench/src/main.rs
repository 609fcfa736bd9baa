//! `cargo run --release -p bench -- [--quick] [SUITE…]`: runs the named suites (all by
//! default), prints each figure with its baseline, and writes `target/bench/SUITE.json`.
//!
//! `cargo run --release -p bench -- summary` prints every figure that has a target, from the
//! JSON the suites last wrote, as the table at the top of BENCHMARKS.md.
//!
//! `bench --native-echo ADDR POD` (hidden) is the serving suite's baseline server, run in a
//! process of its own so it shares no runtime with the load generator.

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, addr, pod] = args.as_slice()
        && flag == bench::serving::NATIVE_ECHO_ARG
    {
        return bench::serving::native_echo(addr, pod);
    }
    if args.first().map(String::as_str) == Some("summary") {
        print!(
            "{}",
            bench::report::summary(std::path::Path::new(OUT), bench::SUITES)?
        );
        return Ok(());
    }
    let quick = args.iter().any(|a| a == "--quick");
    let mut suites: Vec<&str> = args
        .iter()
        .filter(|a| !a.starts_with("--"))
        .map(String::as_str)
        .collect();
    if suites.is_empty() {
        suites = bench::SUITES.to_vec();
    }
    // Before the runtime: a first build takes minutes, and blocks nothing else then.
    if suites.iter().any(|s| bench::BUILT_SUITES.contains(s)) {
        bench::server::ensure_built()?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    for suite in suites {
        let started = std::time::Instant::now();
        let report = runtime.block_on(bench::run_suite(suite, quick))?;
        report.print();
        let path = report.write_json(std::path::Path::new(OUT))?;
        println!(
            "wrote {} ({suite} took {:.0} s)\n",
            path.display(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// Where each suite's JSON goes (relative to where the command runs: the checkout).
const OUT: &str = "target/bench";

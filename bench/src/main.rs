//! `cargo run --release -p bench -- [--quick] [SUITE…]`: runs the named suites (all by
//! default), prints each figure with its baseline, and writes `target/bench/SUITE.json`.
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
    let quick = args.iter().any(|a| a == "--quick");
    let mut suites: Vec<&str> = args
        .iter()
        .filter(|a| !a.starts_with("--"))
        .map(String::as_str)
        .collect();
    if suites.is_empty() {
        suites = bench::SUITES.to_vec();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    for suite in suites {
        let report = runtime.block_on(bench::run_suite(suite, quick))?;
        report.print();
        let path = report.write_json(std::path::Path::new("target/bench"))?;
        println!("wrote {}\n", path.display());
    }
    Ok(())
}

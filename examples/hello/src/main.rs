//! A command that prints a greeting and exits: the smallest Sextant workload, run as a Job.

fn main() {
    let name = std::env::var("NAME").unwrap_or_else(|_| "world".to_owned());
    println!("hello, {name}!");
}

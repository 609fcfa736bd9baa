//! A hostile command: announces itself, then spins in a busy loop forever without ever calling
//! into the host. Only epoch/fuel interruption can take the CPU back, so a test runs it beside
//! another pod and checks that the other pod stays responsive and that `limits.cpu` holds.

use std::hint::black_box;

fn main() {
    println!("spinning");
    let mut counter: u64 = 0;
    loop {
        // black_box keeps the optimiser from proving the loop pointless and removing the work.
        counter = black_box(counter.wrapping_add(1));
    }
}

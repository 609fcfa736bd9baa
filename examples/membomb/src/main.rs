//! A hostile command: allocates memory forever in 1 MiB chunks, writing every page so the
//! memory is really used, and reports progress. Under `resources.limits.memory` it must end
//! with reason `OOMKilled`; the last "allocated" line in its log shows how far it got.

use std::hint::black_box;

const MIB: usize = 1024 * 1024;

/// How often progress is printed, in chunks: every 16 MiB keeps the log short.
const REPORT_EVERY: usize = 16;

fn main() {
    println!("allocating");
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    loop {
        // A non-zero fill touches every page (zeroed allocations could stay lazily mapped).
        chunks.push(black_box(vec![0xA5; MIB]));
        if chunks.len().is_multiple_of(REPORT_EVERY) {
            println!("allocated {} MiB", chunks.len());
        }
    }
}

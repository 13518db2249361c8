//! The `datsync` command line.

fn main() {}

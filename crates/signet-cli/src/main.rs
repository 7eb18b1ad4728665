//! The `signet` command line.

fn main() {}

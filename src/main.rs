//! The `omi-sync` command.

fn main() {
    println!("omi-sync {}", env!("CARGO_PKG_VERSION"));
}

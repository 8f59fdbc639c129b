//! Runs the Omi API contract test server as a standalone process.
//!
//! ```text
//! cargo run --example contract_server -- [ADDR] [--limit N] [--window-secs S] [--processing-ms MS] [--forever]
//! ```
//!
//! Prints `OMI_CONTRACT_URL=http://127.0.0.1:PORT` on the first line of
//! stdout, then serves until stdin closes, or with `--forever` until the
//! process is killed (for running in the background). ADDR
//! defaults to `127.0.0.1:0` (a free port). Faults can be queued over HTTP:
//!
//! ```text
//! curl -X POST $URL/_contract/faults -d '[{"route":"create","kind":"status","status":500,"times":2}]'
//! curl $URL/_contract/stats
//! ```
//!
//! Accepted keys: any `omi_dev_` + 32 lowercase hex, e.g.
//! `omi_dev_0123456789abcdef0123456789abcdef`.

#[path = "../tests/integration/support/contract_server.rs"]
mod contract_server;

use std::io::{Read, Write};
use std::time::Duration;

use contract_server::{ContractConfig, ContractServer};

fn main() {
    let mut addr = "127.0.0.1:0".to_string();
    let mut config = ContractConfig::default();
    let mut forever = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut num = |name: &str| -> u64 {
            args.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
                eprintln!("{name} needs a number");
                std::process::exit(2)
            })
        };
        match arg.as_str() {
            "--limit" => config.hourly_limit = num("--limit") as u32,
            "--window-secs" => config.window = Duration::from_secs(num("--window-secs")),
            "--processing-ms" => {
                config.processing_delay = Duration::from_millis(num("--processing-ms"))
            }
            "--forever" => forever = true,
            "-h" | "--help" => {
                eprintln!(
                    "usage: contract_server [ADDR] [--limit N] [--window-secs S] [--processing-ms MS] [--forever]"
                );
                return;
            }
            other => addr = other.to_string(),
        }
    }
    let server = match ContractServer::start_on(&addr, config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot listen on {addr}: {e}");
            std::process::exit(1);
        }
    };
    println!("OMI_CONTRACT_URL={}", server.base_url());
    let _ = std::io::stdout().flush();
    if forever {
        loop {
            std::thread::park();
        }
    }
    // Serve until stdin closes.
    let mut sink = [0u8; 256];
    let mut stdin = std::io::stdin();
    while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
    server.stop();
}

//! The `--auto` log in the XDG state directory: written by every `--auto`
//! run (start, stages, warnings, the exit code), private, named by
//! `omi-sync config`, and never holding a secret or a transcript.

use crate::common::Sandbox;
use crate::support::contract_server::{ContractConfig, ContractServer, TEST_KEY};

#[test]
fn auto_runs_append_to_the_log_that_config_names() {
    let sb = Sandbox::new();
    let log = sb.state().join("omi-sync/auto.log");
    let config = sb.run(&["config", "--json"]);
    assert_eq!(config.code, 0, "{}", config.stderr);
    assert_eq!(config.json()["log_file"], log.display().to_string());
    assert!(!log.exists(), "only --auto writes it");

    let r = sb.run(&["--auto", "--source", "demo", "--dry-run", "--quiet"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].contains("--auto started"), "{text}");
    assert!(text.contains("import: 5 new"), "{text}");
    assert!(text.contains("find speech:"), "{text}");
    // No model in the sandbox: the warning is in the log too.
    assert!(text.contains("transcription skipped"), "{text}");
    assert!(lines.last().unwrap().contains("finished: exit 0"), "{text}");
    // What stderr shows with --quiet is unchanged: no run-log lines there.
    assert!(!r.stderr.contains("--auto started"), "{}", r.stderr);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&log).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    // A run that fails says so, with its code and error.
    let r = sb.run(&["--auto", "--source", "image:/nonexistent/card.img"]);
    assert_ne!(r.code, 0);
    let text = std::fs::read_to_string(&log).unwrap();
    let last = text.lines().last().unwrap();
    assert!(
        last.contains(&format!("finished: exit {}", r.code)) && last.contains("ERROR"),
        "{last}"
    );
    assert_eq!(
        text.matches("--auto started").count(),
        2,
        "appended, not replaced"
    );
}

#[test]
fn the_log_holds_no_key_and_no_transcript_even_at_rust_log_trace() {
    let sb = crate::push::demo_ready();
    let server = ContractServer::start(ContractConfig::default());
    let out = sb
        .cmd()
        .args(["--auto", "--source", "demo", "-vv", "--api-url"])
        .arg(server.base_url())
        .env("OMI_API_KEY", TEST_KEY)
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(sb.state().join("omi-sync/auto.log")).unwrap();
    assert!(text.contains("push:"), "{text}");
    assert!(!text.contains(TEST_KEY), "the key is in the log");
    // Ten characters of the key are enough to count as a leak.
    for piece in TEST_KEY.as_bytes().windows(10) {
        let piece = std::str::from_utf8(piece).unwrap();
        assert!(
            !text.contains(piece),
            "a piece of the key ({piece}) is in the log"
        );
    }
    // The demo's words stay in the ledger, not in the log.
    let (_, _, first_words) = omi_sync::device::demo::transcript()[0];
    assert!(!text.contains(first_words), "a transcript is in the log");
    // RUST_LOG=trace reached stderr (the log's filter is its own).
    assert!(String::from_utf8_lossy(&out.stderr).contains("TRACE"));
}

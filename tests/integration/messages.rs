//! Messages that say what is really wrong and what helps, and a data
//! directory kept private (issue 11 §4.13, §5): a readable data dir is made
//! private on open and says so; a file name without a time is held for that
//! reason; a capture whose audio is gone says to import it again (and that
//! does restore it); log lines carry no colour escapes on a pipe or with
//! `--color never`; `push --dry-run` writes nothing to the ledger.

use crate::common::{Sandbox, write_demo};
use crate::support::contract_server::{ContractConfig, ContractServer, TEST_KEY};

use omi_sync::device::demo;

/// Every row of every table of the ledger, as text: what it holds, whatever
/// SQLite does to the file's pages.
fn dump(data: &std::path::Path) -> String {
    let conn = rusqlite::Connection::open_with_flags(
        data.join("ledger.sqlite3"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut out = String::new();
    for t in tables {
        let mut stmt = conn.prepare(&format!("SELECT * FROM \"{t}\"")).unwrap();
        let n = stmt.column_count();
        let rows = stmt
            .query_map([], |r| {
                (0..n)
                    .map(|i| r.get::<_, rusqlite::types::Value>(i))
                    .collect::<Result<Vec<_>, _>>()
            })
            .unwrap();
        for row in rows {
            out.push_str(&format!("{t}: {:?}\n", row.unwrap()));
        }
    }
    out
}

#[test]
fn push_dry_run_on_a_fresh_data_dir_writes_nothing_to_the_ledger() {
    let sb = crate::push::demo_ready();
    let before = dump(&sb.data());
    assert!(!before.contains("install.id"), "{before}");
    let server = ContractServer::start(ContractConfig::default());
    let r = sb
        .cmd()
        .args(["push", "--dry-run", "--json", "--api-url"])
        .arg(server.base_url())
        .env("OMI_API_KEY", TEST_KEY)
        .output()
        .unwrap();
    let r = crate::common::Run::from(r);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("client_device_id"),
        "the dry run shows the id it would use: {}",
        r.stdout
    );
    assert_eq!(dump(&sb.data()), before, "the dry run changed the ledger");
    // A real push keeps the install id.
    let r = sb
        .cmd()
        .args(["push", "--quiet", "--api-url"])
        .arg(server.base_url())
        .env("OMI_API_KEY", TEST_KEY)
        .output()
        .unwrap();
    assert_eq!(
        r.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    assert!(dump(&sb.data()).contains("install.id"));
}

#[cfg(unix)]
#[test]
fn a_data_dir_readable_by_others_is_made_private_and_says_so() {
    use std::os::unix::fs::PermissionsExt;
    let sb = Sandbox::new();
    let dir = sb.inputs();
    write_demo(&dir);
    assert_eq!(
        sb.run(&["import", dir.to_str().unwrap(), "--quiet"]).code,
        0
    );
    let data = sb.data();
    let ledger = data.join("ledger.sqlite3");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700, "new data dirs are private");
    assert_eq!(mode(&ledger), 0o600, "new ledgers are private");
    let capture = walk_files(&data.join("captures"))
        .into_iter()
        .next()
        .expect("a capture");
    assert_eq!(mode(&capture), 0o600, "new captures are private");
    // As an older omi-sync (or a hand-made directory) left it.
    let chmod = |p: &std::path::Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
    };
    chmod(&data, 0o755);
    chmod(&ledger, 0o644);
    for f in walk_files(&data.join("captures")) {
        chmod(&f, 0o644);
    }
    let r = sb.run(&["import", dir.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "{} was readable by other users (mode 0755)",
            data.display()
        )),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(&format!(
            "{} was readable by other users (mode 0644)",
            ledger.display()
        )),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("entries under"), "{}", r.stderr);
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&ledger), 0o600);
    assert!(
        walk_files(&data.join("captures"))
            .iter()
            .all(|f| mode(f) == 0o600)
    );
    // Once: the next run has nothing to say.
    let r = sb.run(&["import", dir.to_str().unwrap()]);
    assert!(
        !r.stderr.contains("readable by other users"),
        "{}",
        r.stderr
    );
}

/// Every file under `dir`, one level of shards deep (the captures layout).
fn walk_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .flat_map(|shard| std::fs::read_dir(shard.path()).unwrap().flatten())
        .map(|e| e.path())
        .collect()
}

#[test]
fn a_file_name_without_a_time_is_held_for_that_not_for_the_pendant_clock() {
    let sb = Sandbox::new();
    let dir = sb.inputs();
    std::fs::write(dir.join("audio_omi_opus_fs320.bin"), demo::FILES[0].bytes).unwrap();
    assert_eq!(
        sb.run(&["import", dir.to_str().unwrap(), "--quiet"]).code,
        0
    );
    let r = sb.run(&["push", "--dry-run"]);
    assert_eq!(r.code, 9, "nothing to send, all held: {}", r.stderr);
    assert!(
        r.stdout.contains("its file name carries no time"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("--allow-estimated-times"), "{}", r.stdout);
    assert!(!r.stdout.contains("clock was not set"), "{}", r.stdout);
}

#[test]
fn a_capture_whose_audio_is_gone_says_to_import_it_again_and_that_restores_it() {
    let sb = Sandbox::new();
    let dir = sb.inputs();
    let file = dir.join(demo::FILES[0].name);
    std::fs::write(&file, demo::FILES[0].bytes).unwrap();
    assert_eq!(
        sb.run(&["import", dir.to_str().unwrap(), "--quiet"]).code,
        0
    );
    let stored = walk_files(&sb.data().join("captures"))
        .into_iter()
        .find(|p| p.extension().is_none())
        .expect("the capture file");
    std::fs::remove_file(&stored).unwrap();
    let model = "/work/shared/models/ggml-tiny.en.bin";
    let transcribe = || {
        crate::common::Run::from(
            sb.cmd()
                .args(["transcribe", "--json"])
                .env("OMI_SYNC_MODEL", model)
                .output()
                .unwrap(),
        )
    };
    let r = transcribe();
    let segments = sb.run(&["segments", "--json"]).json();
    let errors: Vec<&str> = segments["segments"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["error"].as_str())
        .collect();
    assert!(!errors.is_empty(), "{}\n{}", r.stdout, r.stderr);
    for e in &errors {
        assert!(e.contains("the audio of this capture is gone"), "{e}");
        assert!(e.contains("cannot help"), "{e}");
        assert!(
            e.contains(&file.display().to_string()),
            "names the original: {e}"
        );
    }
    let push = sb.run(&["push", "--dry-run"]);
    assert!(
        push.stdout.contains("omi-sync segments` says why"),
        "{}",
        push.stdout
    );
    // Importing the original again restores the audio, and then transcribing works.
    assert_eq!(
        sb.run(&["import", dir.to_str().unwrap(), "--quiet"]).code,
        0
    );
    assert!(stored.is_file(), "the lost capture file is restored");
    let r = transcribe();
    assert_eq!(r.code, 0, "{}", r.stderr);
    let segments = sb.run(&["segments", "--json"]).json();
    assert!(
        segments["segments"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["error"].is_null()),
        "{segments}"
    );
}

#[test]
fn log_lines_carry_no_colour_escapes_on_a_pipe_or_with_color_never() {
    let server = ContractServer::start(ContractConfig::default());
    for (flags, no_color) in [
        (&["--color", "never"][..], false),
        (&[][..], false),
        (&[][..], true),
    ] {
        let sb = crate::push::demo_ready();
        let mut cmd = sb.cmd();
        cmd.args(flags)
            .args(["push", "--api-url"])
            .arg(server.base_url())
            .env("OMI_API_KEY", TEST_KEY)
            .env("RUST_LOG", "debug");
        if !no_color {
            cmd.env_remove("NO_COLOR");
        }
        let out = crate::common::Run::from(cmd.output().unwrap());
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert!(
            out.stderr.contains("DEBUG"),
            "log lines are there: {}",
            out.stderr
        );
        assert!(
            !out.stderr.contains('\x1b'),
            "{flags:?} NO_COLOR={no_color}: {:?}",
            out.stderr
        );
    }
}

/// Runs `script` in a private mount namespace (`unshare -rm`, no root
/// needed) with `$BIN`, `$DATA`, `$CONFIG`, `$INPUTS` and `$OUT` set;
/// returns what it printed on stdout.
fn in_namespace(sb: &Sandbox, script: &str) -> String {
    let data = sb.data();
    std::fs::create_dir_all(&data).unwrap();
    let output = std::process::Command::new("unshare")
        .args(["-rm", "sh", "-c", script])
        .env("DATA", &data)
        .env("BIN", env!("CARGO_BIN_EXE_omi-sync"))
        .env("CONFIG", sb.dir.path().join("none.toml"))
        .env("INPUTS", sb.inputs())
        .env("OUT", sb.dir.path())
        .env("NO_COLOR", "1")
        .output()
        .expect("unshare (util-linux) must be installed");
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "namespace setup failed: {report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    report
}

#[test]
fn a_read_only_data_dir_and_a_full_disk_are_said_in_words_naming_the_path() {
    let sb = Sandbox::new();
    write_demo(&sb.inputs());
    let report = in_namespace(
        &sb,
        r#"
        set -u
        mount -t tmpfs -o size=16m,mode=700 tmpfs "$DATA" || exit 90
        "$BIN" --data-dir "$DATA" --config "$CONFIG" import "$INPUTS" --quiet || exit 92
        mount -o remount,ro "$DATA" || exit 91
        "$BIN" --data-dir "$DATA" --config "$CONFIG" import "$INPUTS" 2> "$OUT/ro.err"
        echo "ro=$?"
        "$BIN" --data-dir "$DATA" --config "$CONFIG" import "$INPUTS" --json > "$OUT/ro.json" 2>/dev/null
        umount "$DATA"
        mount -t tmpfs -o size=200k,mode=700 tmpfs "$DATA" || exit 93
        "$BIN" --data-dir "$DATA" --config "$CONFIG" import "$INPUTS" 2> "$OUT/full.err"
        echo "full=$?"
        "#,
    );
    let read = |n: &str| std::fs::read_to_string(sb.dir.path().join(n)).unwrap_or_default();
    let data = sb.data().display().to_string();
    assert!(report.contains("ro=7"), "{report}\n{}", read("ro.err"));
    let ro = read("ro.err");
    assert!(
        ro.lines()
            .next()
            .unwrap_or("")
            .contains(&format!("error: the data directory {data} is read-only")),
        "{ro}"
    );
    let json: serde_json::Value = serde_json::from_str(&read("ro.json")).unwrap();
    assert_eq!(json["exit_code"], 7, "{json}");
    assert!(
        json["error"].as_str().unwrap().contains("is read-only"),
        "{json}"
    );
    assert!(report.contains("full=7"), "{report}\n{}", read("full.err"));
    let full = read("full.err");
    assert!(
        full.contains(&format!(
            "error: the disk holding the data directory {data} is full"
        )),
        "{full}"
    );
}

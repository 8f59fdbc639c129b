//! The API key in a real Secret Service: `login` stores it there, `push`
//! reads it from there, `logout` removes it, each checked from outside with
//! `secret-tool`. The service is `gnome-keyring-daemon` on a private session
//! bus, with a keyring of its own in the sandbox, unlocked at start.
//!
//! Needs `gnome-keyring-daemon`, `secret-tool` and `dbus-daemon` (Debian's
//! `gnome-keyring`, `libsecret-tools` and `dbus-daemon`, installed by
//! `scripts/setup`): under CI a missing one fails; elsewhere it is skipped.
//! The no-Secret-Service path is tested in `push` and `cloud_secrets`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use omi_sync::cloud::credentials::{KEYRING_SERVICE, KEYRING_USER, KeyFingerprint};

use crate::common::{Run, Sandbox, synthetic_backlog};
use crate::push::{config, demo_ready};
use crate::support::contract_server::{ContractConfig, ContractServer, TEST_KEY};
use crate::support::session_bus::SessionBus;

/// `gnome-keyring-daemon` serving `org.freedesktop.secrets` on a private
/// bus, its keyrings under `home`; stopped when dropped.
struct SecretService {
    daemon: Child,
    bus: SessionBus,
    home: PathBuf,
}

impl SecretService {
    /// Starts it, or `None` outside CI when a program it needs is missing.
    fn start(sandbox: &Path) -> Option<SecretService> {
        if !["gnome-keyring-daemon", "secret-tool"]
            .iter()
            .all(|p| on_path(p))
        {
            assert!(
                std::env::var_os("CI").is_none(),
                "gnome-keyring-daemon and secret-tool are needed (scripts/setup installs them)"
            );
            eprintln!("keyring tests skipped: no gnome-keyring-daemon or secret-tool");
            return None;
        }
        let bus = SessionBus::start("the keyring tests")?;
        let home = sandbox.join("keyring-home");
        std::fs::create_dir_all(home.join("run")).unwrap();
        let mut daemon = Command::new("gnome-keyring-daemon")
            .args(["--foreground", "--unlock", "--components=secrets"])
            .envs(environment(&bus.address, &home))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // The login keyring's password, then end of input: it is created
        // unlocked with it.
        daemon
            .stdin
            .take()
            .unwrap()
            .write_all(b"test-password")
            .unwrap();
        let service = SecretService { daemon, bus, home };
        service.wait_until_served();
        Some(service)
    }

    /// Waits until the service owns its name on the bus.
    fn wait_until_served(&self) {
        let conn = zbus::blocking::connection::Builder::address(self.bus.address.as_str())
            .unwrap()
            .build()
            .unwrap();
        let dbus = zbus::blocking::fdo::DBusProxy::new(&conn).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let name = zbus::names::BusName::try_from("org.freedesktop.secrets").unwrap();
        while !dbus.name_has_owner(name.clone()).unwrap_or(false) {
            assert!(
                Instant::now() < deadline,
                "gnome-keyring-daemon did not appear on the bus"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What `secret-tool` finds under omi-sync's entry, read from outside.
    fn stored_key(&self) -> Option<String> {
        let out = Command::new("secret-tool")
            .args([
                "lookup",
                "service",
                KEYRING_SERVICE,
                "username",
                KEYRING_USER,
            ])
            .envs(environment(&self.bus.address, &self.home))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.success() && !text.is_empty()).then_some(text)
    }

    /// `sandbox`'s command, talking to this Secret Service and `server`,
    /// with no key in the environment.
    fn omi_sync(&self, sandbox: &Sandbox, server: &ContractServer) -> Command {
        let mut cmd = sandbox.cmd();
        cmd.envs(environment(&self.bus.address, &self.home))
            .env_remove("OMI_API_KEY")
            .arg("--api-url")
            .arg(server.base_url());
        cmd
    }
}

impl Drop for SecretService {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

/// The session a program of the test runs in: the private bus, and a home
/// and runtime directory of the test's own.
fn environment(bus: &str, home: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("DBUS_SESSION_BUS_ADDRESS", bus.to_string()),
        ("HOME", home.display().to_string()),
        (
            "XDG_DATA_HOME",
            home.join(".local/share").display().to_string(),
        ),
        ("XDG_RUNTIME_DIR", home.join("run").display().to_string()),
    ]
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
}

fn run(mut cmd: Command, args: &[&str], stdin: Option<&str>) -> Run {
    let mut child = cmd
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        writeln!(input, "{text}").unwrap();
    }
    drop(input);
    Run::from(child.wait_with_output().unwrap())
}

#[test]
fn login_push_and_logout_go_through_the_real_secret_service() {
    let sb = demo_ready();
    config(&sb, "");
    let Some(keyring) = SecretService::start(sb.dir.path()) else {
        return;
    };
    let server = ContractServer::start(ContractConfig::default());
    assert_eq!(keyring.stored_key(), None, "a new keyring holds nothing");

    let r = run(keyring.omi_sync(&sb, &server), &["login"], Some(TEST_KEY));
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(!r.stderr.contains(TEST_KEY) && !r.stdout.contains(TEST_KEY));
    assert_eq!(
        keyring.stored_key().as_deref(),
        Some(TEST_KEY),
        "the key is in the Secret Service, under omi-sync's entry"
    );

    let r = run(keyring.omi_sync(&sb, &server), &["push"], None);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let creates = server.create_requests();
    assert!(!creates.is_empty(), "the demo's conversations were sent");
    let fingerprint = KeyFingerprint::of(TEST_KEY);
    assert!(
        creates
            .iter()
            .all(|q| q.key_fingerprint.as_deref() == Some(fingerprint.as_str())),
        "every request carried the key read from the keyring"
    );

    let r = run(keyring.omi_sync(&sb, &server), &["logout"], None);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(keyring.stored_key(), None, "logout removed it");

    // A backlog with work to send now finds no key.
    let other = Sandbox::new();
    synthetic_backlog(&other.data(), 1);
    config(&other, "");
    let sent = server.requests().len();
    let r = run(keyring.omi_sync(&other, &server), &["push"], None);
    assert_eq!(r.code, 7, "no key any more: {}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("omi-sync login"), "{}", r.stderr);
    assert_eq!(server.requests().len(), sent, "nothing sent without a key");
}

#[test]
fn a_locked_keyring_is_named_and_no_key_is_guessed() {
    let sb = Sandbox::new();
    config(&sb, "");
    let Some(keyring) = SecretService::start(sb.dir.path()) else {
        return;
    };
    let server = ContractServer::start(ContractConfig::default());
    // Lock every collection, as a screen lock does.
    let conn = zbus::blocking::connection::Builder::address(keyring.bus.address.as_str())
        .unwrap()
        .build()
        .unwrap();
    let service = zbus::blocking::Proxy::new(
        &conn,
        "org.freedesktop.secrets",
        "/org/freedesktop/secrets",
        "org.freedesktop.Secret.Service",
    )
    .unwrap();
    let collection =
        zbus::zvariant::OwnedObjectPath::try_from("/org/freedesktop/secrets/collection/login")
            .unwrap();
    let _: (
        Vec<zbus::zvariant::OwnedObjectPath>,
        zbus::zvariant::OwnedObjectPath,
    ) = service.call("Lock", &(vec![collection],)).unwrap();

    let r = run(keyring.omi_sync(&sb, &server), &["login"], Some(TEST_KEY));
    assert_eq!(r.code, 7, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("keyring is locked") && r.stderr.contains("OMI_API_KEY"),
        "the message says the keyring is locked and how to go on: {}",
        r.stderr
    );
    assert!(!r.stderr.contains(TEST_KEY));

    // A timer's push, with work to send, stops the same way: nothing sent.
    synthetic_backlog(&sb.data(), 1);
    let r = run(keyring.omi_sync(&sb, &server), &["push"], None);
    assert_eq!(r.code, 7, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("OMI_API_KEY"), "{}", r.stderr);
    assert!(server.create_requests().is_empty());
}

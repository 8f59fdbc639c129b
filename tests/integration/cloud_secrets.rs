//! The API key never shows: not in Debug output, error messages, outcomes,
//! dry-run renderings, limiter state, nor what a misbehaving server echoes.

use crate::support;

use std::time::Duration;

use omi_sync::cloud::api::{ClientConfig, OmiClient, PushOutcome};
use omi_sync::cloud::credentials::{self, ApiKey, MemoryStore, SecretStore};
use omi_sync::cloud::payload;
use omi_sync::cloud::ratelimit::{Limiter, RateLimit};

use support::contract_server::{ContractConfig, ContractServer, Fault, Route, TEST_KEY};
use support::{T0, client, conversation};

/// The part of the key that must never appear.
const SECRET_HEX: &str = "0123456789abcdef0123456789abcdef";

fn assert_clean(what: &str, text: &str) {
    assert!(!text.contains(SECRET_HEX), "{what} shows the key: {text}");
    assert!(
        !text.contains(&SECRET_HEX[..12]),
        "{what} shows part of the key: {text}"
    );
}

#[test]
fn debug_and_display_of_every_holder_hide_the_key() {
    let key = ApiKey::parse(TEST_KEY).unwrap();
    assert_clean("ApiKey Debug", &format!("{key:?}"));
    assert_clean("ApiKey pretty Debug", &format!("{key:#?}"));
    assert_clean("ApiKey Display", &format!("{key}"));
    let store = MemoryStore::new();
    let loaded = credentials::login(&store, TEST_KEY).unwrap();
    assert_clean("MemoryStore Debug", &format!("{store:?}"));
    assert_clean("login result", &format!("{loaded:?}"));
    let found = credentials::resolve(None, &store).unwrap();
    assert_clean("LoadedKey Debug", &format!("{found:?}"));
    let c = OmiClient::new(ClientConfig::default(), key.clone()).unwrap();
    assert_clean("OmiClient Debug", &format!("{c:?}"));
    // The secret is reachable on purpose only.
    assert_eq!(store.read().unwrap().as_deref(), Some(TEST_KEY));
    assert_eq!(key.expose_secret(), TEST_KEY);
}

#[test]
fn credential_errors_never_echo_what_was_given() {
    let near_miss = format!("omi_dev_{}", SECRET_HEX.to_uppercase());
    let e = ApiKey::parse(&near_miss).unwrap_err();
    assert_clean("shape error", &e.to_string());
    assert!(!e.to_string().contains(&SECRET_HEX.to_uppercase()[..12]));
    let e = credentials::resolve(Some(&format!("{TEST_KEY}x")), &MemoryStore::new()).unwrap_err();
    assert_clean("resolve error", &e.to_string());
    assert_clean("resolve error Debug", &format!("{e:?}"));
    let e =
        credentials::login(&MemoryStore::unavailable("no D-Bus session"), TEST_KEY).unwrap_err();
    assert_clean("login error", &e.to_string());
    assert!(e.to_string().contains("OMI_API_KEY"));
}

#[test]
fn dry_run_shows_the_exact_request_with_the_key_redacted() {
    let c = OmiClient::new(
        ClientConfig::with_base_url("https://api.omi.me"),
        ApiKey::parse(TEST_KEY).unwrap(),
    )
    .unwrap();
    let built = payload::build(&conversation("dry", 3)).unwrap();
    let dry = c.dry_run_create(&built.request);
    let shown = dry.to_string();
    assert_clean("dry run", &shown);
    assert_clean("dry run Debug", &format!("{dry:?}"));
    assert!(shown.starts_with("POST https://api.omi.me/v1/dev/user/conversations/from-segments\n"));
    let fp = ApiKey::parse(TEST_KEY).unwrap().fingerprint().to_string();
    assert!(shown.contains(&format!(
        "Authorization: Bearer omi_dev_…[redacted] (key {fp})"
    )));
    assert!(shown.contains("Content-Type: application/json"));
    assert_eq!(dry.body, built.to_json());
    assert!(shown.contains(built.session_id.as_str()));
}

#[test]
fn outcomes_scrub_a_server_that_echoes_the_header() {
    let revoked = "omi_dev_0123456789abcdef0123456789abcdef";
    let server = ContractServer::start(ContractConfig {
        revoked_keys: vec![revoked.to_string()],
        echo_auth_in_errors: true,
        ..ContractConfig::default()
    });
    let c = client(&server);
    let built = payload::build(&conversation("echo", 2)).unwrap();
    let o = c.create_conversation(&built.request);
    assert!(
        matches!(o, PushOutcome::Unauthorized { status: 401, .. }),
        "{o:?}"
    );
    assert_clean("401 outcome", &o.to_string());
    assert_clean("401 outcome Debug", &format!("{o:?}"));
    let e = c.list_conversations(&Default::default()).unwrap_err();
    assert_clean("401 list error", &e.to_string());

    // Error bodies and transport failures are scrubbed too.
    server.set_config(ContractConfig::default());
    server.inject_on(
        Route::Create,
        Fault::Raw {
            status: 500,
            content_type: "text/plain".into(),
            body: format!("upstream said: Authorization: Bearer {TEST_KEY}").into_bytes(),
        },
        1,
    );
    let o = c.create_conversation(&built.request);
    assert!(matches!(o, PushOutcome::Temporary { .. }));
    assert_clean("500 outcome", &o.to_string());
    let slow = support::client_with(&server, TEST_KEY, Duration::from_millis(200));
    server.inject_on(Route::Create, Fault::Stall(Duration::from_secs(1)), 1);
    assert_clean(
        "timeout outcome",
        &slow.create_conversation(&built.request).to_string(),
    );
    server.inject_on(Route::Create, Fault::Reset, 1);
    assert_clean(
        "reset outcome",
        &c.create_conversation(&built.request).to_string(),
    );
}

#[test]
fn limiter_state_and_server_records_name_keys_by_fingerprint_only() {
    let key = ApiKey::parse(TEST_KEY).unwrap();
    let mut lim = Limiter::new();
    lim.writes(key.fingerprint())
        .charge(&RateLimit::default(), omi_sync::clock::UtcMillis(T0));
    assert_clean("limiter JSON", &serde_json::to_string(&lim).unwrap());

    let server = ContractServer::start(ContractConfig::default());
    let built = payload::build(&conversation("fp", 2)).unwrap();
    assert!(
        client(&server)
            .create_conversation(&built.request)
            .is_created()
    );
    assert_clean("server request log", &format!("{:?}", server.requests()));
}

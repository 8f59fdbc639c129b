//! The Omi developer API key: its shape, where it comes from, and keeping it
//! out of sight.
//!
//! A key is `omi_dev_` followed by 32 lowercase hex characters and travels
//! only as `Authorization: Bearer omi_dev_…` (`omi-facts.md` §5). It is read
//! from the `OMI_API_KEY` environment variable first, else from the OS keyring
//! (`keyring` crate: Keychain, Windows Credential Manager, Secret Service).
//! `login` stores it in the keyring and `logout` removes it. omi-sync never
//! writes the key to its config file, the ledger or a log: where there is no
//! keyring (headless Linux has no D-Bus session or no Secret Service) the
//! error says to use the environment variable instead.
//!
//! The key lives in an [`ApiKey`], whose `Debug` and `Display` never show the
//! secret; [`Redacted`] does the same for any other value. A key is named in
//! logs, the ledger and the rate limiter by its [`KeyFingerprint`]: the first
//! 8 hex characters of its SHA-256, which cannot be turned back into the key.

use std::fmt;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The environment variable read before the keyring.
pub const ENV_VAR: &str = "OMI_API_KEY";
/// Every developer API key starts with this.
pub const KEY_PREFIX: &str = "omi_dev_";
/// How many hex characters follow the prefix.
pub const KEY_HEX_LEN: usize = 32;
/// The keyring service name omi-sync stores its key under.
pub const KEYRING_SERVICE: &str = "omi-sync";
/// The keyring user (account) name omi-sync stores its key under.
pub const KEYRING_USER: &str = "omi-developer-api-key";

const ENV_HINT: &str = "Set OMI_API_KEY=omi_dev_… in the environment instead (for cron or a \
                        systemd timer, put it in the job's environment); omi-sync never writes \
                        the key to its config file";

/// A value that must never be printed: `Debug` and `Display` show `[redacted]`.
///
/// The value is reachable only through [`Redacted::expose`], so every place
/// that needs the secret says so in the code.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Redacted<T>(T);

impl<T> Redacted<T> {
    /// Wraps a value.
    pub fn new(value: T) -> Self {
        Redacted(value)
    }

    /// The wrapped value. Call only where the secret is actually used.
    pub fn expose(&self) -> &T {
        &self.0
    }

    /// Unwraps the value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for Redacted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<T> fmt::Display for Redacted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A non-reversible name for a key: the first 8 hex characters of the SHA-256
/// of the whole key. Safe to log, show and store.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyFingerprint(String);

impl KeyFingerprint {
    /// The fingerprint of a secret.
    pub fn of(secret: &str) -> Self {
        let digest = Sha256::digest(secret.as_bytes());
        KeyFingerprint(hex::encode(&digest[..4]))
    }

    /// Reads a stored fingerprint back (8 lowercase hex characters).
    pub fn parse(text: &str) -> Option<Self> {
        let ok = text.len() == 8 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        ok.then(|| KeyFingerprint(text.to_string()))
    }

    /// The 8 hex characters.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a text is not a developer API key. The messages never repeat the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyShapeError {
    /// Nothing but whitespace.
    #[error("the API key is empty")]
    Empty,
    /// Does not start with `omi_dev_`.
    #[error(
        "an Omi developer API key starts with `omi_dev_` (this one does not; create a developer \
         key in the Omi app)"
    )]
    WrongPrefix,
    /// The part after the prefix has the wrong length.
    #[error(
        "the API key has {found} characters after `omi_dev_`; expected {KEY_HEX_LEN} hex characters"
    )]
    WrongLength {
        /// Characters found after the prefix.
        found: usize,
    },
    /// A character after the prefix is not a lowercase hex digit.
    #[error(
        "character {position} after `omi_dev_` is not a lowercase hex digit (0-9, a-f); \
         was the key copied whole?"
    )]
    NotHex {
        /// 1-based position after the prefix.
        position: usize,
    },
}

/// A developer API key of the right shape. `Debug` and `Display` show only the
/// prefix and the fingerprint; it is not `Serialize`.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    secret: Redacted<String>,
    fingerprint: KeyFingerprint,
}

impl ApiKey {
    /// Checks the shape (`omi_dev_` + 32 lowercase hex characters). Whitespace
    /// around the key (a pasted newline) is ignored.
    pub fn parse(text: &str) -> Result<Self, KeyShapeError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(KeyShapeError::Empty);
        }
        let Some(rest) = text.strip_prefix(KEY_PREFIX) else {
            return Err(KeyShapeError::WrongPrefix);
        };
        let found = rest.chars().count();
        if found != KEY_HEX_LEN {
            return Err(KeyShapeError::WrongLength { found });
        }
        if let Some(i) = rest
            .chars()
            .position(|c| !matches!(c, '0'..='9' | 'a'..='f'))
        {
            return Err(KeyShapeError::NotHex { position: i + 1 });
        }
        Ok(ApiKey {
            fingerprint: KeyFingerprint::of(text),
            secret: Redacted::new(text.to_string()),
        })
    }

    /// The secret itself. Only the HTTP client's `Authorization` header and the
    /// keyring write should call this.
    pub fn expose_secret(&self) -> &str {
        self.secret.expose()
    }

    /// The key's fingerprint.
    pub fn fingerprint(&self) -> &KeyFingerprint {
        &self.fingerprint
    }

    /// What to show instead of the key: `omi_dev_…[redacted] (key 1a2b3c4d)`.
    pub fn masked(&self) -> String {
        format!("{KEY_PREFIX}…[redacted] (key {})", self.fingerprint)
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey")
            .field("fingerprint", &self.fingerprint.as_str())
            .field("secret", &self.secret)
            .finish()
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// Replaces anything in `text` that looks like a developer key or a bearer
/// token with `[redacted]`. Used on every server message and error string
/// before it is kept or shown, in case a server or proxy echoes the header.
pub fn scrub_secrets(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let lower = rest.to_ascii_lowercase();
        let key_at = lower.find(KEY_PREFIX);
        let bearer_at = lower.find("bearer ");
        let next = match (key_at, bearer_at) {
            (Some(k), Some(b)) if b < k => Some((b, "bearer ".len())),
            (Some(k), _) => Some((k, KEY_PREFIX.len())),
            (None, Some(b)) => Some((b, "bearer ".len())),
            (None, None) => None,
        };
        let Some((at, head)) = next else {
            out.push_str(rest);
            return out;
        };
        out.push_str(&rest[..at + head]);
        let tail = &rest[at + head..];
        let token_len = tail
            .char_indices()
            .find(|&(_, c)| c.is_whitespace() || matches!(c, '"' | '\'' | ',' | ';' | '<' | '>'))
            .map(|(i, _)| i)
            .unwrap_or(tail.len());
        if token_len > 0 {
            out.push_str("[redacted]");
        }
        rest = &tail[token_len..];
    }
}

/// Where a key came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    /// The `OMI_API_KEY` environment variable.
    Env,
    /// The OS keyring.
    Keyring,
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeySource::Env => "the OMI_API_KEY environment variable",
            KeySource::Keyring => "the OS keyring",
        })
    }
}

/// A key and where it was found.
#[derive(Debug, Clone)]
pub struct LoadedKey {
    /// The key.
    pub key: ApiKey,
    /// Where it came from.
    pub source: KeySource,
}

/// Why a credential store could not do what was asked. Reasons never contain
/// the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// There is no keyring service here (no D-Bus session, no Secret Service,
    /// an unsupported platform).
    #[error("no keyring service is available: {0}")]
    Unavailable(String),
    /// The keyring is there but locked, and unlocking it needs a person at
    /// a desktop prompt (none answered: a cron job, an SSH session).
    #[error(
        "the keyring is locked (unlock it by logging in to the desktop session, or with `gnome-keyring-daemon --unlock`): {0}"
    )]
    Locked(String),
    /// The keyring is there but the operation failed (denied, …).
    #[error("{0}")]
    Failed(String),
}

/// Where a key is kept between runs. [`OsKeyring`] is the real one;
/// [`MemoryStore`] serves tests and one-shot runs.
pub trait SecretStore {
    /// A short name for messages, e.g. "the OS keyring".
    fn describe(&self) -> String;
    /// The stored secret, or `None` if nothing is stored.
    fn read(&self) -> Result<Option<String>, StoreError>;
    /// Stores (or replaces) the secret.
    fn write(&self, secret: &str) -> Result<(), StoreError>;
    /// Removes the secret; `false` if there was none.
    fn remove(&self) -> Result<bool, StoreError>;
}

/// The platform keyring through the `keyring` crate (v4, keyring-core).
#[derive(Debug, Clone)]
pub struct OsKeyring {
    service: String,
    user: String,
}

impl Default for OsKeyring {
    fn default() -> Self {
        OsKeyring::new(KEYRING_SERVICE, KEYRING_USER)
    }
}

impl OsKeyring {
    /// A keyring entry under this service and user name.
    pub fn new(service: &str, user: &str) -> Self {
        OsKeyring {
            service: service.to_string(),
            user: user.to_string(),
        }
    }

    fn entry(&self) -> Result<keyring::Entry, StoreError> {
        if let Err(e) = keyring::Entry::store_status() {
            return Err(StoreError::Unavailable(scrub_secrets(&e.to_string())));
        }
        keyring::Entry::new(&self.service, &self.user).map_err(map_keyring_error)
    }
}

fn map_keyring_error(e: keyring::Error) -> StoreError {
    let reason = scrub_secrets(&e.to_string());
    match e {
        keyring::Error::NoDefaultStore | keyring::Error::NotSupportedByStore(_) => {
            StoreError::Unavailable(reason)
        }
        keyring::Error::PlatformFailure(_) if looks_like_no_service(&reason) => {
            StoreError::Unavailable(reason)
        }
        _ if looks_locked(&reason) => StoreError::Locked(reason),
        _ => StoreError::Failed(reason),
    }
}

/// Secret Service failures that mean "there is no keyring here" rather than
/// "the keyring refused".
fn looks_like_no_service(reason: &str) -> bool {
    let r = reason.to_ascii_lowercase();
    [
        "serviceunknown",
        "org.freedesktop.secrets",
        "connection",
        "dbus",
        "d-bus",
        "not provided",
        "no such file",
    ]
    .iter()
    .any(|needle| r.contains(needle))
}

/// Secret Service failures that mean "locked, and the unlock prompt went
/// unanswered" (gnome-keyring dismisses it when no desktop can show it).
fn looks_locked(reason: &str) -> bool {
    let r = reason.to_ascii_lowercase();
    r.contains("prompt dismissed") || r.contains("locked")
}

impl SecretStore for OsKeyring {
    fn describe(&self) -> String {
        "the OS keyring".to_string()
    }

    fn read(&self) -> Result<Option<String>, StoreError> {
        match self.entry()?.get_password() {
            Ok(secret) => Ok(Some(secret)),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(map_keyring_error(e)),
        }
    }

    fn write(&self, secret: &str) -> Result<(), StoreError> {
        self.entry()?
            .set_password(secret)
            .map_err(map_keyring_error)
    }

    fn remove(&self) -> Result<bool, StoreError> {
        match self.entry()?.delete_credential() {
            Ok(()) => Ok(true),
            Err(keyring::Error::NoEntry) => Ok(false),
            Err(e) => Err(map_keyring_error(e)),
        }
    }
}

/// A store in memory, for tests (and a frontend that holds a key for one
/// run). It can pretend to be a machine without a keyring.
#[derive(Debug, Default)]
pub struct MemoryStore {
    secret: Mutex<Option<Redacted<String>>>,
    unavailable: Option<String>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }

    /// A store that fails every call as "no keyring service", with this reason.
    pub fn unavailable(reason: &str) -> Self {
        MemoryStore {
            secret: Mutex::new(None),
            unavailable: Some(reason.to_string()),
        }
    }

    fn check(&self) -> Result<(), StoreError> {
        match &self.unavailable {
            Some(reason) => Err(StoreError::Unavailable(reason.clone())),
            None => Ok(()),
        }
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Redacted<String>>> {
        self.secret.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl SecretStore for MemoryStore {
    fn describe(&self) -> String {
        "the in-memory store".to_string()
    }

    fn read(&self) -> Result<Option<String>, StoreError> {
        self.check()?;
        Ok(self.slot().as_ref().map(|s| s.expose().clone()))
    }

    fn write(&self, secret: &str) -> Result<(), StoreError> {
        self.check()?;
        *self.slot() = Some(Redacted::new(secret.to_string()));
        Ok(())
    }

    fn remove(&self) -> Result<bool, StoreError> {
        self.check()?;
        Ok(self.slot().take().is_some())
    }
}

/// Why no usable key could be had. Every message says what to do, and none
/// contains the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// No key in the environment and none in the keyring.
    #[error(
        "no Omi API key: set OMI_API_KEY=omi_dev_… in the environment or run `omi-sync login` \
         to store one in {store}"
    )]
    Missing {
        /// The store that was searched.
        store: String,
    },
    /// A key was found but is not a developer API key.
    #[error("the API key from {source_name} is not usable: {shape}{advice}")]
    BadShape {
        /// Where it was found.
        source_name: String,
        /// What is wrong with it.
        shape: KeyShapeError,
        /// What to do about it.
        advice: String,
    },
    /// The keyring failed or is missing; the environment variable is the way out.
    #[error("could not {action} the key in {store}: {reason}. {hint}", hint = ENV_HINT)]
    Keyring {
        /// `read`, `store` or `remove`.
        action: &'static str,
        /// The store's name.
        store: String,
        /// What the keyring said (scrubbed).
        reason: String,
    },
    /// The keyring accepted the key but gave something else back.
    #[error("{store} did not keep the key (reading it back gave a different value). {hint}", hint = ENV_HINT)]
    NotKept {
        /// The store's name.
        store: String,
    },
}

fn keyring_error(action: &'static str, store: &dyn SecretStore, e: StoreError) -> CredentialError {
    CredentialError::Keyring {
        action,
        store: store.describe(),
        reason: e.to_string(),
    }
}

/// Finds the key: `env_value` (the content of `OMI_API_KEY`, if set and not
/// blank) first, else `store`. A malformed environment value is an error, not
/// a reason to fall back silently to the keyring.
pub fn resolve(
    env_value: Option<&str>,
    store: &dyn SecretStore,
) -> Result<LoadedKey, CredentialError> {
    if let Some(raw) = env_value.filter(|v| !v.trim().is_empty()) {
        return ApiKey::parse(raw)
            .map(|key| LoadedKey {
                key,
                source: KeySource::Env,
            })
            .map_err(|shape| CredentialError::BadShape {
                source_name: KeySource::Env.to_string(),
                shape,
                advice: " (fix or unset OMI_API_KEY)".to_string(),
            });
    }
    match store.read() {
        Ok(Some(raw)) => ApiKey::parse(&raw)
            .map(|key| LoadedKey {
                key,
                source: KeySource::Keyring,
            })
            .map_err(|shape| CredentialError::BadShape {
                source_name: store.describe(),
                shape,
                advice: " (run `omi-sync login` again)".to_string(),
            }),
        Ok(None) => Err(CredentialError::Missing {
            store: store.describe(),
        }),
        Err(e) => Err(keyring_error("read", store, e)),
    }
}

/// [`resolve`] with the real `OMI_API_KEY` and the real OS keyring.
pub fn load() -> Result<LoadedKey, CredentialError> {
    let env = std::env::var(ENV_VAR).ok();
    resolve(env.as_deref(), &OsKeyring::default())
}

/// `login`: checks the key's shape, stores it, and reads it back to be sure
/// the store kept it.
pub fn login(store: &dyn SecretStore, raw: &str) -> Result<ApiKey, CredentialError> {
    let key = ApiKey::parse(raw).map_err(|shape| CredentialError::BadShape {
        source_name: "the input".to_string(),
        shape,
        advice: String::new(),
    })?;
    store
        .write(key.expose_secret())
        .map_err(|e| keyring_error("store", store, e))?;
    match store.read() {
        Ok(Some(back)) if back == key.expose_secret() => Ok(key),
        Ok(_) => Err(CredentialError::NotKept {
            store: store.describe(),
        }),
        Err(e) => Err(keyring_error("read", store, e)),
    }
}

/// `logout`: removes the stored key. `Ok(false)` if there was none.
pub fn logout(store: &dyn SecretStore) -> Result<bool, CredentialError> {
    store
        .remove()
        .map_err(|e| keyring_error("remove", store, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "omi_dev_0123456789abcdef0123456789abcdef";

    #[test]
    fn parses_good_keys_and_trims() {
        let k = ApiKey::parse(&format!("  {KEY}\n")).unwrap();
        assert_eq!(k.expose_secret(), KEY);
        assert_eq!(k.fingerprint().as_str().len(), 8);
        assert_eq!(k.fingerprint(), &KeyFingerprint::of(KEY));
    }

    #[test]
    fn refuses_bad_shapes_without_echoing() {
        assert_eq!(ApiKey::parse(" "), Err(KeyShapeError::Empty));
        assert_eq!(
            ApiKey::parse("sk-live-abcdef"),
            Err(KeyShapeError::WrongPrefix)
        );
        assert_eq!(
            ApiKey::parse("omi_dev_abc"),
            Err(KeyShapeError::WrongLength { found: 3 })
        );
        let upper = "omi_dev_0123456789ABCDEF0123456789abcdef";
        let e = ApiKey::parse(upper).unwrap_err();
        assert_eq!(e, KeyShapeError::NotHex { position: 11 });
        assert!(!e.to_string().contains("ABCDEF"));
        let e = ApiKey::parse("omi_dev_0123456789abcdef0123456789abcdeg").unwrap_err();
        assert_eq!(e, KeyShapeError::NotHex { position: 32 });
    }

    #[test]
    fn debug_and_display_hide_the_secret() {
        let k = ApiKey::parse(KEY).unwrap();
        for shown in [
            format!("{k:?}"),
            format!("{k:#?}"),
            format!("{k}"),
            k.masked(),
        ] {
            assert!(!shown.contains("0123456789abcdef"), "{shown}");
            assert!(shown.contains(k.fingerprint().as_str()), "{shown}");
        }
        let r = Redacted::new(KEY.to_string());
        assert_eq!(format!("{r:?}"), "[redacted]");
        assert_eq!(format!("{r}"), "[redacted]");
        assert_eq!(r.expose(), KEY);
    }

    #[test]
    fn fingerprint_round_trips_and_differs_per_key() {
        let a = KeyFingerprint::of(KEY);
        let b = KeyFingerprint::of("omi_dev_ffffffffffffffffffffffffffffffff");
        assert_ne!(a, b);
        assert_eq!(KeyFingerprint::parse(a.as_str()), Some(a.clone()));
        assert_eq!(KeyFingerprint::parse("XYZ"), None);
        assert_eq!(serde_json::to_string(&a).unwrap(), format!("\"{a}\""));
    }

    #[test]
    fn scrub_removes_keys_and_bearer_tokens() {
        let text = format!("bad header: Authorization: Bearer {KEY}, also {KEY}; end");
        let s = scrub_secrets(&text);
        assert!(!s.contains("0123456789abcdef"), "{s}");
        assert_eq!(
            s,
            "bad header: Authorization: Bearer [redacted], also omi_dev_[redacted]; end"
        );
        assert_eq!(scrub_secrets("nothing here"), "nothing here");
        assert_eq!(scrub_secrets("OMI_DEV_ABC"), "OMI_DEV_[redacted]");
        assert_eq!(scrub_secrets("ends with bearer "), "ends with bearer ");
        assert_eq!(scrub_secrets("é bearer x é"), "é bearer [redacted] é");
    }

    #[test]
    fn env_wins_then_store() {
        let store = MemoryStore::new();
        store
            .write("omi_dev_ffffffffffffffffffffffffffffffff")
            .unwrap();
        let got = resolve(Some(KEY), &store).unwrap();
        assert_eq!(got.source, KeySource::Env);
        assert_eq!(got.key.expose_secret(), KEY);
        let got = resolve(Some("   "), &store).unwrap();
        assert_eq!(got.source, KeySource::Keyring);
        let got = resolve(None, &store).unwrap();
        assert_eq!(got.source, KeySource::Keyring);
    }

    #[test]
    fn bad_env_is_an_error_not_a_fallback() {
        let store = MemoryStore::new();
        login(&store, KEY).unwrap();
        let e = resolve(Some("omi_dev_nope"), &store).unwrap_err();
        assert!(matches!(e, CredentialError::BadShape { .. }));
        assert!(e.to_string().contains("OMI_API_KEY"), "{e}");
    }

    #[test]
    fn missing_and_unavailable_explain_the_env_var() {
        let e = resolve(None, &MemoryStore::new()).unwrap_err();
        assert!(matches!(e, CredentialError::Missing { .. }));
        assert!(e.to_string().contains("OMI_API_KEY"));

        let headless = MemoryStore::unavailable("D-Bus connection not found");
        let e = resolve(None, &headless).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("OMI_API_KEY") && msg.contains("D-Bus"),
            "{msg}"
        );
        let e = login(&headless, KEY).unwrap_err();
        assert!(e.to_string().contains("OMI_API_KEY"));
        assert!(!e.to_string().contains(KEY));
        assert!(logout(&headless).is_err());
    }

    #[test]
    fn login_logout_round_trip() {
        let store = MemoryStore::new();
        assert!(login(&store, "omi_dev_short").is_err());
        assert_eq!(store.read().unwrap(), None);
        let key = login(&store, KEY).unwrap();
        assert_eq!(resolve(None, &store).unwrap().key, key);
        assert!(logout(&store).unwrap());
        assert!(!logout(&store).unwrap());
        assert!(matches!(
            resolve(None, &store),
            Err(CredentialError::Missing { .. })
        ));
    }

    #[test]
    fn store_debug_hides_the_secret() {
        let store = MemoryStore::new();
        login(&store, KEY).unwrap();
        assert!(!format!("{store:?}").contains(KEY));
    }

    #[test]
    fn real_keyring_fails_cleanly_or_reads_nothing() {
        // On a headless machine this is the "no keyring" path; on a desktop the
        // entry does not exist. Either way: no panic, no hang, a clear message.
        let store = OsKeyring::new("omi-sync-test-never-written", "nobody");
        match resolve(None, &store) {
            Err(e @ CredentialError::Keyring { .. }) | Err(e @ CredentialError::Missing { .. }) => {
                assert!(e.to_string().contains("OMI_API_KEY"), "{e}");
                eprintln!("keyring here: {e}");
            }
            other => panic!("unexpected: {other:?}"),
        }
    }
}

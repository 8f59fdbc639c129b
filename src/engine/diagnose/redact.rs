//! Redaction of a diagnose report, by default: device ids and file names
//! become stable pseudonyms, the home directory `~`, and the API key never
//! appears (as in `sos clean` and Home Assistant's diagnostics).
//!
//! A pseudonym is a keyed hash of the original (`device-3f2a9c`,
//! `file-81d0e4.bin`): the same input always gives the same stand-in, in
//! every report and every format, so a support person can still follow the
//! story across reports without learning the id. Sections write what they
//! find as it is; [`Redactor::apply`] then rewrites every string of the
//! finished report, so no line can forget to redact.

use std::collections::BTreeMap;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::Report;
use crate::cloud::credentials::scrub_secrets;
use crate::store::{LedgerReader, StoreError};

/// The key of the pseudonym hash: fixed, so pseudonyms are stable across
/// runs and machines.
const PSEUDONYM_KEY: &[u8] = b"omi-sync diagnose pseudonym v1";

/// The stable pseudonym of `raw` as a `kind` (`device`, `file`): `kind-`
/// and six hex characters of a keyed SHA-256.
pub fn pseudonym(kind: &str, raw: &str) -> String {
    let mut h = Sha256::new();
    h.update(PSEUDONYM_KEY);
    h.update(kind.as_bytes());
    h.update([0]);
    h.update(raw.as_bytes());
    format!("{kind}-{}", &hex::encode(h.finalize())[..6])
}

/// Collects what to replace, then rewrites a report.
#[derive(Debug, Clone)]
pub struct Redactor {
    enabled: bool,
    /// Original → stand-in, applied longest original first.
    names: BTreeMap<String, String>,
    home: Option<String>,
    secret: Option<String>,
}

impl Redactor {
    /// A redactor; `enabled` false keeps names and paths (the key is
    /// removed all the same). `secret` is the API key, if one was found.
    pub fn new(enabled: bool, secret: Option<&str>) -> Self {
        let home = std::env::var("HOME")
            .ok()
            .map(|h| h.trim_end_matches('/').to_string())
            .filter(|h| h.len() > 1);
        Redactor {
            enabled,
            names: BTreeMap::new(),
            home,
            secret: secret.map(str::to_string),
        }
    }

    /// The stand-in of a device id (registered for the final rewrite).
    pub fn device(&mut self, raw: &str) -> String {
        if !self.enabled || raw.is_empty() {
            return raw.to_string();
        }
        let p = pseudonym("device", raw);
        self.names.insert(raw.to_string(), p.clone());
        p
    }

    /// The stand-in of a file (its name becomes a pseudonym with the same
    /// extension; the whole path is replaced by it wherever it appears).
    pub fn file(&mut self, path: &Path) -> String {
        let shown = path.display().to_string();
        if !self.enabled {
            return shown;
        }
        let name = path
            .file_name()
            .map_or_else(|| shown.clone(), |n| n.to_string_lossy().into_owned());
        let ext = path
            .extension()
            .map_or_else(String::new, |e| format!(".{}", e.to_string_lossy()));
        let p = format!("{}{ext}", pseudonym("file", &name));
        self.names.insert(name, p.clone());
        self.names.insert(shown, p.clone());
        p
    }

    /// Registers every device id and file name `reader`'s ledger holds
    /// (captures, where they came from, anomalies, rings, the outbox).
    pub fn learn(&mut self, reader: &LedgerReader) -> Result<(), StoreError> {
        for c in reader.captures()? {
            self.device(&c.meta.device);
            self.file(Path::new(&c.meta.file_name));
            self.origin(&c.meta.origin);
        }
        for a in reader.anomalies(None)? {
            self.origin(&a.origin);
        }
        for (device, _, _) in reader.resume_points()? {
            self.device(&device);
        }
        for r in reader.outbox()? {
            self.device(&r.push.device);
        }
        for r in reader.device_reports()? {
            self.device(&r.device);
            self.origin(&r.origin);
        }
        Ok(())
    }

    /// Registers what a capture's origin names: `ble:ID` a device,
    /// `image:PATH` and `sim:PATH` a file, a path a file.
    pub fn origin(&mut self, origin: &str) {
        match origin.split_once(':') {
            Some(("ble", id)) => {
                self.device(id);
            }
            Some(("image" | "sim", path)) => {
                self.file(Path::new(path));
            }
            _ if origin.contains('/') || origin.ends_with(".bin") => {
                self.file(Path::new(origin));
            }
            _ => {}
        }
    }

    /// A path with the home directory shown as `~`.
    pub fn home(&self, path: &Path) -> String {
        self.home_in(&path.display().to_string())
    }

    fn home_in(&self, text: &str) -> String {
        match &self.home {
            Some(h) if self.enabled => replace_words(text, h, "~"),
            _ => text.to_string(),
        }
    }

    /// Rewrites one string: names, then the home directory, then secrets.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        if let Some(key) = &self.secret {
            out = out.replace(key.as_str(), "[key]");
        }
        if self.enabled {
            let mut names: Vec<(&String, &String)> = self.names.iter().collect();
            names.sort_by_key(|(raw, _)| std::cmp::Reverse(raw.len()));
            for (raw, stand_in) in names {
                out = replace_words(&out, raw, stand_in);
            }
        }
        scrub_secrets(&self.home_in(&out))
    }

    /// The report with every string rewritten by [`Redactor::scrub`]
    /// (except the fields that name a kind, not a thing: severities, check
    /// and section names, remedy tags and services). Should the rewritten
    /// report not read back, none of it is kept: only that it failed.
    pub fn apply(&self, report: Report) -> Report {
        let mut value = serde_json::to_value(&report).unwrap_or_default();
        self.walk(&mut value);
        serde_json::from_value(value).unwrap_or_else(|e| Report {
            unreadable: vec![super::Unreadable {
                source: "data_dir".into(),
                error: format!("the report could not be redacted ({e}); nothing of it is shown"),
            }],
            findings: Vec::new(),
            sections: Vec::new(),
            chart: None,
            guard_drops: Vec::new(),
            shared_audio: Vec::new(),
            sources: super::Sources::default(),
            ..report
        })
    }

    fn walk(&self, v: &mut serde_json::Value) {
        const KINDS: [&str; 6] = ["severity", "check", "id", "remedy", "service", "source"];
        match v {
            serde_json::Value::String(s) => *s = self.scrub(s),
            serde_json::Value::Array(a) => a.iter_mut().for_each(|x| self.walk(x)),
            serde_json::Value::Object(o) => o
                .iter_mut()
                .filter(|(k, _)| !KINDS.contains(&k.as_str()))
                .for_each(|(_, x)| self.walk(x)),
            _ => {}
        }
    }
}

/// Whether `c` continues a name (so a match next to it is part of a longer word).
fn word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-'
}

/// `text` with every whole-word occurrence of `needle` replaced: a device
/// named `omi` is replaced in `omi: 3 files` but not in `omi-sync`.
fn replace_words(text: &str, needle: &str, with: &str) -> String {
    if needle.is_empty() {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut prev: Option<char> = None;
    while let Some(i) = rest.find(needle) {
        let before = rest[..i].chars().last().or(prev);
        let after = rest[i + needle.len()..].chars().next();
        let starts_word = needle.chars().next().is_some_and(word_char);
        let ends_word = needle.chars().last().is_some_and(word_char);
        let whole = !(starts_word && before.is_some_and(word_char)
            || ends_word && after.is_some_and(word_char));
        out.push_str(&rest[..i]);
        out.push_str(if whole { with } else { needle });
        prev = needle.chars().last();
        rest = &rest[i + needle.len()..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pseudonym_is_stable_and_differs_by_input_and_kind() {
        let a = pseudonym("device", "AA:BB:CC:DD:EE:FF");
        assert_eq!(a, pseudonym("device", "AA:BB:CC:DD:EE:FF"));
        assert!(
            a.starts_with("device-") && a.len() == "device-".len() + 6,
            "{a}"
        );
        assert_ne!(a, pseudonym("device", "AA:BB:CC:DD:EE:00"));
        assert_ne!(&a[7..], &pseudonym("file", "AA:BB:CC:DD:EE:FF")[5..]);
    }

    #[test]
    fn names_are_replaced_as_whole_words_only() {
        assert_eq!(replace_words("omi: 3 files", "omi", "D"), "D: 3 files");
        assert_eq!(replace_words("run omi-sync", "omi", "D"), "run omi-sync");
        assert_eq!(replace_words("omi/omi", "omi", "D"), "D/D");
        assert_eq!(replace_words("/home/u/x", "/home/u", "~"), "~/x");
        assert_eq!(
            replace_words("/home/user/x", "/home/u", "~"),
            "/home/user/x"
        );
    }

    #[test]
    fn scrub_replaces_names_files_and_the_key_and_redaction_off_keeps_names() {
        let mut r = Redactor::new(true, Some("omi_dev_0123456789abcdef"));
        let d = r.device("AA:BB");
        let f = r.file(Path::new("/tmp/in/OMI_opus_1700000000.bin"));
        let s = r.scrub("AA:BB sent /tmp/in/OMI_opus_1700000000.bin with omi_dev_0123456789abcdef");
        assert_eq!(s, format!("{d} sent {f} with [key]"));
        assert!(f.ends_with(".bin"));
        let mut plain = Redactor::new(false, Some("omi_dev_0123456789abcdef"));
        assert_eq!(plain.device("AA:BB"), "AA:BB");
        assert_eq!(plain.scrub("AA:BB omi_dev_0123456789abcdef"), "AA:BB [key]");
    }
}

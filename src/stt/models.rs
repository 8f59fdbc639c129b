//! Whisper model files: the table of whisper.cpp's ggml models, where a
//! model is found, and download (resumable, verified) / verify / list.
//!
//! Resolution order ([`resolve_model`]): an explicit path, then the
//! `OMI_SYNC_MODEL` environment variable, then
//! `<models dir>/ggml-<name>.bin`. A missing model is a clear error naming
//! `omi-sync models download <name>`.
//!
//! Downloads ([`ModelStore::download`]) go to `ggml-<name>.bin.part`, resume
//! with an HTTP `Range` request after an interruption, report progress, and
//! are renamed into place only after the size and SHA-256 match the table.
//!
//! The SHA-256 values are those of the files in the Hugging Face repository
//! `ggerganov/whisper.cpp` (`resolve/main/ggml-<name>.bin`): they agree
//! across independent public catalogs, among them the Nix fetch hashes in
//! voxtype's `nix/models.nix` (Nix checks them on every fetch) and
//! desktop apps' model tables that took them from Hugging Face's LFS
//! metadata; the sizes agree the same way.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::SttError;
use super::http::RetryPolicy;
use crate::cancel::Cancel;

/// The environment variable that points at a model file.
pub const MODEL_ENV: &str = "OMI_SYNC_MODEL";

/// whisper.cpp's model repository (append `/ggml-<name>.bin`).
pub const DEFAULT_BASE_URL: &str = "https://huggingface.co/ggerganov/whisper.cpp/resolve/main";

/// The model used when none is named.
pub const DEFAULT_MODEL: &str = "tiny.en";

/// One known model file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    /// Short name (`tiny.en`).
    pub name: String,
    /// File name (`ggml-tiny.en.bin`).
    pub file_name: String,
    /// Exact size in bytes.
    pub size: u64,
    /// SHA-256 of the file, lower-case hex.
    pub sha256: String,
    /// English-only model.
    pub english_only: bool,
}

impl ModelInfo {
    /// An entry; the file name is `ggml-<name>.bin`.
    pub fn new(name: &str, size: u64, sha256: &str) -> Self {
        ModelInfo {
            name: name.to_string(),
            file_name: format!("ggml-{name}.bin"),
            size,
            sha256: sha256.to_ascii_lowercase(),
            english_only: name.ends_with(".en"),
        }
    }
}

/// whisper.cpp's standard ggml models (float16), from its Hugging Face
/// repository. See the module documentation for where the hashes come from.
pub fn known_models() -> Vec<ModelInfo> {
    [
        (
            "tiny",
            77_691_713,
            "be07e048e1e599ad46341c8d2a135645097a538221678b7acdd1b1919c6e1b21",
        ),
        (
            "tiny.en",
            77_704_715,
            "921e4cf8686fdd993dcd081a5da5b6c365bfde1162e72b08d75ac75289920b1f",
        ),
        (
            "base",
            147_951_465,
            "60ed5bc3dd14eea856493d334349b405782ddcaf0028d4b5df4088345fba2efe",
        ),
        (
            "base.en",
            147_964_211,
            "a03779c86df3323075f5e796cb2ce5029f00ec8869eee3fdfb897afe36c6d002",
        ),
        (
            "small",
            487_601_967,
            "1be3a9b2063867b937e64e2ec7483364a79917e157fa98c5d94b5c1fffea987b",
        ),
        (
            "small.en",
            487_614_201,
            "c6138d6d58ecc8322097e0f987c32f1be8bb0a18532a3f88f734d1bbf9c41e5d",
        ),
        (
            "medium",
            1_533_763_059,
            "6c14d5adee5f86394037b4e4e8b59f1673b6cee10e3cf0b11bbdbee79c156208",
        ),
        (
            "medium.en",
            1_533_774_781,
            "cc37e93478338ec7700281a7ac30a10128929eb8f427dda2e865faa8f6da4356",
        ),
        (
            "large-v3",
            3_095_033_483,
            "64d182b440b98d5203c4f9bd541544d84c605196c4f7b845dfa11fb23594d1e2",
        ),
        (
            "large-v3-turbo",
            1_624_555_275,
            "1fc70f774d38eb169993ac391eea357ef47c88757ef72ee5943879b7e8e2bc69",
        ),
    ]
    .into_iter()
    .map(|(n, s, h)| ModelInfo::new(n, s, h))
    .collect()
}

/// Accepts `tiny.en`, `ggml-tiny.en` or `ggml-tiny.en.bin`.
pub fn short_name(name: &str) -> &str {
    let n = name.strip_suffix(".bin").unwrap_or(name);
    n.strip_prefix("ggml-").unwrap_or(n)
}

/// Finds the model file: `explicit`, else `$OMI_SYNC_MODEL`, else
/// `<models_dir>/ggml-<name>.bin`.
pub fn resolve_model(
    explicit: Option<&Path>,
    name: &str,
    models_dir: &Path,
) -> Result<PathBuf, SttError> {
    let env = std::env::var_os(MODEL_ENV);
    resolve_model_with(explicit, env.as_deref().map(Path::new), name, models_dir)
}

/// [`resolve_model`] with the environment value passed in (for tests and
/// callers that read the environment themselves).
pub fn resolve_model_with(
    explicit: Option<&Path>,
    env: Option<&Path>,
    name: &str,
    models_dir: &Path,
) -> Result<PathBuf, SttError> {
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(SttError::Model {
                message: format!(
                    "model file {} (given explicitly) does not exist",
                    p.display()
                ),
            })
        };
    }
    if let Some(p) = env.filter(|p| !p.as_os_str().is_empty()) {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(SttError::Model {
                message: format!(
                    "model file {} (from {MODEL_ENV}) does not exist",
                    p.display()
                ),
            })
        };
    }
    let short = short_name(name);
    let p = models_dir.join(format!("ggml-{short}.bin"));
    if p.is_file() {
        Ok(p)
    } else {
        Err(SttError::Model {
            message: format!(
                "Whisper model `{short}` is not installed (looked for {}); fetch it with \
                 `omi-sync models download {short}` or point {MODEL_ENV} at a ggml file",
                p.display()
            ),
        })
    }
}

/// Why a model operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The name is not in the table.
    #[error("unknown model `{name}`; known models: {known}")]
    Unknown {
        /// What was asked for.
        name: String,
        /// The names that exist.
        known: String,
    },
    /// The download failed.
    #[error("downloading {url}: {message}")]
    Download {
        /// From where.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The downloaded file is not the expected one.
    #[error(
        "{file}: SHA-256 is {actual}, expected {expected}; the partial file was removed, try again"
    )]
    Checksum {
        /// The file.
        file: PathBuf,
        /// From the table.
        expected: String,
        /// What it hashed to.
        actual: String,
    },
    /// A local file operation failed.
    #[error("{path}: {source}{hint}", hint = crate::disk::full_hint(source))]
    Io {
        /// Which file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Cancelled; the partial file stays for a later resume.
    #[error("download cancelled; the part downloaded is kept and a new download resumes it")]
    Cancelled,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ModelError + '_ {
    move |source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Download progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes on disk so far (including a resumed part).
    pub done: u64,
    /// Bytes expected.
    pub total: u64,
}

/// The state of one model on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// Not installed.
    Missing,
    /// Size and SHA-256 match the table.
    Ok,
    /// The size differs (`actual` bytes).
    WrongSize {
        /// Bytes on disk.
        actual: u64,
    },
    /// Right size, wrong content.
    WrongHash {
        /// What it hashed to.
        actual: String,
    },
}

/// A row of [`ModelStore::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// The model.
    pub info: ModelInfo,
    /// Installed file path, when present.
    pub installed: Option<PathBuf>,
    /// Bytes of an unfinished download, when one is waiting to resume.
    pub partial: Option<u64>,
}

/// The models directory plus the table and the download source.
#[derive(Debug, Clone)]
pub struct ModelStore {
    dir: PathBuf,
    base_url: String,
    table: Vec<ModelInfo>,
    retry: RetryPolicy,
}

impl ModelStore {
    /// A store in `dir` (usually `<data dir>/models`) with the standard table
    /// and whisper.cpp's repository.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ModelStore {
            dir: dir.into(),
            base_url: DEFAULT_BASE_URL.to_string(),
            table: known_models(),
            retry: RetryPolicy {
                timeout: Duration::from_secs(3600),
                ..RetryPolicy::default()
            },
        }
    }

    /// Downloads from a mirror instead (`<base>/ggml-<name>.bin`).
    pub fn with_base_url(mut self, base: impl Into<String>) -> Self {
        self.base_url = base.into().trim_end_matches('/').to_string();
        self
    }

    /// Uses another table (tests, private models).
    pub fn with_table(mut self, table: Vec<ModelInfo>) -> Self {
        self.table = table;
        self
    }

    /// Retries for downloads.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The table entry for `name`.
    pub fn info(&self, name: &str) -> Result<&ModelInfo, ModelError> {
        let short = short_name(name);
        self.table
            .iter()
            .find(|m| m.name == short)
            .ok_or_else(|| ModelError::Unknown {
                name: name.to_string(),
                known: self
                    .table
                    .iter()
                    .map(|m| m.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// Where `name` is (or would be) installed.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("ggml-{}.bin", short_name(name)))
    }

    fn part_path(&self, info: &ModelInfo) -> PathBuf {
        self.dir.join(format!("{}.part", info.file_name))
    }

    /// Every known model with what is on disk.
    pub fn list(&self) -> Vec<Listing> {
        self.table
            .iter()
            .map(|m| {
                let p = self.dir.join(&m.file_name);
                Listing {
                    info: m.clone(),
                    installed: p.is_file().then_some(p),
                    partial: fs::metadata(self.part_path(m)).ok().map(|md| md.len()),
                }
            })
            .collect()
    }

    /// Checks an installed model's size and SHA-256.
    pub fn verify(&self, name: &str) -> Result<Verification, ModelError> {
        let info = self.info(name)?.clone();
        let path = self.dir.join(&info.file_name);
        if !path.is_file() {
            return Ok(Verification::Missing);
        }
        verify_file(&path, &info)
    }

    /// Downloads `name` unless it is already installed and verified;
    /// resumes a `.part` left by an earlier attempt. `progress` is called as
    /// bytes arrive; setting `cancel` stops the download between chunks
    /// (the `.part` stays for later).
    pub fn download(
        &self,
        name: &str,
        progress: &mut dyn FnMut(Progress),
        cancel: &Cancel,
    ) -> Result<PathBuf, ModelError> {
        let info = self.info(name)?.clone();
        fs::create_dir_all(&self.dir).map_err(io_err(&self.dir))?;
        let dest = self.dir.join(&info.file_name);
        if dest.is_file() && verify_file(&dest, &info)? == Verification::Ok {
            progress(Progress {
                done: info.size,
                total: info.size,
            });
            return Ok(dest);
        }
        let part = self.part_path(&info);
        let url = format!("{}/{}", self.base_url, info.file_name);
        let client = crate::http::Client::new(crate::http::Settings {
            connect_timeout: Duration::from_secs(30),
            timeout: self.retry.timeout,
            user_agent: crate::http::user_agent(),
            no_proxy: crate::http::is_loopback_url(&url),
        })
        .map_err(|e| ModelError::Download {
            url: url.clone(),
            message: e.to_string(),
        })?;
        let mut attempt = 0;
        loop {
            match self.fetch_once(&client, &url, &part, &info, progress, cancel) {
                Ok(()) => break,
                Err(Fetch::Fatal(e)) => return Err(e),
                Err(Fetch::Retry(message)) => {
                    if attempt >= self.retry.max_retries {
                        return Err(ModelError::Download { url, message });
                    }
                    let wait = self.retry.backoff(attempt);
                    tracing::warn!(%url, attempt, %message, "model download interrupted; resuming");
                    cancel.sleep(wait).map_err(|_| ModelError::Cancelled)?;
                    attempt += 1;
                }
            }
        }
        // Size, then hash of the whole part, then rename.
        let actual = sha256_file(&part)?;
        if actual != info.sha256 {
            let _ = fs::remove_file(&part);
            return Err(ModelError::Checksum {
                file: dest,
                expected: info.sha256.clone(),
                actual,
            });
        }
        fs::rename(&part, &dest).map_err(io_err(&dest))?;
        if let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(dest)
    }

    /// One request: resume from the part's length, append until the end.
    fn fetch_once(
        &self,
        client: &crate::http::Client,
        url: &str,
        part: &Path,
        info: &ModelInfo,
        progress: &mut dyn FnMut(Progress),
        cancel: &Cancel,
    ) -> Result<(), Fetch> {
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(part)
            .map_err(|e| Fetch::Fatal(io_err(part)(e)))?;
        let mut have = file
            .metadata()
            .map_err(|e| Fetch::Fatal(io_err(part)(e)))?
            .len();
        if have > info.size {
            file.set_len(0).map_err(|e| Fetch::Fatal(io_err(part)(e)))?;
            have = 0;
        }
        if have == info.size {
            return Ok(());
        }
        if cancel.is_cancelled() {
            return Err(Fetch::Fatal(ModelError::Cancelled));
        }
        let mut req = client.request(crate::http::Method::GET, url);
        if have > 0 {
            req = req.header(reqwest::header::RANGE, format!("bytes={have}-"));
        }
        let resp = client.open(req).map_err(|e| Fetch::Retry(e.to_string()))?;
        let status = resp.status().as_u16();
        match status {
            206 => {
                let start = resp
                    .headers()
                    .get("content-range")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("bytes "))
                    .and_then(|v| v.split('-').next())
                    .and_then(|v| v.trim().parse::<u64>().ok());
                if start != Some(have) {
                    // The server resumed somewhere else: start over.
                    file.set_len(0).map_err(|e| Fetch::Fatal(io_err(part)(e)))?;
                    return Err(Fetch::Retry(format!(
                        "server resumed at {start:?}, not at byte {have}"
                    )));
                }
            }
            200 => {
                file.set_len(0).map_err(|e| Fetch::Fatal(io_err(part)(e)))?;
                have = 0;
            }
            416 => {
                // Our part is no prefix the server knows: start over.
                file.set_len(0).map_err(|e| Fetch::Fatal(io_err(part)(e)))?;
                return Err(Fetch::Retry("range not satisfiable; restarting".into()));
            }
            408 | 429 | 500..=599 => return Err(Fetch::Retry(format!("HTTP {status}"))),
            _ => {
                return Err(Fetch::Fatal(ModelError::Download {
                    url: url.to_string(),
                    message: format!("HTTP {status}"),
                }));
            }
        }
        file.seek(SeekFrom::End(0))
            .map_err(|e| Fetch::Fatal(io_err(part)(e)))?;
        let mut reader = resp.take(info.size + 1);
        let mut buf = vec![0u8; 256 * 1024];
        progress(Progress {
            done: have,
            total: info.size,
        });
        loop {
            if cancel.is_cancelled() {
                let _ = file.sync_all();
                return Err(Fetch::Fatal(ModelError::Cancelled));
            }
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    let _ = file.sync_all();
                    return Err(Fetch::Retry(format!("connection lost at byte {have}: {e}")));
                }
            };
            if have + n as u64 > info.size {
                file.set_len(0).map_err(|e| Fetch::Fatal(io_err(part)(e)))?;
                return Err(Fetch::Fatal(ModelError::Download {
                    url: url.to_string(),
                    message: format!("the server sent more than the expected {} bytes", info.size),
                }));
            }
            if let Err(e) = file.write_all(&buf[..n]) {
                // A write cut short (a full disk) may leave a torn tail: cut
                // the part back to what is known whole, so a resume asks
                // for the right byte.
                let _ = file.set_len(have);
                let _ = file.sync_all();
                return Err(Fetch::Fatal(io_err(part)(e)));
            }
            have += n as u64;
            progress(Progress {
                done: have,
                total: info.size,
            });
        }
        file.sync_all().map_err(|e| Fetch::Fatal(io_err(part)(e)))?;
        if have < info.size {
            return Err(Fetch::Retry(format!(
                "connection closed at byte {have} of {}",
                info.size
            )));
        }
        Ok(())
    }
}

enum Fetch {
    Retry(String),
    Fatal(ModelError),
}

/// SHA-256 of a file, lower-case hex.
pub fn sha256_file(path: &Path) -> Result<String, ModelError> {
    let mut f = File::open(path).map_err(io_err(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Checks `path` against `info`.
pub fn verify_file(path: &Path, info: &ModelInfo) -> Result<Verification, ModelError> {
    let len = fs::metadata(path).map_err(io_err(path))?.len();
    if len != info.size {
        return Ok(Verification::WrongSize { actual: len });
    }
    let actual = sha256_file(path)?;
    Ok(if actual == info.sha256 {
        Verification::Ok
    } else {
        Verification::WrongHash { actual }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_well_formed() {
        let t = known_models();
        assert!(t.len() >= 10);
        for m in &t {
            assert_eq!(m.sha256.len(), 64, "{}", m.name);
            assert!(m.sha256.chars().all(|c| c.is_ascii_hexdigit()));
            assert!(m.size > 70_000_000);
            assert_eq!(m.file_name, format!("ggml-{}.bin", m.name));
        }
        for n in ["tiny", "tiny.en", "base", "base.en", "small", "small.en"] {
            assert!(t.iter().any(|m| m.name == n), "{n}");
        }
    }

    #[test]
    fn resolution_order() {
        let dir = tempfile::tempdir().unwrap();
        let explicit = dir.path().join("x.bin");
        let env = dir.path().join("env.bin");
        let installed = dir.path().join("ggml-base.en.bin");
        for p in [&explicit, &env, &installed] {
            fs::write(p, b"m").unwrap();
        }
        let r =
            |e: Option<&Path>, v: Option<&Path>| resolve_model_with(e, v, "base.en", dir.path());
        assert_eq!(r(Some(&explicit), Some(&env)).unwrap(), explicit);
        assert_eq!(r(None, Some(&env)).unwrap(), env);
        assert_eq!(r(None, None).unwrap(), installed);
        assert_eq!(
            resolve_model_with(None, None, "ggml-base.en.bin", dir.path()).unwrap(),
            installed
        );
        let e = resolve_model_with(None, None, "small", dir.path()).unwrap_err();
        assert!(
            e.to_string().contains("omi-sync models download small"),
            "{e}"
        );
        assert!(e.is_fatal());
        let e = r(None, Some(&dir.path().join("nope"))).unwrap_err();
        assert!(e.to_string().contains(MODEL_ENV), "{e}");
    }

    #[test]
    fn unknown_models_list_the_known_ones() {
        let s = ModelStore::new("/tmp/x");
        let e = s.info("huge").unwrap_err();
        assert!(e.to_string().contains("tiny.en"), "{e}");
        assert!(s.info("ggml-tiny.en.bin").is_ok());
    }
}

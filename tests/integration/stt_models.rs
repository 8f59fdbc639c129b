//! Model download, resume and verify against a loopback server serving a
//! small fake "model" (the table is injected), with HTTP Range support and
//! connections cut on demand.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};

use omi_sync::cancel::Cancel;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use omi_sync::stt::RetryPolicy;
use omi_sync::stt::models::{self, ModelError, ModelInfo, ModelStore, Verification};

/// A fake model: deterministic bytes.
pub(crate) fn blob(n: usize) -> Vec<u8> {
    let mut s = 0x1234_5678u32;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            s as u8
        })
        .collect()
}

fn sha(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

#[derive(Default)]
struct Log {
    ranges: Vec<Option<u64>>,
    paths: Vec<String>,
}

/// Serves `data` at any `*.bin` path, honouring `Range: bytes=N-`. The first
/// `cut_first` responses stop after `cut_at` bytes of body and close the
/// connection (a dropped download).
pub(crate) struct Server {
    pub(crate) base: String,
    log: Arc<Mutex<Log>>,
}

pub(crate) fn serve(data: Vec<u8>, cut_first: usize, cut_at: usize, ignore_range: bool) -> Server {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}/models", l.local_addr().unwrap());
    let log = Arc::new(Mutex::new(Log::default()));
    let log2 = log.clone();
    let served = Arc::new(AtomicUsize::new(0));
    std::thread::spawn(move || {
        // Bounded: at most 50 connections, then the thread ends.
        for conn in l.incoming().take(50) {
            let Ok(conn) = conn else { continue };
            let n = served.fetch_add(1, Ordering::SeqCst);
            handle(conn, &data, n < cut_first, cut_at, ignore_range, &log2);
        }
    });
    Server { base, log }
}

fn handle(
    mut c: TcpStream,
    data: &[u8],
    cut: bool,
    cut_at: usize,
    ignore_range: bool,
    log: &Mutex<Log>,
) {
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut r = BufReader::new(c.try_clone().unwrap());
    let mut line = String::new();
    if r.read_line(&mut line).is_err() {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut range = None;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
        let lower = h.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("range: bytes=") {
            range = v.trim().trim_end_matches('-').parse::<u64>().ok();
        }
    }
    log.lock().unwrap().ranges.push(range);
    log.lock().unwrap().paths.push(path.clone());
    if !path.ends_with(".bin") {
        let _ = c
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    }
    let (status, start) = match range {
        Some(s) if !ignore_range && (s as usize) < data.len() => {
            ("206 Partial Content", s as usize)
        }
        Some(_) if !ignore_range => {
            let _ = c.write_all(b"HTTP/1.1 416 Range Not Satisfiable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            return;
        }
        _ => ("200 OK", 0),
    };
    let body = &data[start..];
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if start > 0 {
        head.push_str(&format!(
            "Content-Range: bytes {start}-{}/{}\r\n",
            data.len() - 1,
            data.len()
        ));
    }
    head.push_str("\r\n");
    let _ = c.write_all(head.as_bytes());
    let send = if cut {
        &body[..cut_at.min(body.len())]
    } else {
        body
    };
    let _ = c.write_all(send);
    let _ = c.flush();
    // Dropping the stream closes it; a cut one ends short of Content-Length.
    let _ = c.shutdown(std::net::Shutdown::Both);
    let mut sink = [0u8; 1];
    let _ = c.read(&mut sink);
}

pub(crate) fn store(dir: &std::path::Path, base: &str, data: &[u8]) -> ModelStore {
    ModelStore::new(dir)
        .with_base_url(base)
        .with_table(vec![ModelInfo::new(
            "fake.en",
            data.len() as u64,
            &sha(data),
        )])
        .with_retry(RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
            max_retry_after: Duration::from_secs(1),
            timeout: Duration::from_secs(20),
        })
}

#[test]
fn downloads_verifies_and_reports_progress() {
    let data = blob(3_000_000);
    let srv = serve(data.clone(), 0, 0, false);
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path(), &srv.base, &data);
    assert_eq!(s.verify("fake.en").unwrap(), Verification::Missing);
    let mut seen = Vec::new();
    let p = s
        .download("fake.en", &mut |p| seen.push(p), &Cancel::new())
        .unwrap();
    assert_eq!(p, dir.path().join("ggml-fake.en.bin"));
    assert_eq!(std::fs::read(&p).unwrap(), data);
    assert!(!dir.path().join("ggml-fake.en.bin.part").exists());
    assert!(seen.windows(2).all(|w| w[0].done <= w[1].done));
    assert_eq!(seen.last().unwrap().done, 3_000_000);
    assert_eq!(s.verify("fake.en").unwrap(), Verification::Ok);
    assert_eq!(srv.log.lock().unwrap().paths, ["/models/ggml-fake.en.bin"]);
    // Installed and verified: a second download is a no-op.
    s.download("fake.en", &mut |_| {}, &Cancel::new()).unwrap();
    assert_eq!(srv.log.lock().unwrap().paths.len(), 1);
    let l = s.list();
    assert_eq!(l[0].installed.as_deref(), Some(p.as_path()));
    // The resolver finds it by name.
    assert_eq!(
        models::resolve_model_with(None, None, "fake.en", dir.path()).unwrap(),
        p
    );
}

#[test]
fn resumes_a_dropped_download_with_range() {
    let data = blob(2_000_000);
    // The first two responses are cut after 700 kB.
    let srv = serve(data.clone(), 2, 700_000, false);
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path(), &srv.base, &data);
    let p = s.download("fake.en", &mut |_| {}, &Cancel::new()).unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), data);
    let ranges = srv.log.lock().unwrap().ranges.clone();
    assert_eq!(ranges.len(), 3);
    assert_eq!(ranges[0], None);
    assert_eq!(ranges[1], Some(700_000));
    assert_eq!(ranges[2], Some(1_400_000));
}

#[test]
fn resumes_a_part_left_by_an_earlier_run() {
    let data = blob(1_000_000);
    let srv = serve(data.clone(), 0, 0, false);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ggml-fake.en.bin.part"), &data[..123_456]).unwrap();
    let s = store(dir.path(), &srv.base, &data);
    assert_eq!(s.list()[0].partial, Some(123_456));
    let mut first = None;
    s.download(
        "fake.en",
        &mut |p| {
            first.get_or_insert(p.done);
        },
        &Cancel::new(),
    )
    .unwrap();
    assert_eq!(first, Some(123_456), "progress starts from the part");
    assert_eq!(srv.log.lock().unwrap().ranges, [Some(123_456)]);
    assert_eq!(s.verify("fake.en").unwrap(), Verification::Ok);
}

#[test]
fn server_without_range_support_restarts_cleanly() {
    let data = blob(500_000);
    let srv = serve(data.clone(), 0, 0, true);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ggml-fake.en.bin.part"), &data[..1000]).unwrap();
    let s = store(dir.path(), &srv.base, &data);
    let p = s.download("fake.en", &mut |_| {}, &Cancel::new()).unwrap();
    assert_eq!(std::fs::read(p).unwrap(), data);
}

#[test]
fn wrong_content_is_refused_and_removed() {
    let data = blob(400_000);
    let mut other = data.clone();
    other[1000] ^= 1;
    let srv = serve(other, 0, 0, false);
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path(), &srv.base, &data);
    let e = s
        .download("fake.en", &mut |_| {}, &Cancel::new())
        .unwrap_err();
    assert!(matches!(e, ModelError::Checksum { .. }), "{e}");
    assert!(!dir.path().join("ggml-fake.en.bin").exists());
    assert!(!dir.path().join("ggml-fake.en.bin.part").exists());
}

#[test]
fn verify_spots_damage() {
    let data = blob(10_000);
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path(), "http://127.0.0.1:9", &data);
    let p = dir.path().join("ggml-fake.en.bin");
    std::fs::write(&p, &data[..9_999]).unwrap();
    assert_eq!(
        s.verify("fake.en").unwrap(),
        Verification::WrongSize { actual: 9_999 }
    );
    let mut bad = data.clone();
    bad[0] ^= 0xff;
    std::fs::write(&p, &bad).unwrap();
    assert!(matches!(
        s.verify("fake.en").unwrap(),
        Verification::WrongHash { .. }
    ));
}

#[test]
fn cancel_keeps_the_part_for_later() {
    let data = blob(3_000_000);
    let srv = serve(data.clone(), 0, 0, false);
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path(), &srv.base, &data);
    let cancel = Cancel::new();
    let e = s
        .download(
            "fake.en",
            &mut |p| {
                if p.done > 0 {
                    cancel.cancel();
                }
            },
            &cancel,
        )
        .unwrap_err();
    assert!(matches!(e, ModelError::Cancelled), "{e}");
    let part = std::fs::metadata(dir.path().join("ggml-fake.en.bin.part"))
        .unwrap()
        .len();
    assert!(part > 0 && part < 3_000_000);
    let p = s.download("fake.en", &mut |_| {}, &Cancel::new()).unwrap();
    assert_eq!(std::fs::read(p).unwrap(), data);
}

#[test]
fn missing_file_on_the_server_is_an_error() {
    let data = blob(1000);
    let srv = serve(data.clone(), 0, 0, false);
    let dir = tempfile::tempdir().unwrap();
    let s = ModelStore::new(dir.path())
        .with_base_url(format!(
            "{}/nothing-here/x",
            srv.base.trim_end_matches("/models")
        ))
        .with_table(vec![ModelInfo {
            file_name: "ggml-fake.en.txt".into(),
            ..ModelInfo::new("fake.en", 1000, &sha(&data))
        }]);
    let e = s
        .download("fake.en", &mut |_| {}, &Cancel::new())
        .unwrap_err();
    assert!(e.to_string().contains("404"), "{e}");
}

/// The real model passes the file check; files whisper.cpp would abort on
/// (the magic alone, the magic and random bytes, a cut download) make
/// `transcribe` exit 7 with a message, and `--auto` leaves the speech
/// pending, instead of the process dying inside whisper.cpp (exit 134).
#[test]
fn a_model_file_that_is_not_whole_is_refused_before_whisper_cpp_reads_it() {
    let real = crate::stt_common::model_path().expect("the real model");
    assert_eq!(omi_sync::stt::ggml_file::check(&real), Ok(()));
    let sb = crate::common::Sandbox::new();
    let inputs = sb.inputs();
    crate::common::write_demo(&inputs);
    assert_eq!(sb.run(&["import", inputs.to_str().unwrap()]).code, 0);
    let bytes = std::fs::read(&real).unwrap();
    let mut random = b"lmgg".to_vec();
    random.extend(blob(100_000));
    for (name, body) in [
        ("magic", b"lmgg".to_vec()),
        ("random", random),
        ("cut", bytes[..bytes.len() / 2].to_vec()),
    ] {
        let model = sb.dir.path().join(format!("{name}.bin"));
        std::fs::write(&model, &body).unwrap();
        let out = sb
            .cmd()
            .env("OMI_SYNC_MODEL", &model)
            .args(["transcribe"])
            .output()
            .unwrap();
        let run = crate::common::Run::from(out);
        assert_eq!(run.code, 7, "{name}: {}{}", run.stdout, run.stderr);
        assert!(
            run.stderr.contains("is not a whole Whisper model"),
            "{name}: {}",
            run.stderr
        );
        let out = sb
            .cmd()
            .env("OMI_SYNC_MODEL", &model)
            .args(["--auto", "--source", "demo", "--dry-run"])
            .output()
            .unwrap();
        let run = crate::common::Run::from(out);
        assert_ne!(run.code, 134, "{name}: {}{}", run.stdout, run.stderr);
        assert!(
            run.stderr.contains("is not a whole Whisper model")
                || run.stdout.contains("is not a whole Whisper model"),
            "{name}: {}{}",
            run.stdout,
            run.stderr
        );
    }
    let pending = sb.run(&["segments", "--json"]).json();
    assert!(
        pending.to_string().contains("\"pending\""),
        "speech left pending"
    );
}

//! Shared helpers for the integration tests: the contract server, a private
//! D-Bus session bus, and a few fixtures for the cloud tests.

#![allow(dead_code)]

pub mod contract_server;
pub mod session_bus;

use std::time::Duration;

use omi_sync::clock::UtcMillis;
use omi_sync::cloud::api::{ClientConfig, OmiClient};
use omi_sync::cloud::credentials::ApiKey;
use omi_sync::cloud::payload::{Piece, PushConversation};

use contract_server::ContractServer;

/// Serves `app` on a free loopback port from a thread of its own (a
/// two-worker runtime) for at most `lifetime`; returns its address.
pub fn serve_on_loopback(app: axum::Router, lifetime: Duration) -> std::net::SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(l.local_addr().unwrap()).unwrap();
            // Bounded: the test process ends the server.
            let _ = tokio::time::timeout(lifetime, axum::serve(l, app)).await;
        });
    });
    rx.recv().unwrap()
}

/// 2024-05-29T16:26:40Z.
pub const T0: i64 = 1_717_000_000_000;

/// A client for `server` with `key` and a short overall timeout.
pub fn client_with(server: &ContractServer, key: &str, timeout: Duration) -> OmiClient {
    let config = ClientConfig {
        timeout,
        connect_timeout: Duration::from_secs(2),
        ..ClientConfig::with_base_url(&server.base_url())
    };
    OmiClient::new(config, ApiKey::parse(key).expect("test key")).expect("client")
}

/// A client for `server` with the default test key and a 5 s timeout.
pub fn client(server: &ContractServer) -> OmiClient {
    client_with(server, contract_server::TEST_KEY, Duration::from_secs(5))
}

/// A conversation of `n` pieces, 1 s of speech every 1.5 s, alternating
/// speakers every six pieces, identified by `tag`.
pub fn conversation(tag: &str, n: usize) -> PushConversation {
    let pieces: Vec<Piece> = (0..n as i64)
        .map(|i| Piece {
            start: UtcMillis(T0 + i * 1500),
            end: UtcMillis(T0 + i * 1500 + 1000),
            text: format!("{tag} words {i}"),
            speaker: Some(((i / 6) % 2) as u32),
        })
        .collect();
    PushConversation {
        member_segment_keys: (0..n.max(1)).map(|i| format!("{tag}/seg-{i}")).collect(),
        started_at: UtcMillis(T0),
        finished_at: UtcMillis(T0 + n.max(1) as i64 * 1500),
        pieces,
        language: "en".to_string(),
    }
}

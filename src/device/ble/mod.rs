//! The pendant over Bluetooth Low Energy, with `btleplug`.
//!
//! [`Ble::open`] finds the host's first Bluetooth adapter; [`Ble::scan`]
//! lists pendants advertising the storage service
//! ([`STORAGE_SERVICE_UUID`]); [`Ble::connector`] gives a [`Connector`] for
//! one of them that [`crate::device::session::pull`] drives. btleplug is
//! async: it runs on a tokio runtime on a thread of its own, owned by
//! [`Ble`] ([`runtime`]), and every GATT call hands it a future and waits
//! for the result over a channel. So these calls work from any thread,
//! including one that is inside another tokio runtime (where building or
//! `block_on`-ing a runtime would panic), and every wait that can be long
//! (scanning, connecting) gives up soon after the pull's cancel token fires.
//!
//! Per connection: find the pendant (by address or name, scanning for the
//! storage service), connect, discover services, ask for throughput-optimised
//! connection parameters where the platform allows it (the ATT MTU itself is
//! negotiated by the platform when it connects: BlueZ asks for 517, and
//! [`GattLink::request_mtu`] reports what was agreed), subscribe to the
//! control characteristic, forward its notifications into a channel, and
//! watch the adapter for this pendant's disconnect, which every later call
//! reports as [`LinkError::Disconnected`] (after the notifications that came
//! before it).
//!
//! A host without Bluetooth is an error that says what is missing
//! ([`BleError`]), never a panic: no system D-Bus, no BlueZ, no adapter, an
//! adapter that is off, or no permission.

mod error;
pub mod runtime;

pub use error::BleError;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use btleplug::api::{
    Central, CentralEvent, CentralState, Characteristic, ConnectionParameterPreset, Manager as _,
    Peripheral as _, ScanFilter, WriteType,
};
use btleplug::platform::{Adapter, Manager, Peripheral};
use futures::StreamExt;
use uuid::Uuid;

use self::error::{ble_err, link_err};
use self::runtime::{BleRuntime, CallError};
use crate::cancel::Cancel;
use crate::device::link::{Connector, GattLink, LinkError};
use crate::device::ring::{
    CONTROL_CHAR_UUID, STATUS_CHAR_UUID, STORAGE_SERVICE_UUID, TIME_CHAR_UUID,
};

/// How long one GATT operation may take before the link counts as dropped.
const GATT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long connecting (and discovering services) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a disconnect is waited for after a cancel (it goes on in the
/// background after that).
const CANCELLED_DISCONNECT_WAIT: Duration = Duration::from_millis(300);

/// A pendant seen while scanning.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FoundDevice {
    /// Its address (what `--device` takes).
    pub id: String,
    /// Its advertised name.
    pub name: Option<String>,
    /// Signal strength, dBm.
    pub rssi: Option<i16>,
}

/// The host's Bluetooth: the runtime btleplug runs on, and the first adapter.
pub struct Ble {
    rt: Arc<BleRuntime>,
    adapter: Adapter,
}

impl fmt::Debug for Ble {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ble").finish_non_exhaustive()
    }
}

fn storage_uuid() -> Uuid {
    Uuid::from_u128(STORAGE_SERVICE_UUID)
}

/// A call that cannot be cancelled and did not come back.
fn gone(_: CallError) -> BleError {
    BleError::Other("the Bluetooth runtime stopped".into())
}

impl Ble {
    /// Connects to the platform's Bluetooth stack and takes its first
    /// adapter, checking that it is powered.
    pub fn open() -> Result<Ble, BleError> {
        let rt = BleRuntime::start()
            .map_err(|e| BleError::Other(format!("cannot start the Bluetooth runtime: {e}")))?;
        let adapter = rt
            .call(
                async {
                    let manager = tokio::time::timeout(GATT_TIMEOUT, Manager::new())
                        .await
                        .map_err(|_| BleError::Other("the Bluetooth stack did not answer".into()))?
                        .map_err(ble_err)?;
                    let adapters = manager.adapters().await.map_err(ble_err)?;
                    let adapter = adapters.into_iter().next().ok_or(BleError::NoAdapter)?;
                    if let Ok(CentralState::PoweredOff) = adapter.adapter_state().await {
                        return Err(BleError::PoweredOff);
                    }
                    Ok(adapter)
                },
                None,
            )
            .map_err(gone)??;
        Ok(Ble {
            rt: Arc::new(rt),
            adapter,
        })
    }

    /// Scans for `timeout` and lists the pendants that advertise the storage
    /// service, strongest signal first.
    pub fn scan(&self, timeout: Duration) -> Result<Vec<FoundDevice>, BleError> {
        let adapter = self.adapter.clone();
        self.rt
            .call(
                async move {
                    adapter
                        .start_scan(ScanFilter {
                            services: vec![storage_uuid()],
                        })
                        .await
                        .map_err(ble_err)?;
                    tokio::time::sleep(timeout).await;
                    let _ = adapter.stop_scan().await;
                    let mut found = BTreeMap::new();
                    for p in adapter.peripherals().await.map_err(ble_err)? {
                        let Ok(Some(props)) = p.properties().await else {
                            continue;
                        };
                        if !props.services.is_empty() && !props.services.contains(&storage_uuid()) {
                            continue;
                        }
                        let id = props.address.to_string();
                        found.insert(
                            id.clone(),
                            FoundDevice {
                                id,
                                name: props.local_name,
                                rssi: props.rssi,
                            },
                        );
                    }
                    let mut out: Vec<FoundDevice> = found.into_values().collect();
                    out.sort_by_key(|d| std::cmp::Reverse(d.rssi.unwrap_or(i16::MIN)));
                    Ok(out)
                },
                None,
            )
            .map_err(gone)?
    }

    /// A connector for the pendant with this address (or advertised name),
    /// scanning for it up to `scan_timeout` on every (re)connect.
    pub fn connector(&self, id: &str, scan_timeout: Duration) -> BleConnector {
        BleConnector {
            rt: Arc::clone(&self.rt),
            adapter: self.adapter.clone(),
            id: id.to_string(),
            scan_timeout,
            last_error: None,
        }
    }
}

/// Makes connections to one pendant (see the module docs).
pub struct BleConnector {
    rt: Arc<BleRuntime>,
    adapter: Adapter,
    id: String,
    scan_timeout: Duration,
    /// Why the last connect failed, classified (for the final message).
    pub last_error: Option<BleError>,
}

/// Finds the pendant by address or name, scanning for it up to `scan_timeout`.
async fn find(
    adapter: Adapter,
    id: String,
    scan_timeout: Duration,
) -> Result<Peripheral, BleError> {
    let wanted = id.to_ascii_lowercase();
    let matches = |p: &Peripheral, name: Option<&str>| {
        p.address().to_string().to_ascii_lowercase() == wanted
            || name.is_some_and(|n| n.to_ascii_lowercase() == wanted)
    };
    let started = Instant::now();
    let mut scanning = false;
    loop {
        for p in adapter.peripherals().await.map_err(ble_err)? {
            let name = p
                .properties()
                .await
                .ok()
                .flatten()
                .and_then(|pr| pr.local_name);
            if matches(&p, name.as_deref()) {
                if scanning {
                    let _ = adapter.stop_scan().await;
                }
                return Ok(p);
            }
        }
        if started.elapsed() >= scan_timeout {
            if scanning {
                let _ = adapter.stop_scan().await;
            }
            return Err(BleError::NotFound {
                id,
                waited: scan_timeout,
            });
        }
        if !scanning {
            adapter
                .start_scan(ScanFilter {
                    services: vec![storage_uuid()],
                })
                .await
                .map_err(ble_err)?;
            scanning = true;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A stream btleplug hands out.
type Events<T> = std::pin::Pin<Box<dyn futures::Stream<Item = T> + Send>>;

/// What a connection needs once it is up.
struct Opened {
    peripheral: Peripheral,
    control: Characteristic,
    status: Characteristic,
    time: Option<Characteristic>,
    notifications: Events<btleplug::api::ValueNotification>,
    events: Events<CentralEvent>,
}

/// Finds, connects, discovers and subscribes; a failure to find is a
/// [`BleError`] (kept for the final message), anything later a link error.
async fn open_link(
    adapter: Adapter,
    id: String,
    scan_timeout: Duration,
) -> Result<Opened, (LinkError, Option<BleError>)> {
    let p = find(adapter.clone(), id, scan_timeout)
        .await
        .map_err(|e| (LinkError::Other(e.to_string()), Some(e)))?;
    let link = |e: LinkError| (e, None);
    let timed = |what: &'static str| {
        move |_| {
            link(LinkError::Disconnected(format!(
                "{what} took longer than {CONNECT_TIMEOUT:?}"
            )))
        }
    };
    tokio::time::timeout(CONNECT_TIMEOUT, p.connect())
        .await
        .map_err(timed("connecting"))?
        .map_err(|e| link(link_err(e)))?;
    tokio::time::timeout(CONNECT_TIMEOUT, p.discover_services())
        .await
        .map_err(timed("discovering services"))?
        .map_err(|e| link(link_err(e)))?;
    let chars = p.characteristics();
    let find = |uuid: u128| {
        chars
            .iter()
            .find(|c| c.uuid == Uuid::from_u128(uuid))
            .cloned()
    };
    let control = find(CONTROL_CHAR_UUID).ok_or_else(|| {
        link(LinkError::Unsupported(
            "the ring storage service (firmware 3.0.20 or later is needed)".into(),
        ))
    })?;
    let status = find(STATUS_CHAR_UUID).ok_or_else(|| {
        link(LinkError::Unsupported(
            "the storage status characteristic".into(),
        ))
    })?;
    let time = find(TIME_CHAR_UUID);
    // Faster connection intervals for the bulk transfer, where supported.
    let _ = p
        .request_connection_parameters(ConnectionParameterPreset::ThroughputOptimized)
        .await;
    // Listen before subscribing, so nothing that follows is missed.
    let notifications = p.notifications().await.map_err(|e| link(link_err(e)))?;
    let events = adapter.events().await.map_err(|e| link(link_err(e)))?;
    p.subscribe(&control).await.map_err(|e| link(link_err(e)))?;
    Ok(Opened {
        peripheral: p,
        control,
        status,
        time,
        notifications,
        events,
    })
}

impl BleConnector {
    /// Starts the tasks that forward the control characteristic's
    /// notifications into a channel and watch for this pendant's disconnect.
    fn watch(
        &self,
        mut stream: Events<btleplug::api::ValueNotification>,
        mut events: Events<CentralEvent>,
        p: &Peripheral,
        control: &Characteristic,
    ) -> (
        mpsc::Receiver<Vec<u8>>,
        Arc<AtomicBool>,
        Vec<tokio::task::JoinHandle<()>>,
    ) {
        let (tx, rx) = mpsc::channel();
        let dropped = Arc::new(AtomicBool::new(false));
        let control_uuid = control.uuid;
        let forward = self.rt.spawn(async move {
            while let Some(n) = stream.next().await {
                if n.uuid == control_uuid && tx.send(n.value).is_err() {
                    break;
                }
            }
        });
        let (id, flag) = (p.id(), Arc::clone(&dropped));
        let watch = self.rt.spawn(async move {
            while let Some(ev) = events.next().await {
                if matches!(&ev, CentralEvent::DeviceDisconnected(d) if *d == id) {
                    flag.store(true, Ordering::SeqCst);
                    break;
                }
            }
        });
        (rx, dropped, vec![forward, watch])
    }
}

impl Connector for BleConnector {
    fn device_id(&self) -> String {
        self.id.clone()
    }

    fn connect(&mut self, cancel: &Cancel) -> Result<Box<dyn GattLink>, LinkError> {
        self.last_error = None;
        let opened = match self.rt.call(
            open_link(self.adapter.clone(), self.id.clone(), self.scan_timeout),
            Some(cancel),
        ) {
            Ok(Ok(o)) => o,
            Ok(Err((e, classified))) => {
                self.last_error =
                    Some(classified.unwrap_or_else(|| BleError::classify(&e.to_string())));
                return Err(e);
            }
            Err(CallError::Cancelled) => return Err(LinkError::Cancelled),
            Err(CallError::Gone) => {
                return Err(LinkError::Other("the Bluetooth runtime stopped".into()));
            }
        };
        let Opened {
            peripheral,
            control,
            status,
            time,
            notifications,
            events,
        } = opened;
        let (rx, dropped, tasks) = self.watch(notifications, events, &peripheral, &control);
        Ok(Box::new(BleLink {
            rt: Arc::clone(&self.rt),
            cancel: cancel.clone(),
            peripheral,
            control,
            status,
            time,
            rx,
            dropped,
            tasks,
        }))
    }
}

/// One connection to a pendant.
pub struct BleLink {
    rt: Arc<BleRuntime>,
    /// The pull's token: a GATT call in flight gives up when it fires.
    cancel: Cancel,
    peripheral: Peripheral,
    control: Characteristic,
    status: Characteristic,
    time: Option<Characteristic>,
    rx: mpsc::Receiver<Vec<u8>>,
    dropped: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl BleLink {
    fn check(&self) -> Result<(), LinkError> {
        if self.dropped.load(Ordering::SeqCst) {
            Err(LinkError::Disconnected("the pendant disconnected".into()))
        } else {
            Ok(())
        }
    }

    /// Runs one GATT operation on the runtime, bounded by [`GATT_TIMEOUT`]
    /// (a timeout is a drop) and by the cancel token.
    fn gatt<T, F>(&self, what: &'static str, op: F) -> Result<T, LinkError>
    where
        T: Send + 'static,
        F: std::future::Future<Output = Result<T, btleplug::Error>> + Send + 'static,
    {
        self.check()?;
        match self.rt.call(
            async move { tokio::time::timeout(GATT_TIMEOUT, op).await },
            Some(&self.cancel),
        ) {
            Ok(Ok(r)) => r.map_err(link_err),
            Ok(Err(_)) => Err(LinkError::Disconnected(format!("{what} timed out"))),
            Err(CallError::Cancelled) => Err(LinkError::Cancelled),
            Err(CallError::Gone) => Err(LinkError::Other("the Bluetooth runtime stopped".into())),
        }
    }

    fn write(&self, ch: &Characteristic, bytes: &[u8]) -> Result<(), LinkError> {
        let (p, ch, bytes) = (self.peripheral.clone(), ch.clone(), bytes.to_vec());
        self.gatt("a GATT write", async move {
            p.write(&ch, &bytes, WriteType::WithResponse).await
        })
    }

    fn stop_tasks(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}

impl GattLink for BleLink {
    fn mtu(&self) -> u16 {
        self.peripheral.mtu()
    }

    fn write_control(&mut self, command: &[u8]) -> Result<(), LinkError> {
        self.write(&self.control, command)
    }

    fn write_time(&mut self, value: [u8; 4]) -> Result<(), LinkError> {
        match &self.time {
            Some(ch) => self.write(ch, &value),
            None => {
                tracing::warn!("the pendant has no time-sync characteristic; time not written");
                Ok(())
            }
        }
    }

    fn read_status(&mut self) -> Result<Vec<u8>, LinkError> {
        let (p, ch) = (self.peripheral.clone(), self.status.clone());
        self.gatt("reading status", async move { p.read(&ch).await })
    }

    fn recv_notification(&mut self, timeout: Duration) -> Result<Option<Vec<u8>>, LinkError> {
        // What arrived before a disconnect is delivered first.
        if let Ok(n) = self.rx.try_recv() {
            return Ok(Some(n));
        }
        self.check()?;
        match self.rx.recv_timeout(timeout) {
            Ok(n) => Ok(Some(n)),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(LinkError::Disconnected(
                "the notification stream ended".into(),
            )),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                self.check()?;
                Ok(None)
            }
        }
    }

    fn disconnect(&mut self) -> Result<(), LinkError> {
        self.stop_tasks();
        let p = self.peripheral.clone();
        let disconnect = async move {
            let _ = tokio::time::timeout(GATT_TIMEOUT, p.disconnect()).await;
        };
        if self.cancel.is_cancelled() {
            // Stop within the cancel's budget: wait a little, then let the
            // disconnect finish in the background.
            let done = Cancel::new();
            let (d, rt) = (done.clone(), Arc::clone(&self.rt));
            rt.detach(async move {
                disconnect.await;
                d.cancel();
            });
            let _ = done.sleep(CANCELLED_DISCONNECT_WAIT);
        } else {
            let _ = self.rt.call(disconnect, None);
        }
        Ok(())
    }
}

impl Drop for BleLink {
    fn drop(&mut self) {
        self.stop_tasks();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Opening Bluetooth from inside a tokio runtime (a TUI or server
    /// calling the engine) must not panic. This host has no Bluetooth, so
    /// what is checked is that it fails cleanly, with a classified error.
    #[test]
    fn opening_bluetooth_inside_a_tokio_runtime_does_not_panic() {
        for multi in [false, true] {
            let rt = if multi {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
            } else {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
            }
            .unwrap();
            let outcome = rt.block_on(async {
                match Ble::open() {
                    Ok(ble) => {
                        // A host with an adapter: a short scan works too.
                        ble.scan(Duration::from_millis(50)).map(|_| ())
                    }
                    Err(e) => Err(e),
                }
            });
            if let Err(e) = outcome {
                assert!(!e.to_string().is_empty());
                assert!(
                    !matches!(&e, BleError::Other(m) if m.contains("runtime")),
                    "the runtime itself failed: {e}"
                );
            }
        }
    }
}

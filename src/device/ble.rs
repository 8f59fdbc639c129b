//! The pendant over Bluetooth Low Energy, with `btleplug`.
//!
//! [`Ble::open`] finds the host's first Bluetooth adapter; [`Ble::scan`]
//! lists pendants advertising the storage service
//! ([`STORAGE_SERVICE_UUID`]); [`Ble::connector`] gives a [`Connector`] for
//! one of them that [`crate::device::session::pull`] drives. btleplug is
//! async: a small tokio runtime lives inside [`Ble`] and every GATT call is
//! made with `block_on` from the (synchronous) session, as the recipe in
//! [`crate::device::link`] describes.
//!
//! Per connection: find the pendant (by address or name, scanning for the
//! storage service), connect, discover services, ask for throughput-optimised
//! connection parameters where the platform allows it (the ATT MTU itself is
//! negotiated by the platform, BlueZ asks for 517; [`GattLink::mtu`] reports
//! what was agreed), subscribe to the control characteristic, forward its
//! notifications into a channel, and watch the adapter for this pendant's
//! disconnect, which every later call reports as
//! [`LinkError::Disconnected`] (after the notifications that came before it).
//!
//! A host without Bluetooth is an error that says what to do
//! ([`BleError`]), never a panic: no system D-Bus, no BlueZ, no adapter, an
//! adapter that is off, or no permission.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use btleplug::api::{
    Central, CentralEvent, CentralState, Characteristic, ConnectionParameterPreset, Manager as _,
    Peripheral as _, ScanFilter, WriteType,
};
use btleplug::platform::{Adapter, Manager, Peripheral};
use futures::StreamExt;
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::device::link::{Connector, GattLink, LinkError};
use crate::device::ring::{
    CONTROL_CHAR_UUID, STATUS_CHAR_UUID, STORAGE_SERVICE_UUID, TIME_CHAR_UUID,
};

/// How long one GATT operation may take before the link counts as dropped.
const GATT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long connecting (and discovering services) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// Why Bluetooth cannot be used on this host, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BleError {
    /// No system D-Bus (BlueZ talks over it).
    NoSystemBus(String),
    /// D-Bus is there, BlueZ (`bluetoothd`) is not.
    NoBluez(String),
    /// BlueZ has no adapter.
    NoAdapter,
    /// The adapter is switched off or blocked.
    PoweredOff,
    /// The user may not use Bluetooth.
    Permission(String),
    /// The pendant was not found while scanning.
    NotFound {
        /// The address or name asked for.
        id: String,
        /// How long it was looked for.
        waited: Duration,
    },
    /// Anything else the Bluetooth stack reported.
    Other(String),
}

impl BleError {
    /// Whether trying again later can help (the pendant out of range or
    /// asleep), as opposed to needing a person to fix the host.
    pub fn is_temporary(&self) -> bool {
        matches!(self, BleError::NotFound { .. } | BleError::Other(_))
    }

    /// Classifies an error from the Bluetooth stack by what it says.
    pub fn classify(message: &str) -> BleError {
        let m = message.to_ascii_lowercase();
        if m.contains("system_bus_socket")
            || m.contains("failed to connect to socket")
            || (m.contains("dbus")
                && (m.contains("no such file") || m.contains("connection refused")))
            || m.contains("unable to autolaunch")
        {
            BleError::NoSystemBus(message.to_string())
        } else if m.contains("org.bluez")
            && (m.contains("not provided") || m.contains("serviceunknown") || m.contains("unknown"))
            || m.contains("name org.bluez was not provided")
        {
            BleError::NoBluez(message.to_string())
        } else if m.contains("permission")
            || m.contains("accessdenied")
            || m.contains("access denied")
            || m.contains("not authorized")
        {
            BleError::Permission(message.to_string())
        } else if m.contains("no bluetooth adapter") {
            BleError::NoAdapter
        } else {
            BleError::Other(message.to_string())
        }
    }
}

impl fmt::Display for BleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BleError::NoSystemBus(e) => write!(
                f,
                "Bluetooth is not available: there is no system D-Bus, which BlueZ (the Linux \
                 Bluetooth service) needs ({e}). Install and start them (Debian/Ubuntu: \
                 `sudo apt install bluez dbus && sudo systemctl start dbus bluetooth`), or read \
                 the pendant's card with `omi-sync pull --image PATH`"
            ),
            BleError::NoBluez(e) => write!(
                f,
                "Bluetooth is not available: BlueZ (bluetoothd) is not running ({e}). Start it \
                 (`sudo systemctl start bluetooth`; Debian/Ubuntu: `sudo apt install bluez` first)"
            ),
            BleError::NoAdapter => f.write_str(
                "no Bluetooth adapter found: plug one in or enable the built-in one \
                 (`rfkill list`, `sudo rfkill unblock bluetooth`), then check `bluetoothctl list`",
            ),
            BleError::PoweredOff => f.write_str(
                "the Bluetooth adapter is switched off: `bluetoothctl power on` \
                 (or `sudo rfkill unblock bluetooth` if it is blocked)",
            ),
            BleError::Permission(e) => write!(
                f,
                "not allowed to use Bluetooth ({e}): add yourself to the `bluetooth` group \
                 (`sudo usermod -aG bluetooth $USER`, then log in again)"
            ),
            BleError::NotFound { id, waited } => write!(
                f,
                "pendant {id} not found after scanning for {} s: wake it (press its button), \
                 bring it closer, make sure the phone app is not connected to it, and check the \
                 id with `omi-sync devices`",
                waited.as_secs()
            ),
            BleError::Other(e) => write!(f, "Bluetooth: {e}"),
        }
    }
}

impl std::error::Error for BleError {}

fn ble_err(e: btleplug::Error) -> BleError {
    match e {
        btleplug::Error::PermissionDenied => BleError::Permission("permission denied".into()),
        btleplug::Error::NoAdapterAvailable => BleError::NoAdapter,
        other => BleError::classify(&other.to_string()),
    }
}

fn link_err(e: btleplug::Error) -> LinkError {
    match e {
        btleplug::Error::NotConnected | btleplug::Error::DeviceNotFound => {
            LinkError::Disconnected(e.to_string())
        }
        btleplug::Error::TimedOut(_) => LinkError::Disconnected(e.to_string()),
        other => {
            let text = other.to_string();
            let lower = text.to_ascii_lowercase();
            if lower.contains("not connected") || lower.contains("disconnected") {
                LinkError::Disconnected(text)
            } else {
                LinkError::Other(text)
            }
        }
    }
}

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

/// The host's Bluetooth: a runtime and its first adapter.
pub struct Ble {
    rt: Arc<Runtime>,
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

impl Ble {
    /// Connects to the platform's Bluetooth stack and takes its first
    /// adapter, checking that it is powered.
    pub fn open() -> Result<Ble, BleError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| BleError::Other(format!("cannot start the Bluetooth runtime: {e}")))?;
        let adapter = rt.block_on(async {
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
        })?;
        Ok(Ble {
            rt: Arc::new(rt),
            adapter,
        })
    }

    /// Scans for `timeout` and lists the pendants that advertise the storage
    /// service, strongest signal first.
    pub fn scan(&self, timeout: Duration) -> Result<Vec<FoundDevice>, BleError> {
        self.rt.block_on(async {
            self.adapter
                .start_scan(ScanFilter {
                    services: vec![storage_uuid()],
                })
                .await
                .map_err(ble_err)?;
            tokio::time::sleep(timeout).await;
            let _ = self.adapter.stop_scan().await;
            let mut found = BTreeMap::new();
            for p in self.adapter.peripherals().await.map_err(ble_err)? {
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
        })
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
    rt: Arc<Runtime>,
    adapter: Adapter,
    id: String,
    scan_timeout: Duration,
    /// Why the last connect failed, classified (for the final message).
    pub last_error: Option<BleError>,
}

impl BleConnector {
    async fn find(&self) -> Result<Peripheral, BleError> {
        let wanted = self.id.to_ascii_lowercase();
        let matches = |p: &Peripheral, name: Option<&str>| {
            p.address().to_string().to_ascii_lowercase() == wanted
                || name.is_some_and(|n| n.to_ascii_lowercase() == wanted)
        };
        let started = Instant::now();
        let mut scanning = false;
        loop {
            for p in self.adapter.peripherals().await.map_err(ble_err)? {
                let name = p
                    .properties()
                    .await
                    .ok()
                    .flatten()
                    .and_then(|pr| pr.local_name);
                if matches(&p, name.as_deref()) {
                    if scanning {
                        let _ = self.adapter.stop_scan().await;
                    }
                    return Ok(p);
                }
            }
            if started.elapsed() >= self.scan_timeout {
                if scanning {
                    let _ = self.adapter.stop_scan().await;
                }
                return Err(BleError::NotFound {
                    id: self.id.clone(),
                    waited: self.scan_timeout,
                });
            }
            if !scanning {
                self.adapter
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

    async fn open_link(&mut self) -> Result<BleLink, LinkError> {
        let p = match self.find().await {
            Ok(p) => p,
            Err(e) => {
                let text = e.to_string();
                self.last_error = Some(e);
                return Err(LinkError::Other(text));
            }
        };
        let timed = |what: &'static str| {
            move |_| LinkError::Disconnected(format!("{what} took longer than {CONNECT_TIMEOUT:?}"))
        };
        tokio::time::timeout(CONNECT_TIMEOUT, p.connect())
            .await
            .map_err(timed("connecting"))?
            .map_err(link_err)?;
        tokio::time::timeout(CONNECT_TIMEOUT, p.discover_services())
            .await
            .map_err(timed("discovering services"))?
            .map_err(link_err)?;
        let chars = p.characteristics();
        let find = |uuid: u128| {
            chars
                .iter()
                .find(|c| c.uuid == Uuid::from_u128(uuid))
                .cloned()
        };
        let control = find(CONTROL_CHAR_UUID).ok_or_else(|| {
            LinkError::Unsupported(
                "the ring storage service (firmware 3.0.20 or later is needed)".into(),
            )
        })?;
        let status = find(STATUS_CHAR_UUID)
            .ok_or_else(|| LinkError::Unsupported("the storage status characteristic".into()))?;
        let time = find(TIME_CHAR_UUID);
        // Faster connection intervals for the bulk transfer, where supported.
        let _ = p
            .request_connection_parameters(ConnectionParameterPreset::ThroughputOptimized)
            .await;
        let mut stream = p.notifications().await.map_err(link_err)?;
        p.subscribe(&control).await.map_err(link_err)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let control_uuid = control.uuid;
        let forward = self.rt.spawn(async move {
            while let Some(n) = stream.next().await {
                if n.uuid == control_uuid && tx.send(n.value).is_err() {
                    break;
                }
            }
        });
        let dropped = Arc::new(AtomicBool::new(false));
        let mut events = self.adapter.events().await.map_err(link_err)?;
        let (id, flag) = (p.id(), Arc::clone(&dropped));
        let watch = self.rt.spawn(async move {
            while let Some(ev) = events.next().await {
                if matches!(&ev, CentralEvent::DeviceDisconnected(d) if *d == id) {
                    flag.store(true, Ordering::SeqCst);
                    break;
                }
            }
        });
        Ok(BleLink {
            rt: Arc::clone(&self.rt),
            peripheral: p,
            control,
            status,
            time,
            rx,
            dropped,
            tasks: vec![forward, watch],
        })
    }
}

impl Connector for BleConnector {
    fn device_id(&self) -> String {
        self.id.clone()
    }

    fn connect(&mut self) -> Result<Box<dyn GattLink>, LinkError> {
        let rt = Arc::clone(&self.rt);
        self.last_error = None;
        match rt.block_on(self.open_link()) {
            Ok(link) => {
                self.last_error = None;
                Ok(Box::new(link))
            }
            Err(e) => {
                if self.last_error.is_none() {
                    self.last_error = Some(BleError::classify(&e.to_string()));
                }
                Err(e)
            }
        }
    }
}

/// One connection to a pendant.
pub struct BleLink {
    rt: Arc<Runtime>,
    peripheral: Peripheral,
    control: Characteristic,
    status: Characteristic,
    time: Option<Characteristic>,
    rx: mpsc::UnboundedReceiver<Vec<u8>>,
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

    fn write(&self, ch: &Characteristic, bytes: &[u8]) -> Result<(), LinkError> {
        self.check()?;
        self.rt.block_on(async {
            tokio::time::timeout(
                GATT_TIMEOUT,
                self.peripheral.write(ch, bytes, WriteType::WithResponse),
            )
            .await
            .map_err(|_| LinkError::Disconnected("a GATT write timed out".into()))?
            .map_err(link_err)
        })
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
        self.check()?;
        self.rt.block_on(async {
            tokio::time::timeout(GATT_TIMEOUT, self.peripheral.read(&self.status))
                .await
                .map_err(|_| LinkError::Disconnected("reading status timed out".into()))?
                .map_err(link_err)
        })
    }

    fn recv_notification(&mut self, timeout: Duration) -> Result<Option<Vec<u8>>, LinkError> {
        // What arrived before a disconnect is delivered first.
        if let Ok(n) = self.rx.try_recv() {
            return Ok(Some(n));
        }
        self.check()?;
        let got = self
            .rt
            .block_on(async { tokio::time::timeout(timeout, self.rx.recv()).await });
        match got {
            Ok(Some(n)) => Ok(Some(n)),
            Ok(None) => Err(LinkError::Disconnected(
                "the notification stream ended".into(),
            )),
            Err(_) => {
                self.check()?;
                Ok(None)
            }
        }
    }

    fn disconnect(&mut self) -> Result<(), LinkError> {
        for t in self.tasks.drain(..) {
            t.abort();
        }
        let p = self.peripheral.clone();
        self.rt.block_on(async {
            let _ = tokio::time::timeout(GATT_TIMEOUT, p.disconnect()).await;
        });
        Ok(())
    }
}

impl Drop for BleLink {
    fn drop(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified_with_what_to_do() {
        let bus = BleError::classify(
            "D-Bus error: Failed to connect to socket /run/dbus/system_bus_socket: No such file or directory",
        );
        assert!(matches!(bus, BleError::NoSystemBus(_)), "{bus:?}");
        assert!(bus.to_string().contains("systemctl start dbus bluetooth"));
        let bluez = BleError::classify(
            "org.freedesktop.DBus.Error.ServiceUnknown: The name org.bluez was not provided by any .service files",
        );
        assert!(matches!(bluez, BleError::NoBluez(_)), "{bluez:?}");
        assert!(bluez.to_string().contains("systemctl start bluetooth"));
        let perm =
            BleError::classify("org.freedesktop.DBus.Error.AccessDenied: Rejected send message");
        assert!(matches!(perm, BleError::Permission(_)), "{perm:?}");
        assert!(perm.to_string().contains("bluetooth` group"));
        assert!(BleError::NoAdapter.to_string().contains("rfkill"));
        assert!(!BleError::NoAdapter.is_temporary());
        let gone = BleError::NotFound {
            id: "AA:BB".into(),
            waited: Duration::from_secs(10),
        };
        assert!(gone.is_temporary());
        assert!(gone.to_string().contains("omi-sync devices"));
    }

    #[test]
    fn link_errors_tell_drops_from_other_failures() {
        assert!(link_err(btleplug::Error::NotConnected).is_disconnect());
        assert!(link_err(btleplug::Error::TimedOut(Duration::from_secs(1))).is_disconnect());
        assert!(!link_err(btleplug::Error::NotSupported("x".into())).is_disconnect());
    }
}

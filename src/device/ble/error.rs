//! Why Bluetooth is unusable, classified from what the stack says, and
//! btleplug's errors as link errors (a drop, or something else).

use std::fmt;
use std::time::Duration;

use crate::device::link::LinkError;

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

pub(super) fn ble_err(e: btleplug::Error) -> BleError {
    match e {
        btleplug::Error::PermissionDenied => BleError::Permission("permission denied".into()),
        btleplug::Error::NoAdapterAvailable => BleError::NoAdapter,
        other => BleError::classify(&other.to_string()),
    }
}

pub(super) fn link_err(e: btleplug::Error) -> LinkError {
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

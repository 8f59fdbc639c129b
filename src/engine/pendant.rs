//! Which pendant a pull or a status read talks to: a real one over
//! Bluetooth, or the simulated one serving a storage image file.
//!
//! [`Pendant::connector`] opens the transport and names the pendant in the
//! ledger; the session ([`crate::device::session`]) and
//! [`super::pull::pull`] only ever see the [`Connector`].

use std::path::PathBuf;
use std::time::Duration;

use crate::device::ble::{Ble, BleError};
use crate::device::link::Connector;
use crate::device::session::PullOptions;
use crate::device::sim::{SimError, SimPendant};

/// A pendant to talk to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pendant {
    /// A real pendant over Bluetooth, by address or advertised name.
    Bluetooth {
        /// Its address (`AA:BB:CC:DD:EE:FF`) or name, as `omi-sync devices` lists it.
        id: String,
        /// How long to scan for it on every (re)connect.
        scan: Duration,
    },
    /// The simulated pendant serving (and, on ADVANCE, writing) a storage image.
    Sim {
        /// The image file.
        image: PathBuf,
        /// Its fault spec (see [`crate::device::sim`]).
        faults: String,
    },
}

/// Why the pendant could not be reached at all.
#[derive(Debug, thiserror::Error)]
pub enum PendantError {
    /// Bluetooth is unusable on this host (the message says what to do).
    #[error(transparent)]
    Bluetooth(#[from] BleError),
    /// The simulated pendant could not start.
    #[error("the simulated pendant: {0}")]
    Sim(#[from] SimError),
}

impl PendantError {
    /// Whether trying again later can help (a pendant out of range), as
    /// opposed to needing a person (no adapter, a bad fault spec).
    pub fn is_temporary(&self) -> bool {
        match self {
            PendantError::Bluetooth(e) => e.is_temporary(),
            PendantError::Sim(_) => false,
        }
    }

    /// Whether the request itself was wrong (a bad fault spec, or an
    /// "image" that is a FIFO, a directory or the like).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            PendantError::Sim(SimError::Spec(_) | SimError::NotAnImage(_))
        )
    }
}

impl Pendant {
    /// Opens the transport: the host's Bluetooth adapter, or the image file.
    pub fn connector(&self) -> Result<Box<dyn Connector>, PendantError> {
        match self {
            Pendant::Bluetooth { id, scan } => Ok(Box::new(Ble::open()?.connector(id, *scan))),
            Pendant::Sim { image, faults } => Ok(Box::new(SimPendant::open(image, faults)?)),
        }
    }

    /// How to pull from it: the defaults, never freeing anything with
    /// `keep_on_device`; the simulated pendant is not a radio, so it is
    /// reconnected to without waiting.
    pub fn pull_options(&self, keep_on_device: bool) -> PullOptions {
        let defaults = PullOptions {
            keep_on_device,
            ..PullOptions::default()
        };
        match self {
            Pendant::Bluetooth { .. } => defaults,
            Pendant::Sim { .. } => PullOptions {
                reconnect_backoff: Duration::ZERO,
                busy_backoff: Duration::from_millis(10),
                ..defaults
            },
        }
    }

    /// Where its records come from, as captures name it: `ble:ID` or `sim:PATH`.
    pub fn origin(&self) -> String {
        match self {
            Pendant::Bluetooth { id, .. } => format!("ble:{id}"),
            Pendant::Sim { image, .. } => format!("sim:{}", image.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_fault_spec_is_a_usage_error_naming_the_item() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("ring.img");
        let mut b =
            crate::device::usb::fixture::FixtureBuilder::host_test(crate::device::usb::Variant::C)
                .unwrap();
        b.record(10, 36).unwrap();
        std::fs::write(&image, b.finish()).unwrap();
        let p = Pendant::Sim {
            image: image.clone(),
            faults: "mtu=nine".into(),
        };
        let e = p.connector().err().expect("a bad spec fails");
        assert!(e.is_usage() && !e.is_temporary());
        assert!(e.to_string().contains("mtu=nine"), "{e}");
        let ok = Pendant::Sim {
            image,
            faults: String::new(),
        };
        assert!(ok.connector().unwrap().device_id().starts_with("sim:"));
    }

    #[test]
    fn a_missing_image_names_its_path() {
        let p = Pendant::Sim {
            image: PathBuf::from("/nonexistent/ring.img"),
            faults: String::new(),
        };
        let e = p.connector().err().expect("missing image fails");
        assert!(e.to_string().contains("/nonexistent/ring.img"), "{e}");
    }
}

//! A [`DurableSink`] in memory, for tests, benchmarks and dry runs.

use super::{Discard, DurableSink, ResumePoint, SinkError};
use crate::device::record::RECORD_BYTES;

/// One `persist` call a [`MemorySink`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Persisted {
    /// The device key.
    pub device: String,
    /// The ring id.
    pub ring_id: Option<u64>,
    /// First seq.
    pub first_seq: u64,
    /// How many records.
    pub count: u64,
    /// The records (empty unless the sink keeps bytes).
    pub records: Vec<u8>,
}

/// A [`DurableSink`] in memory, for tests, benchmarks and dry runs. It
/// refuses a `persist` that is not contiguous with its resume point (a gap
/// or a duplicate), so tests catch both.
#[derive(Debug, Clone, Default)]
pub struct MemorySink {
    points: std::collections::HashMap<String, ResumePoint>,
    keep_bytes: bool,
    /// Every persist, in order.
    pub log: Vec<Persisted>,
    /// Records persisted in all.
    pub records: u64,
    /// Every discarded resume point: (device, old point, why).
    pub discarded: Vec<(String, ResumePoint, Discard)>,
}

impl MemorySink {
    /// A sink that keeps the record bytes.
    pub fn keeping_bytes() -> Self {
        MemorySink {
            keep_bytes: true,
            ..Self::default()
        }
    }

    /// A sink that only counts (for large pulls).
    pub fn counting() -> Self {
        Self::default()
    }

    /// Sets a device's resume point (as a ledger from an earlier run would).
    pub fn set_resume_point(&mut self, device: &str, point: ResumePoint) {
        self.points.insert(device.to_string(), point);
    }

    /// Every persisted record of `device` with its ring id and seq, in order.
    pub fn records_of(&self, device: &str) -> Vec<(Option<u64>, u64, &[u8])> {
        self.log
            .iter()
            .filter(|p| p.device == device)
            .flat_map(|p| {
                p.records
                    .chunks_exact(RECORD_BYTES)
                    .enumerate()
                    .map(move |(i, r)| (p.ring_id, p.first_seq + i as u64, r))
            })
            .collect()
    }
}

impl DurableSink for MemorySink {
    fn persist(
        &mut self,
        device: &str,
        ring_id: Option<u64>,
        first_seq: u64,
        records: &[u8],
    ) -> Result<(), SinkError> {
        if records.is_empty() || !records.len().is_multiple_of(RECORD_BYTES) {
            return Err(SinkError::new(format!(
                "{} bytes are not whole records",
                records.len()
            )));
        }
        if let Some(p) = self.points.get(device)
            && p.ring_id == ring_id
            && p.durable_seq != first_seq
        {
            return Err(SinkError::new(format!(
                "records at {first_seq} are not contiguous with the durable seq {} of {device}",
                p.durable_seq
            )));
        }
        let count = (records.len() / RECORD_BYTES) as u64;
        self.points.insert(
            device.to_string(),
            ResumePoint {
                ring_id,
                durable_seq: first_seq + count,
            },
        );
        self.records += count;
        self.log.push(Persisted {
            device: device.to_string(),
            ring_id,
            first_seq,
            count,
            records: if self.keep_bytes {
                records.to_vec()
            } else {
                Vec::new()
            },
        });
        Ok(())
    }

    fn resume_point(&self, device: &str) -> Result<Option<ResumePoint>, SinkError> {
        Ok(self.points.get(device).copied())
    }

    fn discard_resume_point(
        &mut self,
        device: &str,
        old: ResumePoint,
        why: &Discard,
    ) -> Result<(), SinkError> {
        self.discarded.push((device.to_string(), old, why.clone()));
        self.points.remove(device);
        Ok(())
    }
}

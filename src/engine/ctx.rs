//! What a running job hands each stage: where its events go, its stop
//! token, and the clock it reads and sleeps by.
//!
//! Stages take a [`Ctx`] instead of three loose arguments, so every stage
//! can be stopped ([`Ctx::cancel`]), tested against a [`ManualClock`]
//! ([`Ctx::clock`]) and watched ([`Ctx::emit`] wraps each event in an
//! [`Envelope`] with the job's id and the clock's time).
//!
//! [`ManualClock`]: crate::clock::ManualClock

use std::time::Instant;

use super::events::{Envelope, Event, EventSink, JobId, Silent};
use super::report::StageReport;
use crate::cancel::{Cancel, Cancelled};
use crate::clock::{Clock, SystemClock, UtcMillis};

/// A job's context (cheap to copy around by reference).
#[derive(Clone)]
pub struct Ctx<'a> {
    job: JobId,
    sink: &'a dyn EventSink,
    cancel: Cancel,
    clock: &'a dyn Clock,
}

impl<'a> Ctx<'a> {
    /// A context for job `job`.
    pub fn new(job: JobId, sink: &'a dyn EventSink, cancel: Cancel, clock: &'a dyn Clock) -> Self {
        Ctx {
            job,
            sink,
            cancel,
            clock,
        }
    }

    /// A context that reports to `sink` on the system clock with a fresh
    /// token: for library use and tests that need no cancel.
    pub fn detached(sink: &'a dyn EventSink) -> Self {
        Ctx::new(JobId(0), sink, Cancel::new(), &SystemClock)
    }

    /// The same job with another clock (tests).
    pub fn with_clock(&self, clock: &'a dyn Clock) -> Self {
        Ctx {
            clock,
            ..self.clone()
        }
    }

    /// The same job and clock, reporting to another sink.
    pub fn with_sink(&self, sink: &'a dyn EventSink) -> Self {
        Ctx {
            sink,
            ..self.clone()
        }
    }

    /// The job's id.
    pub fn job(&self) -> JobId {
        self.job
    }

    /// Reports `event`.
    pub fn emit(&self, event: Event) {
        self.sink
            .emit(Envelope::new(self.job, self.clock.now(), event));
    }

    /// Reports that a stage which began at `started` finished with `report`.
    pub fn stage_finished(&self, started: Instant, report: StageReport) {
        self.emit(Event::StageFinished {
            elapsed_ms: started.elapsed().as_millis() as u64,
            report,
        });
    }

    /// The sink events go to.
    pub fn sink(&self) -> &'a dyn EventSink {
        self.sink
    }

    /// The job's stop token.
    pub fn cancel(&self) -> &Cancel {
        &self.cancel
    }

    /// `Err(Cancelled)` once the job was asked to stop.
    pub fn check(&self) -> Result<(), Cancelled> {
        self.cancel.check()
    }

    /// The clock.
    pub fn clock(&self) -> &'a dyn Clock {
        self.clock
    }

    /// Now, by the job's clock.
    pub fn now(&self) -> UtcMillis {
        self.clock.now()
    }

    /// Sleeps until `until` by the job's clock, waking on a cancel.
    pub fn sleep_until(&self, until: UtcMillis) -> Result<(), Cancelled> {
        self.clock.sleep_until(until, &self.cancel)
    }
}

impl Default for Ctx<'static> {
    fn default() -> Self {
        Ctx::detached(&Silent)
    }
}

//! A generic bounded worker pool for transcription jobs.
//!
//! [`WorkerPool::start`] spawns `workers` threads; each builds its own engine
//! with the caller's factory (a Whisper worker gets its own decoder state and
//! thread count) and then takes jobs from a shared queue. Every submitted job
//! comes back exactly once on the event channel, as soon as it finishes, in
//! completion order: with its result, its error (an error fails the job, not
//! the pool; a panicking engine is caught and reported as that job's error),
//! or [`SttError::Cancelled`] when the pool was cancelled before the job ran.
//! Cancellation is checked between jobs: a job in flight finishes.
//!
//! The pool knows nothing of windows, segments or the ledger: jobs and
//! results are the caller's types.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::SttError;

/// A sensible number of workers for `threads_per_worker` CPU threads each:
/// `max(1, cores / threads_per_worker)`.
pub fn default_workers(threads_per_worker: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores / threads_per_worker.max(1)).max(1)
}

/// What happened to one job.
#[derive(Debug)]
pub struct JobOutcome<J, R> {
    /// The job, handed back.
    pub job: J,
    /// Its result.
    pub result: Result<R, SttError>,
    /// Which worker ran it (`None` when it never ran: cancelled, or no
    /// worker could start).
    pub worker: Option<usize>,
    /// Time spent running it.
    pub elapsed: Duration,
}

/// Events from the pool, in the order they happen.
#[derive(Debug)]
pub enum PoolEvent<J, R> {
    /// A job finished (or was cancelled / could not run).
    Done(JobOutcome<J, R>),
    /// A worker could not build its engine and stopped. When every worker
    /// fails, the queued jobs come back with this error.
    WorkerFailed {
        /// Which worker.
        worker: usize,
        /// Why.
        error: SttError,
    },
}

struct Shared<J> {
    queue: Mutex<Receiver<J>>,
    cancel: Arc<AtomicBool>,
    alive: AtomicUsize,
}

/// A running pool. Submit jobs, read events, then [`WorkerPool::finish`].
pub struct WorkerPool<J, R> {
    submit: Option<Sender<J>>,
    events: Receiver<PoolEvent<J, R>>,
    cancel: Arc<AtomicBool>,
    handles: Vec<JoinHandle<()>>,
    submitted: usize,
}

impl<J: Send + 'static, R: Send + 'static> WorkerPool<J, R> {
    /// Starts `workers` threads (at least 1). Worker `i` calls `make(i)` once
    /// to build its engine, then `work(&mut engine, &job)` for each job it
    /// takes.
    pub fn start<T, M, W>(workers: usize, make: M, work: W) -> Self
    where
        T: 'static,
        M: Fn(usize) -> Result<T, SttError> + Send + Sync + 'static,
        W: Fn(&mut T, &J) -> Result<R, SttError> + Send + Sync + 'static,
    {
        let workers = workers.max(1);
        let (submit, queue) = mpsc::channel::<J>();
        let (ev_tx, events) = mpsc::channel();
        let cancel = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared {
            queue: Mutex::new(queue),
            cancel: cancel.clone(),
            alive: AtomicUsize::new(workers),
        });
        let make = Arc::new(make);
        let work = Arc::new(work);
        let handles = (0..workers)
            .map(|i| {
                let shared = shared.clone();
                let ev = ev_tx.clone();
                let make = make.clone();
                let work = work.clone();
                std::thread::Builder::new()
                    .name(format!("stt-worker-{i}"))
                    .spawn(move || worker_loop(i, &shared, &ev, &*make, &*work))
                    .expect("spawning a thread")
            })
            .collect();
        WorkerPool {
            submit: Some(submit),
            events,
            cancel,
            handles,
            submitted: 0,
        }
    }

    /// Queues a job. After [`WorkerPool::cancel`] the job comes back at once
    /// as cancelled.
    pub fn submit(&mut self, job: J) {
        self.submitted += 1;
        if let Some(tx) = &self.submit {
            // If every worker is gone the job stays queued; `finish` drains it.
            let _ = tx.send(job);
        }
    }

    /// No more jobs: workers exit once the queue is empty.
    pub fn close(&mut self) {
        self.submit = None;
    }

    /// Asks the workers to stop between jobs; queued jobs come back as
    /// [`SttError::Cancelled`].
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::SeqCst);
    }

    /// A flag that cancels the pool when set (e.g. from a Ctrl-C handler).
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        self.cancel.clone()
    }

    /// Jobs submitted so far.
    pub fn submitted(&self) -> usize {
        self.submitted
    }

    /// The event channel. Each submitted job appears exactly once as
    /// [`PoolEvent::Done`]; the channel ends when the pool is closed and
    /// every job is accounted for.
    pub fn events(&self) -> &Receiver<PoolEvent<J, R>> {
        &self.events
    }

    /// Closes the pool, calls `on_event` for every remaining event as it
    /// lands, and joins the workers.
    pub fn finish(mut self, mut on_event: impl FnMut(PoolEvent<J, R>)) {
        self.close();
        for ev in self.events.iter() {
            on_event(ev);
        }
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

impl<J, R> Drop for WorkerPool<J, R> {
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::SeqCst);
        self.submit = None;
    }
}

fn worker_loop<T, J, R>(
    i: usize,
    shared: &Shared<J>,
    ev: &Sender<PoolEvent<J, R>>,
    make: &(dyn Fn(usize) -> Result<T, SttError> + Send + Sync),
    work: &(dyn Fn(&mut T, &J) -> Result<R, SttError> + Send + Sync),
) {
    let engine = catch_unwind(AssertUnwindSafe(|| make(i))).unwrap_or_else(|_| {
        Err(SttError::Engine {
            engine: "pool",
            message: format!("worker {i} panicked while building its engine"),
        })
    });
    let mut engine = match engine {
        Ok(e) => e,
        Err(error) => {
            let _ = ev.send(PoolEvent::WorkerFailed {
                worker: i,
                error: error.clone(),
            });
            // The last worker standing hands the queue back with the error.
            if shared.alive.fetch_sub(1, Ordering::SeqCst) == 1 {
                drain(shared, ev, || error.clone());
            }
            return;
        }
    };
    loop {
        if shared.cancel.load(Ordering::SeqCst) {
            drain(shared, ev, || SttError::Cancelled);
            break;
        }
        let job = {
            let Ok(q) = shared.queue.lock() else { break };
            q.recv()
        };
        let Ok(job) = job else { break };
        if shared.cancel.load(Ordering::SeqCst) {
            let _ = ev.send(PoolEvent::Done(JobOutcome {
                job,
                result: Err(SttError::Cancelled),
                worker: None,
                elapsed: Duration::ZERO,
            }));
            continue;
        }
        let t = Instant::now();
        let result =
            catch_unwind(AssertUnwindSafe(|| work(&mut engine, &job))).unwrap_or_else(|p| {
                let what = p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                Err(SttError::Engine {
                    engine: "pool",
                    message: format!("worker {i} panicked on a job: {what}"),
                })
            });
        let _ = ev.send(PoolEvent::Done(JobOutcome {
            job,
            result,
            worker: Some(i),
            elapsed: t.elapsed(),
        }));
    }
    shared.alive.fetch_sub(1, Ordering::SeqCst);
}

/// Hands every queued job back with `error`, until the queue closes.
fn drain<J, R>(shared: &Shared<J>, ev: &Sender<PoolEvent<J, R>>, error: impl Fn() -> SttError) {
    let Ok(q) = shared.queue.lock() else { return };
    while let Ok(job) = q.recv() {
        let _ = ev.send(PoolEvent::Done(JobOutcome {
            job,
            result: Err(error()),
            worker: None,
            elapsed: Duration::ZERO,
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn every_job_comes_back_exactly_once_whatever_the_order() {
        let mut pool = WorkerPool::start(
            4,
            |i| Ok(fastrand::Rng::with_seed(i as u64)),
            |rng: &mut fastrand::Rng, job: &u32| {
                std::thread::sleep(Duration::from_millis(rng.u64(0..15)));
                if job.is_multiple_of(7) {
                    Err(SttError::Temporary {
                        engine: "fake",
                        message: format!("job {job}"),
                    })
                } else {
                    Ok(job * 2)
                }
            },
        );
        for j in 0..200u32 {
            pool.submit(j);
        }
        let mut seen: HashMap<u32, usize> = HashMap::new();
        let mut order = Vec::new();
        pool.finish(|ev| {
            if let PoolEvent::Done(o) = ev {
                *seen.entry(o.job).or_default() += 1;
                order.push(o.job);
                match o.result {
                    Ok(r) => assert_eq!(r, o.job * 2),
                    Err(e) => assert!(o.job.is_multiple_of(7) && e.is_retryable()),
                }
            }
        });
        assert_eq!(seen.len(), 200);
        assert!(seen.values().all(|&n| n == 1));
        assert_ne!(
            order,
            (0..200).collect::<Vec<_>>(),
            "completion order differs from submission"
        );
    }

    #[test]
    fn cancel_returns_queued_jobs_as_cancelled() {
        let mut pool = WorkerPool::start(
            1,
            |_| Ok(()),
            |_: &mut (), job: &u32| {
                std::thread::sleep(Duration::from_millis(20));
                Ok(*job)
            },
        );
        for j in 0..50 {
            pool.submit(j);
        }
        let mut ok = 0;
        let mut cancelled = 0;
        let flag = pool.cancel_flag();
        let mut n = 0;
        pool.finish(|ev| {
            if let PoolEvent::Done(o) = ev {
                n += 1;
                if n == 2 {
                    flag.store(true, Ordering::SeqCst);
                }
                match o.result {
                    Ok(_) => ok += 1,
                    Err(SttError::Cancelled) => cancelled += 1,
                    Err(e) => panic!("{e}"),
                }
            }
        });
        assert_eq!(ok + cancelled, 50);
        assert!(cancelled >= 45, "{ok} ran, {cancelled} cancelled");
    }

    #[test]
    fn a_panicking_job_fails_alone() {
        let mut pool = WorkerPool::start(
            2,
            |_| Ok(()),
            |_: &mut (), job: &u32| {
                if *job == 3 {
                    panic!("boom");
                }
                Ok(*job)
            },
        );
        for j in 0..10 {
            pool.submit(j);
        }
        let mut errs = Vec::new();
        let mut oks = 0;
        pool.finish(|ev| {
            if let PoolEvent::Done(o) = ev {
                match o.result {
                    Ok(_) => oks += 1,
                    Err(e) => errs.push((o.job, e.to_string())),
                }
            }
        });
        assert_eq!(oks, 9);
        assert_eq!(errs.len(), 1);
        assert!(errs[0].1.contains("boom"));
    }

    #[test]
    fn engines_that_cannot_start_hand_jobs_back() {
        let mut pool: WorkerPool<u32, u32> = WorkerPool::start(
            2,
            |_| -> Result<(), SttError> {
                Err(SttError::Model {
                    message: "no model".into(),
                })
            },
            |_: &mut (), j: &u32| Ok(*j),
        );
        for j in 0..5 {
            pool.submit(j);
        }
        let mut failed_workers = 0;
        let mut jobs = 0;
        pool.finish(|ev| match ev {
            PoolEvent::WorkerFailed { .. } => failed_workers += 1,
            PoolEvent::Done(o) => {
                jobs += 1;
                assert!(o.result.unwrap_err().is_fatal());
            }
        });
        assert_eq!((failed_workers, jobs), (2, 5));
    }

    #[test]
    fn default_workers_is_at_least_one() {
        assert!(default_workers(1) >= 1);
        assert_eq!(default_workers(10_000), 1);
    }
}

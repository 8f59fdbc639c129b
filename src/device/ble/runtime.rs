//! The tokio runtime btleplug runs on: its own thread, owned by
//! [`super::Ble`], reached over channels.
//!
//! Building a runtime and calling `block_on` from a thread that is already
//! inside a tokio runtime panics ("Cannot start a runtime from within a
//! runtime"), and so does dropping one there. So the runtime is built, run
//! and dropped on a thread of its own; callers hand it futures
//! ([`BleRuntime::call`]) and wait for the result on a std channel, in
//! slices, with a [`Cancel`] checked between them. That works from any
//! thread: a plain one, a tokio worker, or a `spawn_blocking` thread.

use std::future::Future;
use std::sync::mpsc;
use std::time::Duration;

use tokio::runtime::Handle;

use crate::cancel::Cancel;

/// How often a waiting caller checks its cancel token.
const POLL: Duration = Duration::from_millis(50);

/// Why a call gave no result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallError {
    /// The cancel token fired; the future was aborted.
    Cancelled,
    /// The runtime is gone (its thread ended), or the future panicked.
    Gone,
}

/// A tokio runtime on a thread of its own (see the module docs).
pub struct BleRuntime {
    handle: Handle,
    /// Dropping it (with the runtime) lets the thread shut the runtime down.
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl BleRuntime {
    /// Starts the runtime's thread.
    pub fn start() -> Result<BleRuntime, String> {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("omi-sync bluetooth".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name("omi-sync bluetooth worker")
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
                if tx.send(Ok((rt.handle().clone(), stop))).is_err() {
                    return;
                }
                // Runs until the owner goes (the sender is dropped), then the
                // runtime is dropped here, outside any async context.
                rt.block_on(async {
                    let _ = stopped.await;
                });
            })
            .map_err(|e| format!("cannot start the Bluetooth thread: {e}"))?;
        let (handle, stop) = rx
            .recv()
            .map_err(|_| "the Bluetooth thread ended at once".to_string())??;
        Ok(BleRuntime {
            handle,
            _stop: stop,
        })
    }

    /// Runs `future` on the runtime and waits for its result. With a
    /// `cancel` token, gives up soon after it fires and aborts the future.
    pub fn call<T, F>(&self, future: F, cancel: Option<&Cancel>) -> Result<T, CallError>
    where
        T: Send + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        let (tx, rx) = mpsc::sync_channel(1);
        let task = self.handle.spawn(async move {
            let _ = tx.send(future.await);
        });
        loop {
            match rx.recv_timeout(POLL) {
                Ok(v) => return Ok(v),
                Err(mpsc::RecvTimeoutError::Disconnected) => return Err(CallError::Gone),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if cancel.is_some_and(Cancel::is_cancelled) {
                        task.abort();
                        return Err(CallError::Cancelled);
                    }
                }
            }
        }
    }

    /// Starts `future` on the runtime without waiting for it.
    pub fn detach<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        drop(self.handle.spawn(future));
    }

    /// Starts a task that lives until it ends or is aborted with the handle.
    pub fn spawn<F>(&self, future: F) -> tokio::task::JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.handle.spawn(future)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn calls_work_from_inside_another_runtime_and_cancel_promptly() {
        let outer = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        outer.block_on(async {
            let rt = BleRuntime::start().unwrap();
            assert_eq!(rt.call(async { 6 * 7 }, None), Ok(42));
            let cancel = Cancel::new();
            let firing = cancel.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(100));
                firing.cancel();
            });
            let t = Instant::now();
            let r = rt.call(tokio::time::sleep(Duration::from_secs(3600)), Some(&cancel));
            assert_eq!(r, Err(CallError::Cancelled));
            assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
            // Dropped here, inside the outer runtime: no panic.
            drop(rt);
        });
    }

    #[test]
    fn a_panicking_future_is_an_error_not_a_panic() {
        let rt = BleRuntime::start().unwrap();
        let r: Result<(), _> = rt.call(async { panic!("inside the runtime") }, None);
        assert_eq!(r, Err(CallError::Gone));
        // The runtime still works.
        assert_eq!(rt.call(async { 1 }, None), Ok(1));
    }
}

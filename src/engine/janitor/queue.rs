//! A due-time queue: items ordered by when they fall due, and one waiter
//! that sleeps until the earliest of them (woken early when an earlier one
//! arrives, or by a cancel). One queue and one thread serve any number of
//! pending items: there is no timer or thread per item.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use crate::cancel::{Cancel, Cancelled};
use crate::clock::{Clock, UtcMillis};

/// The longest the waiter sleeps before it looks at the clock and the
/// cancel token again (a cancel is seen within this).
const SLICE: Duration = Duration::from_millis(100);

/// Items of type `T` by due time; the earliest first, ties in the order
/// they were pushed.
pub struct DueQueue<T> {
    state: Mutex<Heap<T>>,
    changed: Condvar,
}

struct Heap<T> {
    heap: BinaryHeap<Reverse<(UtcMillis, u64, Slot<T>)>>,
    pushed: u64,
}

/// An item in the heap: compared by nothing (the due time and the push
/// counter before it decide the order).
struct Slot<T>(T);

impl<T> PartialEq for Slot<T> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl<T> Eq for Slot<T> {}
impl<T> PartialOrd for Slot<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Slot<T> {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

impl<T> Default for DueQueue<T> {
    fn default() -> Self {
        DueQueue {
            state: Mutex::new(Heap {
                heap: BinaryHeap::new(),
                pushed: 0,
            }),
            changed: Condvar::new(),
        }
    }
}

impl<T> DueQueue<T> {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Heap<T>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds `item`, due at `due`; wakes the waiter, which looks again at
    /// what is earliest.
    pub fn push(&self, due: UtcMillis, item: T) {
        let mut s = self.lock();
        let n = s.pushed;
        s.pushed += 1;
        s.heap.push(Reverse((due, n, Slot(item))));
        drop(s);
        self.changed.notify_all();
    }

    /// Empties the queue (before it is filled again from a new schedule).
    pub fn clear(&self) {
        self.lock().heap.clear();
        self.changed.notify_all();
    }

    /// How many items wait.
    pub fn len(&self) -> usize {
        self.lock().heap.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// When the earliest item falls due.
    pub fn next_due(&self) -> Option<UtcMillis> {
        self.lock().heap.peek().map(|Reverse((due, _, _))| *due)
    }

    /// Takes the earliest item if it is due at `now`.
    pub fn pop_due(&self, now: UtcMillis) -> Option<(UtcMillis, T)> {
        let mut s = self.lock();
        match s.heap.peek() {
            Some(Reverse((due, _, _))) if *due <= now => s
                .heap
                .pop()
                .map(|Reverse((due, _, Slot(item)))| (due, item)),
            _ => None,
        }
    }

    /// Waits until the earliest item is due by `clock` and takes it. An item
    /// pushed while it waits is considered at once (an earlier one cuts the
    /// wait short); an empty queue waits for a push. `Err` when `cancel`
    /// fires.
    pub fn wait_due(
        &self,
        clock: &dyn Clock,
        cancel: &Cancel,
    ) -> Result<(UtcMillis, T), Cancelled> {
        let mut s = self.lock();
        loop {
            cancel.check()?;
            let now = clock.now();
            let wait = match s.heap.peek() {
                Some(Reverse((due, _, _))) if *due <= now => {
                    let Reverse((due, _, Slot(item))) = s.heap.pop().expect("peeked");
                    return Ok((due, item));
                }
                Some(Reverse((due, _, _))) => {
                    Duration::from_millis(due.since(now).max(0) as u64).min(SLICE)
                }
                None => SLICE,
            };
            s = self
                .changed
                .wait_timeout(s, wait)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{ManualClock, SystemClock};
    use std::sync::Arc;

    #[test]
    fn falls_due_in_order_whatever_the_order_of_scheduling() {
        let q = DueQueue::new();
        for (due, name) in [(30, "c"), (10, "a"), (20, "b"), (10, "a2"), (5, "first")] {
            q.push(UtcMillis(due), name);
        }
        assert_eq!(q.next_due(), Some(UtcMillis(5)));
        assert_eq!(q.pop_due(UtcMillis(4)), None, "nothing is due yet");
        let mut order = Vec::new();
        while let Some((_, n)) = q.pop_due(UtcMillis(25)) {
            order.push(n);
        }
        assert_eq!(order, ["first", "a", "a2", "b"], "ties keep their order");
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn an_earlier_item_cuts_the_wait_short() {
        let q = Arc::new(DueQueue::new());
        let now = UtcMillis::now();
        q.push(now.plus_ms(3_600_000), "in an hour");
        let cancel = Cancel::new();
        let waiter = {
            let (q, cancel) = (q.clone(), cancel.clone());
            std::thread::spawn(move || q.wait_due(&SystemClock, &cancel))
        };
        std::thread::sleep(Duration::from_millis(150));
        q.push(UtcMillis::now(), "now");
        let (_, got) = waiter.join().unwrap().unwrap();
        assert_eq!(got, "now");
        assert_eq!(q.len(), 1, "the hour's item still waits");
    }

    #[test]
    fn a_cancel_ends_the_wait() {
        let q: Arc<DueQueue<u32>> = Arc::new(DueQueue::new());
        let cancel = Cancel::new();
        let waiter = {
            let (q, cancel) = (q.clone(), cancel.clone());
            std::thread::spawn(move || q.wait_due(&SystemClock, &cancel))
        };
        std::thread::sleep(Duration::from_millis(50));
        cancel.cancel();
        assert!(waiter.join().unwrap().is_err());
    }

    #[test]
    fn the_clock_decides_what_is_due() {
        let clock = ManualClock::new(UtcMillis(1_000));
        let q = DueQueue::new();
        q.push(UtcMillis(1_500), 1);
        q.push(UtcMillis(900), 0);
        let cancel = Cancel::new();
        assert_eq!(q.wait_due(&clock, &cancel).unwrap(), (UtcMillis(900), 0));
        clock.advance(600);
        assert_eq!(q.wait_due(&clock, &cancel).unwrap(), (UtcMillis(1_500), 1));
        assert!(q.is_empty());
    }
}

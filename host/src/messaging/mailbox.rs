//! One agent's bounded queues of messages, one per priority, served highest
//! priority first. Bounded because memory must not grow with load: a full
//! queue refuses the message and the sender is told to retry later (HTTP
//! 429). Bounded per priority, so a flood of background messages never
//! takes the room a critical one needs.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::Notify;

pub use crate::priority::Priority;

pub struct Mailbox<T> {
    queues: Mutex<[VecDeque<T>; 4]>,
    capacities: [usize; 4],
    len: AtomicUsize,
    /// Messages taken from the queue and not finished yet.
    in_flight: AtomicUsize,
    closed: AtomicBool,
    /// Wakes a worker that takes any priority.
    ready: Notify,
    /// Wakes a worker dedicated to one priority.
    ready_for: [Notify; 4],
}

impl<T> Mailbox<T> {
    /// A mailbox holding `capacity` messages at each priority.
    pub fn new(capacity: usize) -> Self {
        Self::with_capacities([capacity; 4])
    }

    /// A mailbox holding `capacities[p.index()]` messages of priority `p`.
    pub fn with_capacities(capacities: [usize; 4]) -> Self {
        Self {
            queues: Mutex::new(Default::default()),
            capacities,
            len: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            ready: Notify::new(),
            ready_for: Default::default(),
        }
    }

    /// Queues `item`; gives it back when its priority's queue is full or
    /// the mailbox is closed.
    pub fn push(&self, item: T, priority: Priority) -> Result<(), T> {
        {
            let mut queues = self.queues.lock().expect("mailbox lock");
            // Under the lock `close` drains with: nothing lands after it.
            if self.closed.load(Ordering::Acquire) {
                return Err(item);
            }
            let queue = &mut queues[priority.index()];
            if queue.len() >= self.capacities[priority.index()] {
                return Err(item);
            }
            queue.push_back(item);
            self.len.fetch_add(1, Ordering::AcqRel);
        }
        // Both kinds of worker may take it; the one that loses the race
        // finds nothing and waits again.
        self.ready.notify_one();
        self.ready_for[priority.index()].notify_one();
        Ok(())
    }

    /// The most urgent item, waiting for one; `None` once closed and empty.
    pub async fn pop(&self) -> Option<T> {
        self.pop_where(None).await
    }

    /// The oldest item of `priority` only (a dedicated worker's take).
    pub async fn pop_only(&self, priority: Priority) -> Option<T> {
        self.pop_where(Some(priority)).await
    }

    async fn pop_where(&self, only: Option<Priority>) -> Option<T> {
        let ready = match only {
            Some(priority) => &self.ready_for[priority.index()],
            None => &self.ready,
        };
        loop {
            let notified = ready.notified();
            if let Some(item) = self.try_pop(only) {
                return Some(item);
            }
            if self.closed.load(Ordering::Acquire) {
                return None;
            }
            notified.await;
        }
    }

    fn try_pop(&self, only: Option<Priority>) -> Option<T> {
        let mut queues = self.queues.lock().expect("mailbox lock");
        let item = match only {
            Some(priority) => queues[priority.index()].pop_front(),
            None => queues.iter_mut().find_map(VecDeque::pop_front),
        }?;
        self.len.fetch_sub(1, Ordering::AcqRel);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        Some(item)
    }

    /// Marks one popped item finished.
    pub fn done(&self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    /// Waiting plus in flight: what "best by load" routing compares.
    pub fn load(&self) -> usize {
        self.len.load(Ordering::Acquire) + self.in_flight.load(Ordering::Acquire)
    }

    pub fn queued(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// Waiting at each priority, most urgent first.
    pub fn queued_by_priority(&self) -> [usize; 4] {
        let queues = self.queues.lock().expect("mailbox lock");
        Priority::ALL.map(|p| queues[p.index()].len())
    }

    /// Refuses new items and hands back the waiting ones; workers stop
    /// once it is empty.
    pub fn close(&self) -> Vec<T> {
        let mut queues = self.queues.lock().expect("mailbox lock");
        self.closed.store(true, Ordering::Release);
        let drained: Vec<T> = queues.iter_mut().flat_map(|q| q.drain(..)).collect();
        self.len.store(0, Ordering::Release);
        drop(queues);
        self.ready.notify_waiters();
        for ready in &self.ready_for {
            ready.notify_waiters();
        }
        drained
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_by_priority_then_arrival_and_refuses_when_full() {
        let mailbox = Mailbox::with_capacities([1, 1, 2, 1]);
        mailbox.push("background", Priority::Background).unwrap();
        mailbox.push("normal-1", Priority::Normal).unwrap();
        mailbox.push("critical", Priority::Critical).unwrap();
        mailbox.push("normal-2", Priority::Normal).unwrap();
        assert_eq!(
            mailbox.push("one too many", Priority::Normal),
            Err("one too many")
        );
        // A full normal queue leaves the high one its room.
        mailbox.push("high", Priority::High).unwrap();
        let mut order = Vec::new();
        for _ in 0..5 {
            order.push(mailbox.pop().await.unwrap());
            mailbox.done();
        }
        assert_eq!(
            order,
            ["critical", "high", "normal-1", "normal-2", "background"]
        );
        assert_eq!(mailbox.load(), 0);
    }

    #[tokio::test]
    async fn a_waiting_worker_wakes_for_a_push_and_stops_on_close() {
        let mailbox = std::sync::Arc::new(Mailbox::new(2));
        let worker = tokio::spawn({
            let mailbox = mailbox.clone();
            async move { mailbox.pop().await }
        });
        tokio::task::yield_now().await;
        mailbox.push(7, Priority::Normal).unwrap();
        assert_eq!(worker.await.unwrap(), Some(7));
        mailbox.push(8, Priority::Normal).unwrap();
        assert_eq!(mailbox.close(), vec![8]);
        assert!(mailbox.pop().await.is_none());
        assert_eq!(mailbox.push(9, Priority::Normal), Err(9));
    }
}

#[cfg(test)]
mod dedicated {
    use super::*;

    #[tokio::test]
    async fn a_dedicated_worker_takes_only_its_priority_and_wakes_for_it() {
        let mailbox = std::sync::Arc::new(Mailbox::new(8));
        mailbox.push("background", Priority::Background).unwrap();
        let critical_worker = tokio::spawn({
            let mailbox = mailbox.clone();
            async move { mailbox.pop_only(Priority::Critical).await }
        });
        tokio::task::yield_now().await;
        assert!(!critical_worker.is_finished());
        mailbox.push("critical", Priority::Critical).unwrap();
        assert_eq!(critical_worker.await.unwrap(), Some("critical"));
        assert_eq!(mailbox.queued_by_priority(), [0, 0, 0, 1]);
    }
}

//! One agent's bounded queue of messages, served highest priority first.
//! Bounded because memory must not grow with load: a full mailbox refuses
//! the message and the sender is told to retry later (HTTP 429).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

/// How urgent a message is; a queue serves `critical` before `high`
/// before `normal` before `background`, first in first out within each.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Critical,
    High,
    #[default]
    Normal,
    Background,
}

impl Priority {
    fn index(self) -> usize {
        self as usize
    }
}

pub struct Mailbox<T> {
    queues: Mutex<[VecDeque<T>; 4]>,
    capacity: usize,
    len: AtomicUsize,
    /// Messages taken from the queue and not finished yet.
    in_flight: AtomicUsize,
    closed: AtomicBool,
    ready: Notify,
}

impl<T> Mailbox<T> {
    pub fn new(capacity: usize) -> Self {
        Self {
            queues: Mutex::new(Default::default()),
            capacity,
            len: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            ready: Notify::new(),
        }
    }

    /// Queues `item`; gives it back when the mailbox is full or closed.
    pub fn push(&self, item: T, priority: Priority) -> Result<(), T> {
        if self.closed.load(Ordering::Acquire) {
            return Err(item);
        }
        {
            let mut queues = self.queues.lock().expect("mailbox lock");
            if self.len.load(Ordering::Acquire) >= self.capacity {
                return Err(item);
            }
            queues[priority.index()].push_back(item);
            self.len.fetch_add(1, Ordering::AcqRel);
        }
        self.ready.notify_one();
        Ok(())
    }

    /// The most urgent item, waiting for one; `None` once closed and empty.
    pub async fn pop(&self) -> Option<T> {
        loop {
            let notified = self.ready.notified();
            if let Some(item) = self.try_pop() {
                return Some(item);
            }
            if self.closed.load(Ordering::Acquire) {
                return None;
            }
            notified.await;
        }
    }

    fn try_pop(&self) -> Option<T> {
        let mut queues = self.queues.lock().expect("mailbox lock");
        let item = queues.iter_mut().find_map(VecDeque::pop_front)?;
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

    /// Refuses new items and hands back the waiting ones; workers stop
    /// once it is empty.
    pub fn close(&self) -> Vec<T> {
        self.closed.store(true, Ordering::Release);
        let mut queues = self.queues.lock().expect("mailbox lock");
        let drained: Vec<T> = queues.iter_mut().flat_map(|q| q.drain(..)).collect();
        self.len.store(0, Ordering::Release);
        drop(queues);
        self.ready.notify_waiters();
        drained
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_by_priority_then_arrival_and_refuses_when_full() {
        let mailbox = Mailbox::new(4);
        mailbox.push("background", Priority::Background).unwrap();
        mailbox.push("normal-1", Priority::Normal).unwrap();
        mailbox.push("critical", Priority::Critical).unwrap();
        mailbox.push("normal-2", Priority::Normal).unwrap();
        assert_eq!(
            mailbox.push("one too many", Priority::Critical),
            Err("one too many")
        );
        let mut order = Vec::new();
        for _ in 0..4 {
            order.push(mailbox.pop().await.unwrap());
            mailbox.done();
        }
        assert_eq!(order, ["critical", "normal-1", "normal-2", "background"]);
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
        assert_eq!(mailbox.pop().await, None);
        assert_eq!(mailbox.push(9, Priority::Normal), Err(9));
    }
}

//! The embedding workers' queue: bounded by the texts waiting (not the
//! jobs: one job may hold thousands), fair between the callers that queue
//! (each caller's jobs are taken in turn, so one agent's flood cannot push
//! everyone else's requests behind it), and it drops jobs whose caller
//! has gone before any work is done for them.

use std::collections::{HashMap, VecDeque};
use std::sync::{Condvar, Mutex};
use std::time::Instant;

/// Something a caller waits for; `abandoned` once nobody does.
pub trait Queued {
    fn texts(&self) -> usize;
    fn abandoned(&self) -> bool;
}

pub struct FairQueue<J> {
    state: Mutex<State<J>>,
    ready: Condvar,
    /// Texts waiting in all, at most.
    max_texts: usize,
    /// Texts one caller may have waiting, at most.
    max_texts_per_caller: usize,
}

struct State<J> {
    /// Callers with jobs waiting, in the order they are served.
    turns: VecDeque<String>,
    jobs: HashMap<String, VecDeque<J>>,
    texts: usize,
    texts_by_caller: HashMap<String, usize>,
    closed: bool,
}

/// Why a job was not queued.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The queue, or this caller's share of it, is full.
    Full,
    Closed,
}

impl<J: Queued> FairQueue<J> {
    pub fn new(max_texts: usize, max_texts_per_caller: usize) -> Self {
        Self {
            state: Mutex::new(State {
                turns: VecDeque::new(),
                jobs: HashMap::new(),
                texts: 0,
                texts_by_caller: HashMap::new(),
                closed: false,
            }),
            ready: Condvar::new(),
            max_texts,
            max_texts_per_caller,
        }
    }

    /// Queues `job` for `caller`. A job bigger than a caller's share is
    /// still taken when that caller has nothing waiting (and the queue has
    /// room), so the largest request the API allows always gets through.
    pub fn push(&self, caller: &str, job: J) -> Result<(), Refused> {
        let texts = job.texts();
        let mut state = self.state.lock().expect("queue lock");
        if state.closed {
            return Err(Refused::Closed);
        }
        let mine = state.texts_by_caller.get(caller).copied().unwrap_or(0);
        let over_share = mine > 0 && mine + texts > self.max_texts_per_caller;
        let over_total = state.texts > 0 && state.texts + texts > self.max_texts;
        if over_share || over_total {
            return Err(Refused::Full);
        }
        state.texts += texts;
        *state.texts_by_caller.entry(caller.to_owned()).or_default() += texts;
        let waiting = state.jobs.entry(caller.to_owned()).or_default();
        if waiting.is_empty() {
            state.turns.push_back(caller.to_owned());
        }
        state
            .jobs
            .get_mut(caller)
            .expect("just inserted")
            .push_back(job);
        drop(state);
        self.ready.notify_one();
        Ok(())
    }

    /// The next job (callers in turn), waiting for one; `None` once closed.
    pub fn pop(&self) -> Option<J> {
        let mut state = self.state.lock().expect("queue lock");
        loop {
            if let Some(job) = state.take() {
                return Some(job);
            }
            if state.closed {
                return None;
            }
            state = self.ready.wait(state).expect("queue lock");
        }
    }

    /// The next job if one comes by `deadline` (now, if it has passed).
    pub fn pop_until(&self, deadline: Instant) -> Option<J> {
        let mut state = self.state.lock().expect("queue lock");
        loop {
            if let Some(job) = state.take() {
                return Some(job);
            }
            let now = Instant::now();
            if state.closed || now >= deadline {
                return None;
            }
            state = self
                .ready
                .wait_timeout(state, deadline - now)
                .expect("queue lock")
                .0;
        }
    }

    /// Stops the queue: pushes fail, and pops return what is left, then `None`.
    pub fn close(&self) {
        self.state.lock().expect("queue lock").closed = true;
        self.ready.notify_all();
    }

    /// Texts waiting right now.
    #[cfg(test)]
    pub fn texts(&self) -> usize {
        self.state.lock().expect("queue lock").texts
    }
}

impl<J: Queued> State<J> {
    /// The first live job of the caller whose turn it is; jobs nobody
    /// waits for any more are dropped on the way.
    fn take(&mut self) -> Option<J> {
        while let Some(caller) = self.turns.pop_front() {
            let Some(waiting) = self.jobs.get_mut(&caller) else {
                continue;
            };
            let Some(job) = waiting.pop_front() else {
                continue;
            };
            let more = !waiting.is_empty();
            if !more {
                self.jobs.remove(&caller);
            }
            let texts = job.texts();
            self.texts -= texts;
            if let Some(mine) = self.texts_by_caller.get_mut(&caller) {
                *mine -= texts;
                if *mine == 0 {
                    self.texts_by_caller.remove(&caller);
                }
            }
            if more {
                self.turns.push_back(caller);
            }
            if job.abandoned() {
                continue;
            }
            return Some(job);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    struct Job {
        name: &'static str,
        texts: usize,
        gone: Arc<AtomicBool>,
    }

    impl Queued for Job {
        fn texts(&self) -> usize {
            self.texts
        }
        fn abandoned(&self) -> bool {
            self.gone.load(Ordering::Relaxed)
        }
    }

    fn job(name: &'static str, texts: usize) -> Job {
        Job {
            name,
            texts,
            gone: Arc::default(),
        }
    }

    #[test]
    fn callers_take_turns() {
        let queue = FairQueue::new(100, 100);
        for name in ["a1", "a2", "a3"] {
            queue.push("flooder", job(name, 1)).unwrap();
        }
        queue.push("quiet", job("q1", 1)).unwrap();
        let order: Vec<_> = (0..4).map(|_| queue.pop().unwrap().name).collect();
        assert_eq!(order, ["a1", "q1", "a2", "a3"]);
    }

    #[test]
    fn texts_not_jobs_are_bounded_per_caller_and_in_all() {
        let queue = FairQueue::new(10, 6);
        queue.push("a", job("big", 5)).unwrap();
        assert_eq!(queue.push("a", job("more", 2)), Err(Refused::Full));
        queue.push("b", job("b", 5)).unwrap();
        assert_eq!(queue.push("c", job("c", 1)), Err(Refused::Full));
        assert_eq!(queue.texts(), 10);
        // One job bigger than a share goes through when the caller has none waiting.
        let queue = FairQueue::new(100, 6);
        queue.push("a", job("huge", 50)).unwrap();
    }

    #[test]
    fn abandoned_jobs_are_skipped_and_free_their_room() {
        let queue = FairQueue::new(10, 10);
        let gone = job("gone", 4);
        gone.gone.store(true, Ordering::Relaxed);
        queue.push("a", gone).unwrap();
        queue.push("a", job("live", 1)).unwrap();
        assert_eq!(queue.pop().unwrap().name, "live");
        assert_eq!(queue.texts(), 0);
        assert!(queue.pop_until(Instant::now()).is_none());
    }
}

//! The pages long-polls wait for: one reader per distinct page asked for (same tenant,
//! cursor, filters and limit), however many long-polls wait on it.
//!
//! A waiting long-poll joins its page's reader and sleeps until that reader has a page
//! with events for it. The reader, not the waiters, listens for the tenant's wake-ups
//! ([`super::notifier::Notifier`]) and for its re-check timer, reads the page once, and
//! wakes its waiters only when the page has something in it. A commit that wakes five
//! hundred waiters of one page therefore costs one read and five hundred wake-ups, each
//! waiter polled once, with the page in hand: measured with 5,000 waiters, a waiter woken
//! by the notification itself was polled through the whole request stack twice (once to
//! find the shared read under way, once when it finished), and the reads ran inside the
//! waiters' tasks, behind thousands of them in the scheduler's queues.
//!
//! The readers' reads go through [`super::batched_reads`]: the pages of every tenant one
//! commit batch wakes are read in one statement, not one each.
//!
//! Why no commit is missed: a long-poll subscribes to its tenant's wake-ups before it reads
//! the page itself, and joins the reader (which is subscribed from then on) only when that
//! read is empty. A commit before its own read is in that read; a commit after the reader
//! is joined notifies the reader, whose next read starts after the notification; a
//! notification in between, the long-poll sees on its own subscription and reads again
//! itself ([`super::wait_for_page`]). Notifications can be lost, so the reader also
//! re-reads on a timer.
//!
//! Any read of the page is a right answer for every waiter on it: the events of a page
//! are final (`crate::feed`), whichever read found them. So a reader whose read has events
//! (or found the cursor gone) has answered everyone waiting on it, and stops at once: the
//! handing over and the removal happen under the lock [`WaitingPages::join`] takes, so no
//! long-poll joins a reader that has stopped. The process's own commit wakes the reader
//! in-process and again through LISTEN a little later; measured with 5,000 waiters, that
//! echo re-read about two pages in five, on PostgreSQL's and the server's CPU, while their
//! answers were still being written (docs/BENCHMARKS.md, sixteenth section).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use sqlx::PgPool;
use tokio::sync::watch;
use tokio::time::Instant;

use super::batched_reads::{BatchedReads, ReadError};
use super::notifier::Notifier;
use super::{FALLBACK_RECHECK, FeedError, PENDING_RECHECK, Page, PageRequest, next_on_grid};

/// What a page's reader found last.
#[derive(Debug, Clone)]
pub enum Round {
    /// Nothing read yet (the waiters' own first reads come before).
    NotYet,
    Page(Arc<Page>),
    /// The cursor now points before the retained feed.
    Gone,
}

/// The readers of the pages long-polls wait for, by page.
#[derive(Clone)]
pub struct WaitingPages {
    reads: BatchedReads,
    notifier: Notifier,
    readers: Arc<Mutex<HashMap<PageRequest, watch::Sender<Round>>>>,
    /// Reads by readers that found events, since the start (for tests and diagnostics).
    reads_with_events: Arc<AtomicU64>,
}

/// A long-poll's place on its page's reader; the reader stops with its answer, or when
/// its last one drops.
pub struct Waiter {
    rounds: watch::Receiver<Round>,
}

impl WaitingPages {
    pub fn new(pool: PgPool, notifier: Notifier) -> Self {
        Self {
            reads: BatchedReads::new(pool),
            notifier,
            readers: Arc::default(),
            reads_with_events: Arc::default(),
        }
    }

    /// Joins the reader of `request`'s page, starting one if none runs; the reader sees
    /// every notification from now on.
    pub fn join(&self, request: &PageRequest) -> Waiter {
        let mut readers = self.lock();
        if let Some(rounds) = readers.get(request) {
            return Waiter {
                rounds: rounds.subscribe(),
            };
        }
        let (rounds, receiver) = watch::channel(Round::NotYet);
        let wake = self.notifier.subscribe(&request.tenant);
        readers.insert(request.clone(), rounds.clone());
        tokio::spawn(
            self.clone()
                .read_while_waited_on(request.clone(), rounds, wake),
        );
        Waiter { rounds: receiver }
    }

    /// How many pages have a reader (for tests and diagnostics).
    pub fn readers(&self) -> usize {
        self.lock().len()
    }

    /// How many of the readers' reads found events (each answered its page's waiters).
    pub fn reads_with_events(&self) -> u64 {
        self.reads_with_events.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PageRequest, watch::Sender<Round>>> {
        self.readers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The reader: re-reads the page after every wake-up of its tenant and on its timer,
    /// until no long-poll waits on it.
    async fn read_while_waited_on(
        self,
        request: PageRequest,
        rounds: watch::Sender<Round>,
        mut wake: watch::Receiver<u64>,
    ) {
        let mut held_back = false;
        let mut notifier_open = true;
        loop {
            let recheck = if held_back {
                PENDING_RECHECK
            } else {
                FALLBACK_RECHECK
            };
            // Timers on one grid: the readers of all pages re-check together.
            let until = next_on_grid(Instant::now(), recheck);
            tokio::select! {
                woken = wake.changed(), if notifier_open => notifier_open = woken.is_ok(),
                () = tokio::time::sleep_until(until) => {}
                () = rounds.closed() => {
                    if self.retire(&request, &rounds) {
                        return;
                    }
                    continue;
                }
            }
            wake.borrow_and_update();
            match self.reads.read(&request).await {
                Ok(page) if page.count > 0 => {
                    self.reads_with_events.fetch_add(1, Ordering::Relaxed);
                    self.answer_and_stop(&request, &rounds, Round::Page(Arc::new(page)));
                    return;
                }
                Ok(page) => {
                    held_back = page.held_back;
                    // Kept for the waiters' deadlines; nobody is woken.
                    rounds.send_if_modified(|last| {
                        *last = Round::Page(Arc::new(page));
                        false
                    });
                }
                Err(ReadError::Gone) => {
                    self.answer_and_stop(&request, &rounds, Round::Gone);
                    return;
                }
                Err(err @ (ReadError::Database(_) | ReadError::Stopped)) => {
                    // The waiters keep waiting; the timer reads again.
                    tracing::warn!(error = %err, tenant = %request.tenant, "long-poll re-read failed");
                }
            }
        }
    }

    /// Wakes every waiter with `round`, which ends their wait, and removes the reader, both
    /// under the lock `join` takes: a long-poll arriving later starts a new reader (after its
    /// own read, which sees what this one found).
    fn answer_and_stop(&self, request: &PageRequest, rounds: &watch::Sender<Round>, round: Round) {
        let mut readers = self.lock();
        rounds.send_replace(round);
        if readers
            .get(request)
            .is_some_and(|current| current.same_channel(rounds))
        {
            readers.remove(request);
        }
    }

    /// Removes `rounds` from the readers if no waiter joined it since it closed; under the
    /// lock that `join` takes, so a waiter never joins a reader that has stopped.
    fn retire(&self, request: &PageRequest, rounds: &watch::Sender<Round>) -> bool {
        let mut readers = self.lock();
        if rounds.receiver_count() > 0 {
            return false;
        }
        if readers
            .get(request)
            .is_some_and(|current| current.same_channel(rounds))
        {
            readers.remove(request);
        }
        true
    }
}

impl Waiter {
    /// Waits until the reader finds events (or that the cursor is gone).
    pub async fn next_answer(&mut self) -> Result<Arc<Page>, FeedError> {
        loop {
            if self.rounds.changed().await.is_err() {
                // The reader stopped (only at shutdown): wait for the caller's deadline.
                std::future::pending::<()>().await;
            }
            match &*self.rounds.borrow_and_update() {
                Round::Page(page) if page.count > 0 => return Ok(page.clone()),
                Round::Gone => return Err(FeedError::Gone),
                Round::NotYet | Round::Page(_) => {}
            }
        }
    }

    /// The reader's last page, if it has read one.
    pub fn last_page(&self) -> Option<Arc<Page>> {
        match &*self.rounds.borrow() {
            Round::Page(page) => Some(page.clone()),
            Round::NotYet | Round::Gone => None,
        }
    }
}

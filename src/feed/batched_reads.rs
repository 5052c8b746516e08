//! The waited-on pages' reads, several in one statement.
//!
//! A commit batch that wakes the long-polls of fifty tenants has fifty pages to read, one
//! for each tenant's reader ([`super::waiting`]). Read one statement each, that is fifty
//! round trips, fifty statements for PostgreSQL to bind and run, and fifty tasks woken
//! when their rows come. So a reader hands its page here: when no read is under way, one
//! starts at once with what is asked; pages asked for while it runs wait for it and then
//! go together in the next ([`super::read_pages`], one snapshot for all). Nothing waits
//! for a batch to fill, so a lone page costs what it did.
//!
//! Any read of a page is a right answer for its waiters (`crate::feed`): a page read
//! together with others, under a snapshot taken after it was asked for, is one of them.
//! Pages with a type filter need their own statement (its index and parameters differ), so
//! they are read on their own.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use sqlx::PgPool;
use tokio::sync::oneshot;

use super::{FeedError, Page, PageRequest, read_page, read_pages};

/// The most pages one statement reads; more wait for the next.
const MAX_PAGES: usize = 64;

/// Why a page was not read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReadError {
    #[error("the cursor points before the retained feed")]
    Gone,
    /// The read failed (shared by every page of its statement).
    #[error(transparent)]
    Database(Arc<sqlx::Error>),
    #[error("the batched read stopped before it answered")]
    Stopped,
}

type Answer = Result<Page, ReadError>;

#[derive(Clone)]
pub struct BatchedReads {
    pool: PgPool,
    queue: Arc<Mutex<Queue>>,
    counts: Arc<Counts>,
}

/// Since the start, for tests and diagnostics.
#[derive(Default)]
struct Counts {
    pages_asked: AtomicU64,
    statements: AtomicU64,
}

#[derive(Default)]
struct Queue {
    asked: Vec<(PageRequest, oneshot::Sender<Answer>)>,
    reading: bool,
}

impl BatchedReads {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            queue: Arc::default(),
            counts: Arc::default(),
        }
    }

    /// Pages of all types asked for since the start (each read with others).
    pub fn pages_asked(&self) -> u64 {
        self.counts.pages_asked.load(Ordering::Relaxed)
    }

    /// Statements that read them.
    pub fn statements(&self) -> u64 {
        self.counts.statements.load(Ordering::Relaxed)
    }

    /// Reads `request`'s page, with whatever other pages are asked for meanwhile.
    pub async fn read(&self, request: &PageRequest) -> Answer {
        if request.types.is_some() {
            return read_page(&self.pool, request)
                .await
                .map_err(ReadError::from);
        }
        let (answer, answered) = oneshot::channel();
        let start = {
            let mut queue = self.lock();
            queue.asked.push((request.clone(), answer));
            self.counts.pages_asked.fetch_add(1, Ordering::Relaxed);
            !std::mem::replace(&mut queue.reading, true)
        };
        if start {
            tokio::spawn(self.clone().read_while_asked());
        }
        answered.await.unwrap_or(Err(ReadError::Stopped))
    }

    /// Reads what is asked, a statement at a time, until nothing is.
    async fn read_while_asked(self) {
        let _reading = Reading(&self);
        loop {
            let asked = {
                let mut queue = self.lock();
                if queue.asked.is_empty() {
                    return;
                }
                let take = queue.asked.len().min(MAX_PAGES);
                queue.asked.drain(..take).collect::<Vec<_>>()
            };
            let (requests, answers): (Vec<_>, Vec<_>) = asked.into_iter().unzip();
            self.counts.statements.fetch_add(1, Ordering::Relaxed);
            match read_pages(&self.pool, &requests).await {
                Ok(pages) => {
                    for (page, answer) in pages.into_iter().zip(answers) {
                        // A reader that is gone no longer needs its page.
                        let _ = answer.send(page.map_err(ReadError::from));
                    }
                }
                Err(err) => {
                    let err = Arc::new(err);
                    for answer in answers {
                        let _ = answer.send(Err(ReadError::Database(err.clone())));
                    }
                }
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The reading task's mark: when it ends, however it ends (done, or dropped at shutdown),
/// the next page asked for starts a new one, and pages still queued are told it stopped.
struct Reading<'a>(&'a BatchedReads);

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        let mut queue = self.0.lock();
        queue.reading = false;
        for (_, answer) in queue.asked.drain(..) {
            let _ = answer.send(Err(ReadError::Stopped));
        }
    }
}

impl From<FeedError> for ReadError {
    fn from(err: FeedError) -> Self {
        match err {
            FeedError::Gone => Self::Gone,
            FeedError::Database(err) => Self::Database(Arc::new(err)),
        }
    }
}

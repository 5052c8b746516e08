//! Reading a follower's next page while it is still taking in this one.
//!
//! A follower catching up pages one request at a time, so each page costs PostgreSQL's read,
//! then the answer and the client's parse, in turn, and a core sits idle through much of
//! it. When a page leaves more ready (`has_more`), the read of the page after it starts at
//! once in the background; the request that asks for it (same tenant, cursor, filters and
//! limit) takes it instead of reading.
//!
//! Why a page read earlier is still the right answer: every event it holds is final and
//! below that read's horizon, so no event can appear among them later (`crate::feed`). A
//! later read would answer the same events, and only a page that was not full could have
//! grown since, with events the next page then brings. An empty page read ahead is never
//! served (a long-poll must wait instead), nor one older than [`MAX_AGE`], so the
//! `held_back` hint and the purge watermark are at most that stale. Authentication is the
//! asking request's own: a page is only ever taken by a request of its tenant.
//!
//! The cost: one read a client never asks for when it stops after a page with more ready,
//! or when its next request reaches another replica. Pages kept are bounded by count and
//! bytes; past either, nothing more is read ahead until some are taken or expire.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::OnceCell;
use tokio::time::Instant;

use super::{FeedError, Page, PageRequest, read_page};

/// The oldest page read ahead that is still served.
pub const MAX_AGE: Duration = Duration::from_secs(2);
/// The most bytes of pages read ahead and kept, for all followers together.
const MAX_BYTES: usize = 32 << 20;

/// A read under way or done: `None` when it failed (the asking request reads again).
type Slot = Arc<OnceCell<Option<Arc<Page>>>>;

struct Ahead {
    slot: Slot,
    started: Instant,
}

#[derive(Clone)]
pub struct ReadAhead {
    max_pages: usize,
    pages: Arc<Mutex<HashMap<PageRequest, Ahead>>>,
}

impl ReadAhead {
    /// Keeps at most `max_pages` pages read ahead; 0 never reads ahead.
    pub fn new(max_pages: usize) -> Self {
        Self {
            max_pages,
            pages: Arc::default(),
        }
    }

    /// The page `request` asks for: the one read ahead for it when there is one still
    /// fresh and not empty, else read now. When it leaves more ready, the next page's read
    /// starts.
    pub async fn read(&self, pool: &PgPool, request: &PageRequest) -> Result<Arc<Page>, FeedError> {
        let page = match self.take(request).await {
            Some(page) => page,
            None => Arc::new(read_page(pool, request).await?),
        };
        if page.has_more {
            self.start(pool, request, &page);
        }
        Ok(page)
    }

    /// How many pages are being read ahead or kept now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many pages have been read ahead and are kept, waiting to be asked for.
    pub fn kept(&self) -> usize {
        self.lock()
            .values()
            .filter(|ahead| ahead.slot.get().is_some_and(Option::is_some))
            .count()
    }

    async fn take(&self, request: &PageRequest) -> Option<Arc<Page>> {
        let ahead = {
            let mut pages = self.lock();
            pages.retain(|_, ahead| ahead.started.elapsed() <= MAX_AGE);
            pages.remove(request)?
        };
        // Waits for the read when it is still under way: it started earlier than a new
        // read would.
        let page = ahead.slot.get_or_init(|| async { None }).await.clone()?;
        (page.count > 0 && ahead.started.elapsed() <= MAX_AGE).then_some(page)
    }

    /// Starts reading the page after `page`, unless it is read or being read already, or
    /// the pages kept are at their bounds.
    fn start(&self, pool: &PgPool, request: &PageRequest, page: &Page) {
        let next = PageRequest {
            after: Some(page.next),
            ..request.clone()
        };
        let slot = Slot::default();
        {
            let mut pages = self.lock();
            pages.retain(|_, ahead| ahead.started.elapsed() <= MAX_AGE);
            let kept: usize = pages
                .values()
                .filter_map(|ahead| ahead.slot.get().cloned().flatten())
                .map(|page| page.data.len())
                .sum();
            if pages.len() >= self.max_pages
                || kept.saturating_add(page.data.len()) > MAX_BYTES
                || pages.contains_key(&next)
            {
                return;
            }
            pages.insert(
                next.clone(),
                Ahead {
                    slot: slot.clone(),
                    started: Instant::now(),
                },
            );
        }
        let pool = pool.clone();
        tokio::spawn(async move {
            slot.get_or_init(|| async { read_page(&pool, &next).await.ok().map(Arc::new) })
                .await;
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PageRequest, Ahead>> {
        self.pages.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

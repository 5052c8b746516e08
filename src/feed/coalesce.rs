//! Shares one page read among the long-polls that look again for the same reason and ask
//! for the same page (same tenant, cursor, filters and limit).
//!
//! A waiter may take a read only if that read started after what woke it: after the
//! notification it saw (the tenant's wake-up count, [`Fresh::woken_at`]), and, when a
//! timer woke it, after the timer fired ([`Fresh::not_before`]). Such a read sees the
//! commit behind the notification, or anything committed before the timer, so it is the
//! answer a read of the waiter's own would give or a later one. A read is kept after it
//! finishes, for [`KEEP`]: a commit wakes a tenant's hundred waiters at once, but with
//! thousands waiting they run one after another over tens of milliseconds, and when the
//! read was dropped on completion, each one that ran after it read again (counted in the
//! statement log: about 2,000 reads for 50 tenants' commits waking 5,000 waiters, not 50).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::OnceCell;
use tokio::time::Instant;

use super::{FeedError, Page, PageRequest, read_page};

/// How long a finished read stays available to waiters woken by the same notification.
/// Past it a waiter reads again, which is always right; the bound only keeps memory small.
pub const KEEP: Duration = Duration::from_secs(1);

/// What a shared read must have started after, for the waiter asking.
#[derive(Debug, Clone, Copy, Default)]
pub struct Fresh {
    /// The tenant's wake-up count the waiter saw when it last looked; `now` is the count
    /// at hand when a read starts (never below `woken_at`).
    pub woken_at: u64,
    pub now: u64,
    /// The instant its timer fired, when a timer woke it.
    pub not_before: Option<Instant>,
}

struct Shared {
    /// The wake-up count when the read started.
    count: u64,
    started: Instant,
    page: Arc<OnceCell<Arc<Page>>>,
}

impl Shared {
    fn serves(&self, fresh: &Fresh) -> bool {
        self.count >= fresh.woken_at && fresh.not_before.is_none_or(|at| self.started >= at)
    }
}

#[derive(Clone, Default)]
pub struct Coalescer {
    reads: Arc<Mutex<HashMap<PageRequest, Shared>>>,
}

impl Coalescer {
    /// The page `request` asks for, from a read that started after `fresh` (under way,
    /// finished, or started now).
    pub async fn read(
        &self,
        pool: &PgPool,
        request: &PageRequest,
        fresh: Fresh,
    ) -> Result<Arc<Page>, FeedError> {
        let page = {
            let mut reads = self.reads.lock().unwrap_or_else(PoisonError::into_inner);
            match reads.get(request).filter(|shared| shared.serves(&fresh)) {
                Some(shared) => shared.page.clone(),
                None => {
                    let now = Instant::now();
                    reads.retain(|_, shared| now.duration_since(shared.started) <= KEEP);
                    let page = Arc::new(OnceCell::new());
                    reads.insert(
                        request.clone(),
                        Shared {
                            count: fresh.now.max(fresh.woken_at),
                            started: now,
                            page: page.clone(),
                        },
                    );
                    page
                }
            }
        };
        // A failed read leaves the cell empty: the next waiter to get here reads again.
        page.get_or_try_init(|| async { read_page(pool, request).await.map(Arc::new) })
            .await
            .cloned()
    }

    /// How many reads are kept or under way (for tests and diagnostics).
    pub fn len(&self) -> usize {
        self.reads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

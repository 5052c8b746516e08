//! Shares one page read among the long-polls that a notification woke together and that
//! ask for the same page (same tenant, cursor, filters and limit). The read starts after
//! the wake-up, so it sees the commit that caused it; the entry is dropped as soon as the
//! read finishes, so later requests always read afresh.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use sqlx::PgPool;
use tokio::sync::OnceCell;

use super::{FeedError, Page, PageRequest, read_page};

type Shared = Arc<OnceCell<Arc<Page>>>;

#[derive(Clone, Default)]
pub struct Coalescer {
    inflight: Arc<Mutex<HashMap<PageRequest, Shared>>>,
}

impl Coalescer {
    pub async fn read(&self, pool: &PgPool, request: &PageRequest) -> Result<Arc<Page>, FeedError> {
        let cell = {
            let mut inflight = self.inflight.lock().unwrap_or_else(PoisonError::into_inner);
            inflight.entry(request.clone()).or_default().clone()
        };
        let result = cell
            .get_or_try_init(|| async { read_page(pool, request).await.map(Arc::new) })
            .await
            .cloned();
        let mut inflight = self.inflight.lock().unwrap_or_else(PoisonError::into_inner);
        if inflight
            .get(request)
            .is_some_and(|current| Arc::ptr_eq(current, &cell))
        {
            inflight.remove(request);
        }
        result
    }
}

//! The outbound feed: a tenant's outbox in one final order, read page by page with opaque
//! cursors, with long-polling.
//!
//! # Why the order is final (gap-free under concurrency)
//!
//! Transactions commit out of id order, so a reader that pages by a sequence number can
//! pass number 11 before 10 commits and never see 10. Each outbox row therefore records
//! the id of the transaction that wrote it (`pg_current_xact_id()`, an xid8) beside its
//! sequence number, and the feed is ordered by the pair (tx_id, seq). A page only serves
//! rows whose tx_id is below the xmin of the reading statement's snapshot: every
//! transaction below xmin has finished, and every transaction that has not yet written
//! will get a larger id, so no row can ever appear before a position already served. The
//! cursor is that pair; comparing ids alone (`id > cursor AND tx_id < xmin`) would still
//! lose rows, since tx_id order is not seq order.
//!
//! The price: one long-running writing transaction anywhere in the cluster holds xmin
//! back and stalls the feed (it never skips). Write transactions here are short. An empty
//! page without a cursor answers the horizon `(xmin - 1, max)`, which no future row can
//! precede.
//!
//! A follower's next page is read while it takes in this one ([`read_ahead`]).
//!
//! # Long-poll
//!
//! With `wait`, a long-poll whose first page is empty waits on that page's one reader
//! ([`waiting::WaitingPages`]): however many long-polls wait for the same page, one task
//! re-reads it when the tenant's [`notifier::Notifier`] says the outbox may have grown,
//! and wakes them only when it has events for them. A wake-up only means "look again".
//! Rows already committed but held back by an older open transaction are re-checked
//! quickly; otherwise a slow timer covers lost notifications. So that timed re-reads
//! happen at the same time, every reader's timer fires on one process-wide grid
//! ([`next_on_grid`]): measured with 5,000 waiters, timers that each started at their own
//! request's arrival kept 2,000-3,500 reads a second running while nothing happened, and
//! queued the wake-ups of a commit behind them for seconds.

pub mod announcer;
pub mod batched_reads;
pub mod cursor;
pub mod horizon;
pub mod long_polls;
pub mod notifier;
pub mod read_ahead;
pub mod waiting;

use std::sync::{Arc, LazyLock, OnceLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::HeaderValue;
use sqlx::PgPool;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::store::feed as store;
use cursor::Position;
use notifier::Notifier;

/// How often a waited-on page is re-read without a notification (lost NOTIFY cover).
const FALLBACK_RECHECK: Duration = Duration::from_secs(1);
/// How soon it is re-read when committed rows wait on an older open transaction.
const PENDING_RECHECK: Duration = Duration::from_millis(20);

#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("the cursor points before the retained feed")]
    Gone,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// What a page asks for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PageRequest {
    pub tenant: String,
    pub after: Option<Position>,
    /// Event type names to keep; `None` keeps all.
    pub types: Option<Vec<String>>,
    pub limit: i64,
}

/// One page. `data` is the JSON array of envelopes, joined from the stored text: the
/// server wrote every envelope itself, so they are not parsed again on the way out.
#[derive(Debug)]
pub struct Page {
    pub data: String,
    pub count: usize,
    pub next: Position,
    pub has_more: bool,
    /// The tenant has committed events after this page that an older open transaction
    /// (anywhere in the cluster) holds back: "not yet", not "nothing new".
    pub held_back: bool,
    /// The answer to every request that gets this page, when it has events.
    rendered: OnceLock<Rendered>,
}

/// A page with events, as answered: the same for every request it goes to (a page a
/// commit wakes a hundred long-polls with is rendered once, not a hundred times).
#[derive(Debug)]
pub struct Rendered {
    pub next_cursor: String,
    pub body: Bytes,
    /// The `Link` to the next page as the first request answered with this page had it,
    /// for the later ones that asked alike (`crate::http::feed`).
    pub link: OnceLock<AnsweredLink>,
}

/// A `Link` header value with what it was made from besides the page: the request's
/// `wait` and its type filters as written.
#[derive(Debug)]
pub struct AnsweredLink {
    pub wait: u64,
    pub type_raw: Vec<String>,
    pub value: HeaderValue,
}

impl Page {
    /// The page's JSON answer, with `next_cursor` as given.
    pub fn body(&self, next_cursor: &str) -> Bytes {
        // The envelopes are already JSON; the page is assembled around them.
        Bytes::from(format!(
            r#"{{"data":{},"next_cursor":{},"has_more":{}}}"#,
            self.data,
            serde_json::Value::String(next_cursor.to_owned()),
            self.has_more
        ))
    }

    /// A page without events that answers `next`.
    fn empty(next: Position, held_back: bool) -> Self {
        Self {
            data: "[]".to_owned(),
            count: 0,
            next,
            has_more: false,
            held_back,
            rendered: OnceLock::new(),
        }
    }

    /// The answer of a page with events, whose `next_cursor` is its last event's.
    pub fn rendered(&self) -> &Rendered {
        self.rendered.get_or_init(|| {
            let next_cursor = self.next.encode();
            Rendered {
                body: self.body(&next_cursor),
                next_cursor,
                link: OnceLock::new(),
            }
        })
    }
}

/// Reads one page (never waits).
pub async fn read_page(pool: &PgPool, request: &PageRequest) -> Result<Page, FeedError> {
    let read = store::read_envelope_page(
        pool,
        &request.tenant,
        request.after.unwrap_or(Position::START),
        request.types.as_deref(),
        page_limit(request),
    )
    .await?;
    page_from(read, request)
}

/// Reads several pages of all types (`types` is ignored) in one statement, in the order
/// asked; each is the page [`read_page`] would read, or `Gone`.
pub async fn read_pages(
    pool: &PgPool,
    requests: &[PageRequest],
) -> Result<Vec<Result<Page, FeedError>>, sqlx::Error> {
    let pages: Vec<store::PageOf<'_>> = requests
        .iter()
        .map(|request| store::PageOf {
            tenant: &request.tenant,
            after: request.after.unwrap_or(Position::START),
            limit: page_limit(request),
        })
        .collect();
    let reads = store::read_envelope_pages(pool, &pages).await?;
    Ok(reads
        .into_iter()
        .zip(requests)
        .map(|(read, request)| page_from(read, request))
        .collect())
}

fn page_limit(request: &PageRequest) -> usize {
    usize::try_from(request.limit).unwrap_or(0)
}

/// The page `request` gets from what its read found.
fn page_from(read: store::EnvelopePage, request: &PageRequest) -> Result<Page, FeedError> {
    if let Some(cursor) = request.after
        && read.is_gap(cursor)
    {
        return Err(FeedError::Gone);
    }
    let next = match (read.last, request.after) {
        (Some(last), _) => last,
        (None, Some(cursor)) => cursor,
        (None, None) => Position::horizon(read.xmin),
    };
    Ok(Page {
        data: read.data,
        count: read.count,
        next,
        has_more: read.has_more,
        held_back: read.held_back && !read.has_more,
        rendered: OnceLock::new(),
    })
}

/// Reads one page; if it is empty, waits up to `wait` for the tenant's next event.
/// Returns early (with whatever it has) when `shutdown` turns true.
pub async fn wait_for_page(
    pool: &PgPool,
    notifier: &Notifier,
    read_ahead: &read_ahead::ReadAhead,
    waiting: &waiting::WaitingPages,
    mut shutdown: watch::Receiver<bool>,
    request: &PageRequest,
    wait: Duration,
) -> Result<Arc<Page>, FeedError> {
    let deadline = Instant::now() + wait;
    // Subscribed before the first read, so a commit after that read is not missed before
    // the page's reader is joined.
    let wake = notifier.subscribe(&request.tenant);
    let mut page = read_ahead.read(pool, request).await?;
    if page.count > 0 || wait.is_zero() || *shutdown.borrow() {
        return Ok(page);
    }
    let mut waiter = waiting.join(request);
    // Woken between the read and the join: the reader may have missed that one, so look
    // again here, once (rare). Every wake-up after the join is the reader's.
    if wake.has_changed().unwrap_or(false) {
        page = Arc::new(read_page(pool, request).await?);
        if page.count > 0 {
            return Ok(page);
        }
    }
    drop(wake);
    // Only what an empty answer needs is kept: the page itself would be freed when a
    // commit wakes this long-poll, beside every other long-poll it wakes.
    let (next, held_back) = (page.next, page.held_back);
    drop(page);
    tokio::select! {
        answer = waiter.next_answer() => return answer,
        _ = shutdown.changed() => {}
        () = tokio::time::sleep_until(deadline) => {}
    }
    // Nothing came: the newest empty page (its horizon and held-back state).
    Ok(waiter
        .last_page()
        .unwrap_or_else(|| Arc::new(Page::empty(next, held_back))))
}

/// The first instant after `now` on a grid of `period` that starts when the process first
/// asks: timers set from different instants with the same period fire together.
pub fn next_on_grid(now: Instant, period: Duration) -> Instant {
    static ORIGIN: LazyLock<Instant> = LazyLock::new(Instant::now);
    let origin = *ORIGIN;
    let period = period.as_nanos().max(1);
    let elapsed = now.saturating_duration_since(origin).as_nanos();
    let next = (elapsed / period + 1) * period;
    origin + Duration::from_nanos(u64::try_from(next).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_set_at_different_instants_fire_together() {
        let period = Duration::from_secs(1);
        let first = next_on_grid(Instant::now(), period);
        let early = first - Duration::from_millis(900);
        let late = first - Duration::from_millis(1);
        assert_eq!(next_on_grid(early, period), first);
        assert_eq!(next_on_grid(late, period), first);
        // On the grid point itself, the next one: a timer never fires at once.
        assert_eq!(next_on_grid(first, period), first + period);
    }
}

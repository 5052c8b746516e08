//! Reading the outbox in feed order (see `crate::feed` for why this order is final). What a
//! reader may see is defined once (`rows_after!`, `page_head!`); [`read`] gives the bus
//! relay and the webhook driver whole rows, [`read_envelope_page`] gives a feed page only
//! the envelopes it serves, joined as they arrive.

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use sqlx::postgres::PgRow;
use sqlx::{PgExecutor, Row};
use uuid::Uuid;

use super::position::{Position, Xid8};
use crate::telemetry::trace_context::TraceContext;

/// One outbox event with everything its readers need.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub position: Position,
    pub id: Uuid,
    /// `subject.action`
    pub event_type: String,
    pub entity: String,
    pub entity_id: String,
    pub change: String,
    pub created: DateTime<Utc>,
    /// The envelope exactly as stored and served.
    pub envelope: String,
    /// The trace context it carries to its deliveries.
    pub trace: Option<TraceContext>,
}

/// What one read saw, all under one snapshot.
#[derive(Debug)]
pub struct OutboxRead {
    /// The snapshot's xmin: every transaction below it has finished.
    pub xmin: u64,
    /// The tenant's positions up to here may have been purged.
    pub purged_through: Option<Position>,
    /// With a type filter: the tenant's newest event of any type below the horizon. A
    /// reader that got fewer rows than it asked for has seen everything up to here.
    pub tenant_last: Option<Position>,
    /// The tenant has committed events that are not served yet because an older
    /// transaction (anywhere in the cluster) is still open.
    pub held_back: bool,
    pub rows: Vec<OutboxRow>,
}

impl OutboxRead {
    /// Whether `after` lies before what may have been purged: the events in between may
    /// be gone.
    pub fn is_gap(&self, after: Position) -> bool {
        purged_after(self.purged_through, after)
    }

    /// The furthest position a reader that asked for `limit` rows after `after` may move
    /// to once it has handled `rows`: past every row it got and, when it got fewer than
    /// it asked for, past the tenant's events its filter skipped. Never behind `after`.
    pub fn handled_through(&self, after: Position, limit: i64) -> Position {
        let last_row = self.rows.last().map(|row| row.position);
        let complete = (self.rows.len() as i64) < limit;
        let skipped = self.tenant_last.filter(|_| complete);
        [Some(after), last_row, skipped]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(after)
    }
}

/// Whether events after `after` may have been purged: a reader that is there has a gap.
fn purged_after(purged_through: Option<Position>, after: Position) -> bool {
    purged_through.is_some_and(|purged| after < purged)
}

/// The start of every page read, under the statement's one snapshot: the horizon `h`, then
/// as its first four columns the snapshot's xmin, the tenant's purge watermark
/// (`purged_tx`, `purged_seq`) and whether committed events of the tenant wait behind an
/// older open transaction (`held_back`). The caller's columns follow the trailing comma.
macro_rules! page_head {
    () => {
        "WITH horizon AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin),
              watermark AS (SELECT tx_id, seq FROM outbox_watermarks WHERE tenant_id = $1)
         SELECT h.xmin,
                (SELECT tx_id FROM watermark) AS purged_tx,
                (SELECT seq FROM watermark) AS purged_seq,
                EXISTS (SELECT 1 FROM outbox WHERE tenant_id = $1 AND tx_id >= h.xmin) AS held_back,
         "
    };
}

/// The rows a reader may see: `$1`'s events after the position `($2, $3)`, below the
/// horizon `h.xmin` (see `crate::feed` for why that makes the order final), in feed order,
/// at most `$4` (`all`); or only of the types `$5` (`typed`). Every page reader selects from
/// this, and picks the statement by whether it filters: the two need different indexes,
/// and each statement is planned for the index it needs.
///
/// `all` bounds the tenant's rows by two row comparisons that lead with the tenant and
/// orders by the `outbox_tenant_position` index's own key, and says `tenant_id = $1` no
/// other way: only that index can then give the order, whatever the parameters. With a
/// plain `tenant_id = $1`, PostgreSQL could read the page through the all-tenant
/// `outbox_position` index and filter out every other tenant's row on the way (a first page
/// behind 300,000 rows of another tenant: 45 ms; in a benchmark run, 1.5 s). It is also the
/// cheaper statement: one index condition pair per row and nothing left to filter
/// (`EXPLAIN ANALYZE`, a page of 1,000 in a million rows: planning 0.36 against 0.45 ms,
/// execution 0.69 against 0.95 ms, before the type filter had a statement of its own).
///
/// `typed` keeps `outbox_tenant_type_position`, which the bounds of `all` cannot use (with
/// them, a filter on a type with no events read all 300,000 rows).
macro_rules! rows_after {
    ($columns:literal, all) => {
        concat!(
            "SELECT ",
            $columns,
            " FROM outbox
             WHERE (tenant_id, tx_id, seq) > ($1, $2, $3)
               AND (tenant_id, tx_id) < ($1, h.xmin)
             ORDER BY tenant_id, tx_id, seq
             LIMIT $4"
        )
    };
    ($columns:literal, typed) => {
        concat!(
            "SELECT ",
            $columns,
            " FROM outbox
             WHERE tenant_id = $1
               AND (tx_id, seq) > ($2, $3)
               AND tx_id < h.xmin
               AND event_type = ANY ($5)
             ORDER BY tx_id, seq
             LIMIT $4"
        )
    };
}

/// The tenant's newest event of any type below the horizon (`last_tx`, `last_seq`), which
/// a typed reader needs (see [`OutboxRead::tenant_last`]); NULL for a reader of all types.
macro_rules! tenant_last {
    (all) => {
        "NULL::xid8 AS last_tx, NULL::bigint AS last_seq, o.*
         FROM horizon h
         LEFT JOIN LATERAL ("
    };
    (typed) => {
        "last.tx_id AS last_tx, last.seq AS last_seq, o.*
         FROM horizon h
         LEFT JOIN LATERAL (
             SELECT tx_id, seq FROM outbox
             WHERE tenant_id = $1 AND tx_id < h.xmin
             ORDER BY tx_id DESC, seq DESC LIMIT 1
         ) last ON true
         LEFT JOIN LATERAL ("
    };
}

/// The whole-row read of [`read`], with or without a type filter (`all`, `typed`).
macro_rules! read_statement {
    ($filter:tt) => {
        concat!(
            page_head!(),
            tenant_last!($filter),
            rows_after!(
                "tx_id, seq, id, event_type, entity, entity_id, change, created, envelope,
                 trace_parent, trace_state",
                $filter
            ),
            ") o ON true"
        )
    };
}

/// The page read of [`read_envelope_page`], with or without a type filter. The head
/// (horizon, purge watermark, held back) is a row of its own, told apart by its NULL
/// envelope, not four columns repeated on every event: PostgreSQL's time for a page of
/// 1,000 fell from about 1.2 to 1.0 ms (pgbench, prepared). Each branch takes the horizon
/// from the statement's one snapshot.
macro_rules! page_statement {
    ($filter:tt) => {
        concat!(
            "WITH watermark AS (SELECT tx_id, seq FROM outbox_watermarks WHERE tenant_id = $1)
             SELECT h.xmin, (SELECT seq FROM watermark), (SELECT tx_id FROM watermark),
                    EXISTS (SELECT 1 FROM outbox WHERE tenant_id = $1 AND tx_id >= h.xmin),
                    NULL::text
               FROM (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin) h
             UNION ALL
             SELECT o.tx_id, o.seq, NULL, NULL, o.envelope
               FROM (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin) h
               CROSS JOIN LATERAL (",
            rows_after!("tx_id, seq, envelope", $filter),
            ") o"
        )
    };
}

#[derive(sqlx::FromRow)]
struct RawRow {
    xmin: Xid8,
    purged_tx: Option<Xid8>,
    purged_seq: Option<i64>,
    last_tx: Option<Xid8>,
    last_seq: Option<i64>,
    held_back: bool,
    tx_id: Option<Xid8>,
    seq: Option<i64>,
    id: Option<Uuid>,
    event_type: Option<String>,
    entity: Option<String>,
    entity_id: Option<String>,
    change: Option<String>,
    created: Option<DateTime<Utc>>,
    envelope: Option<String>,
    trace_parent: Option<String>,
    trace_state: Option<String>,
}

/// The statement [`read`] runs, with a type filter (`$5`) or without: its parameters are
/// the tenant, the position's transaction and sequence, and the limit. Public so that a
/// test can ask PostgreSQL how it plans the very statement the relay runs.
pub fn read_statement(typed: bool) -> &'static str {
    if typed {
        read_statement!(typed)
    } else {
        read_statement!(all)
    }
}

/// Up to `limit` events of `tenant` after `after` (of `types` only, when given), only
/// from finished transactions, in feed order.
#[tracing::instrument(skip_all)]
pub async fn read(
    db: impl PgExecutor<'_>,
    tenant: &str,
    after: Position,
    types: Option<&[String]>,
    limit: i64,
) -> Result<OutboxRead, sqlx::Error> {
    // One statement, one snapshot: the horizon, the watermark and the rows agree.
    let mut query = sqlx::query_as::<_, RawRow>(read_statement(types.is_some()))
        .bind(tenant)
        .bind(after.xid())
        .bind(after.seq)
        .bind(limit);
    if let Some(types) = types {
        query = query.bind(types);
    }
    let raw = query.fetch_all(db).await?;

    let mut read = OutboxRead {
        xmin: 0,
        purged_through: None,
        tenant_last: None,
        held_back: false,
        rows: Vec::with_capacity(raw.len()),
    };
    for row in raw {
        read.xmin = row.xmin.0;
        read.held_back = row.held_back;
        read.purged_through = row.purged_tx.zip(row.purged_seq).map(pair);
        read.tenant_last = row.last_tx.zip(row.last_seq).map(pair);
        if let (Some(tx_id), Some(seq), Some(id), Some(event_type)) =
            (row.tx_id, row.seq, row.id, row.event_type)
        {
            read.rows.push(OutboxRow {
                position: Position::new(tx_id, seq),
                id,
                event_type,
                entity: row.entity.unwrap_or_default(),
                entity_id: row.entity_id.unwrap_or_default(),
                change: row.change.unwrap_or_default(),
                created: row.created.unwrap_or_default(),
                envelope: row.envelope.unwrap_or_default(),
                trace: TraceContext::from_stored(row.trace_parent, row.trace_state),
            });
        }
    }
    Ok(read)
}

fn pair((tx_id, seq): (Xid8, i64)) -> Position {
    Position::new(tx_id, seq)
}

/// A page of the feed as it is served, read under one snapshot: the envelopes already
/// joined into one JSON array, each appended as its row arrives. The server wrote every
/// envelope itself, so none is parsed again; and a thousand rows are neither decoded into
/// a thousand strings nor copied twice (per row, that and decoding every column by name
/// were most of the server's work on a page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopePage {
    /// As [`OutboxRead::xmin`].
    pub xmin: u64,
    purged_through: Option<Position>,
    /// As [`OutboxRead::held_back`].
    pub held_back: bool,
    /// `[envelope,envelope,…]`, in feed order.
    pub data: String,
    /// How many envelopes `data` holds.
    pub count: usize,
    /// The position of the last of them.
    pub last: Option<Position>,
    /// More events follow the page now.
    pub has_more: bool,
}

impl EnvelopePage {
    /// As [`OutboxRead::is_gap`].
    pub fn is_gap(&self, after: Position) -> bool {
        purged_after(self.purged_through, after)
    }
}

/// The most a page reserves up front (a page of 1,000 typical envelopes is about 250 KB).
const PAGE_RESERVE_MAX: usize = 1 << 20;

/// Column indexes of a page read's row, after the columns that say which page it is for:
/// the head's `xmin, purged_seq, purged_tx, held_back` and the envelope, NULL in the head;
/// an event's position in the first two.
const TX_ID: usize = 0;
const SEQ: usize = 1;
const PURGED_TX: usize = 2;
const HELD_BACK: usize = 3;
const ENVELOPE: usize = 4;

/// A page being assembled from its rows, in the order they arrive.
struct PageBuilder {
    page: EnvelopePage,
    limit: usize,
}

impl PageBuilder {
    fn new(limit: usize) -> Self {
        Self {
            page: EnvelopePage {
                xmin: 0,
                purged_through: None,
                held_back: false,
                data: String::from("["),
                count: 0,
                last: None,
                has_more: false,
            },
            limit,
        }
    }

    /// Takes one row of the page's statement, whose own columns start at `at`.
    fn take(&mut self, row: &PgRow, at: usize) -> Result<(), sqlx::Error> {
        let page = &mut self.page;
        // Unchecked: the columns' types are the statement's own; the check would compare
        // type infos on every row.
        let Some(envelope) = row.try_get_unchecked::<Option<&str>, _>(at + ENVELOPE)? else {
            let (xmin, purged_seq, purged_tx, held_back): (Xid8, Option<i64>, Option<Xid8>, bool) = (
                row.try_get(at + TX_ID)?,
                row.try_get(at + SEQ)?,
                row.try_get(at + PURGED_TX)?,
                row.try_get(at + HELD_BACK)?,
            );
            page.xmin = xmin.0;
            page.purged_through = purged_tx.zip(purged_seq).map(pair);
            page.held_back = held_back;
            return Ok(());
        };
        if page.count == self.limit {
            page.has_more = true;
            return Ok(());
        }
        if page.count == 0 {
            // Room for a page of envelopes like the first: one allocation, not a doubling
            // per size, but never more than `PAGE_RESERVE_MAX` on one envelope's word.
            let expected = envelope.len().saturating_add(1).saturating_mul(self.limit);
            page.data.reserve(expected.min(PAGE_RESERVE_MAX));
        } else {
            page.data.push(',');
        }
        page.data.push_str(envelope);
        page.count += 1;
        page.last = Some(Position::new(
            row.try_get_unchecked(at + TX_ID)?,
            row.try_get_unchecked(at + SEQ)?,
        ));
        Ok(())
    }

    fn finish(mut self) -> EnvelopePage {
        self.page.data.push(']');
        self.page
    }
}

/// One row more than a page holds tells whether more follow.
fn fetch_limit(limit: usize) -> i64 {
    i64::try_from(limit).map_or(i64::MAX, |limit| limit.saturating_add(1))
}

/// Up to `limit` events of `tenant` after `after` (of `types` only, when given), from
/// finished transactions, in feed order, as a page.
#[tracing::instrument(skip_all)]
pub async fn read_envelope_page(
    db: impl PgExecutor<'_>,
    tenant: &str,
    after: Position,
    types: Option<&[String]>,
    limit: usize,
) -> Result<EnvelopePage, sqlx::Error> {
    let all = page_statement!(all);
    let typed = page_statement!(typed);
    let mut rows = sqlx::query(if types.is_some() { typed } else { all })
        .bind(tenant)
        .bind(after.xid())
        .bind(after.seq)
        .bind(fetch_limit(limit));
    if let Some(types) = types {
        rows = rows.bind(types);
    }
    let mut rows = rows.fetch(db);
    let mut page = PageBuilder::new(limit);
    while let Some(row) = rows.try_next().await? {
        page.take(&row, 0)?;
    }
    Ok(page.finish())
}

/// One page of all of a tenant's types, as [`read_envelope_page`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageOf<'a> {
    pub tenant: &'a str,
    pub after: Position,
    pub limit: usize,
}

/// The pages of [`read_envelope_pages`], each as [`read_envelope_page`] without a type
/// filter, all under one snapshot. Each row starts with the ordinal (from 1) of the page
/// it belongs to; per page, a head row as in `page_statement!`, and its events in feed
/// order: the events come from one nested loop over the pages, each page's from its own
/// ordered index scan, the plan the single page's statement relies on too. Whether a page
/// is held back is likewise read from its own tenant's entries, as whether the tenant's
/// newest event is above the horizon: one index entry, in an order no other plan gives as
/// cheaply. Asked as "any event above the horizon?", PostgreSQL planned other scans: for
/// `EXISTS`, on statistics that saw none there, one hashed scan of every tenant's events
/// above the horizon (all of them, while a long transaction holds it back); for a
/// `LIMIT 1` probe, a sequential scan of the outbox it expected to stop early, once per
/// page (the large-outbox test in `tests/api/page_batches.rs`). Public so that a test can
/// ask PostgreSQL how it plans the very statement the readers run.
pub const PAGES_STATEMENT: &str = "
    WITH page AS (
        SELECT * FROM unnest($1::text[], $2::xid8[], $3::bigint[], $4::bigint[])
                      WITH ORDINALITY AS p(tenant, tx_id, seq, rows_wanted, ordinal)
    )
    SELECT p.ordinal, h.xmin, w.seq, w.tx_id, coalesce(newest.tx_id >= h.xmin, false),
           NULL::text
      FROM (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin) h
     CROSS JOIN page p
      LEFT JOIN outbox_watermarks w ON w.tenant_id = p.tenant
      LEFT JOIN LATERAL (
          SELECT tx_id FROM outbox WHERE tenant_id = p.tenant
           ORDER BY tenant_id DESC, tx_id DESC
           LIMIT 1
      ) newest ON true
    UNION ALL
    SELECT p.ordinal, o.tx_id, o.seq, NULL, NULL, o.envelope
      FROM (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin) h
     CROSS JOIN page p
     CROSS JOIN LATERAL (
         SELECT tx_id, seq, envelope FROM outbox
          WHERE (tenant_id, tx_id, seq) > (p.tenant, p.tx_id, p.seq)
            AND (tenant_id, tx_id) < (p.tenant, h.xmin)
          ORDER BY tenant_id, tx_id, seq
          LIMIT p.rows_wanted
     ) o";

/// A row of [`PAGES_STATEMENT`] for a page nobody asked for (the statement's own error).
#[derive(Debug, thiserror::Error)]
#[error("the page read answered a row for page {0}, which was not asked for")]
struct UnaskedPage(i64);

/// Several pages in one statement and one snapshot, in the order asked: one round trip
/// and one statement, where a page each would cost as many (a commit that wakes the
/// long-polls of fifty tenants reads fifty pages).
#[tracing::instrument(skip_all)]
pub async fn read_envelope_pages(
    db: impl PgExecutor<'_>,
    pages: &[PageOf<'_>],
) -> Result<Vec<EnvelopePage>, sqlx::Error> {
    let tenants: Vec<&str> = pages.iter().map(|page| page.tenant).collect();
    let tx_ids: Vec<Xid8> = pages.iter().map(|page| page.after.xid()).collect();
    let seqs: Vec<i64> = pages.iter().map(|page| page.after.seq).collect();
    let fetches: Vec<i64> = pages.iter().map(|page| fetch_limit(page.limit)).collect();
    let mut builders: Vec<PageBuilder> = pages
        .iter()
        .map(|page| PageBuilder::new(page.limit))
        .collect();
    let mut rows = sqlx::query(PAGES_STATEMENT)
        .bind(tenants)
        .bind(tx_ids)
        .bind(seqs)
        .bind(fetches)
        .fetch(db);
    while let Some(row) = rows.try_next().await? {
        let ordinal: i64 = row.try_get_unchecked(0)?;
        let builder = usize::try_from(ordinal - 1)
            .ok()
            .and_then(|index| builders.get_mut(index))
            .ok_or_else(|| sqlx::Error::ColumnDecode {
                index: "0".to_owned(),
                source: Box::new(UnaskedPage(ordinal)),
            })?;
        builder.take(&row, 1)?;
    }
    Ok(builders.into_iter().map(PageBuilder::finish).collect())
}

/// The stored envelope of one of `tenant`'s events.
#[tracing::instrument(skip_all)]
pub async fn get_event(
    db: impl PgExecutor<'_>,
    tenant: &str,
    id: Uuid,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT envelope FROM outbox WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .fetch_optional(db)
        .await
}

/// The position just before the tenant's first event created at or after `since`, or
/// `None` when there is no such event.
#[tracing::instrument(skip_all)]
pub async fn position_before(
    db: impl PgExecutor<'_>,
    tenant: &str,
    since: DateTime<Utc>,
) -> Result<Option<Position>, sqlx::Error> {
    let row: Option<(Xid8, i64)> = sqlx::query_as(
        "SELECT tx_id, seq FROM outbox WHERE tenant_id = $1 AND created >= $2
         ORDER BY outbox.tx_id, outbox.seq LIMIT 1",
    )
    .bind(tenant)
    .bind(since)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|(tx_id, seq)| Position::new(tx_id, seq - 1)))
}

/// The horizon now: no event can ever appear at or before `Position::horizon(xmin)`, and
/// no transaction has an id at or above `next` yet.
#[derive(Debug, Clone, Copy)]
pub struct Horizon {
    pub xmin: u64,
    pub next: u64,
}

#[tracing::instrument(skip_all)]
pub async fn horizon(db: impl PgExecutor<'_>) -> Result<Horizon, sqlx::Error> {
    let (xmin, next): (Xid8, Xid8) = sqlx::query_as(
        "SELECT pg_snapshot_xmin(s), pg_snapshot_xmax(s) FROM pg_current_snapshot() AS s",
    )
    .fetch_one(db)
    .await?;
    Ok(Horizon {
        xmin: xmin.0,
        next: next.0,
    })
}

/// The largest transaction id stored in positions, when it is not below the cluster's next
/// one: the database was restored from a logical dump into another cluster, whose
/// transaction ids start over. Every stored position is then ahead of every new event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewound {
    pub stored: u64,
    pub next: u64,
}

#[tracing::instrument(skip_all)]
pub async fn rewound(db: impl PgExecutor<'_>) -> Result<Option<Rewound>, sqlx::Error> {
    let (stored, next): (Option<Xid8>, Xid8) = sqlx::query_as(
        "SELECT greatest((SELECT tx_id FROM outbox ORDER BY tx_id DESC LIMIT 1),
                         (SELECT tx_id FROM outbox_watermarks ORDER BY tx_id DESC LIMIT 1)),
                pg_snapshot_xmax(pg_current_snapshot())",
    )
    .fetch_one(db)
    .await?;
    Ok(stored
        .filter(|stored| *stored >= next)
        .map(|stored| Rewound {
            stored: stored.0,
            next: next.0,
        }))
}

/// The tenant's newest events before `before` (of `types` only, when given), newest first,
/// only from finished transactions; and the horizon's xmin of the same snapshot.
#[tracing::instrument(skip_all)]
pub async fn recent(
    db: impl PgExecutor<'_>,
    tenant: &str,
    before: Option<Position>,
    types: Option<&[String]>,
    limit: i64,
) -> Result<(u64, Vec<(Position, String)>), sqlx::Error> {
    let rows: Vec<RecentRow> = sqlx::query_as(
        "WITH horizon AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin)
         SELECT h.xmin, o.tx_id, o.seq, o.envelope
         FROM horizon h
         LEFT JOIN LATERAL (
             SELECT tx_id, seq, envelope FROM outbox
             WHERE tenant_id = $1
               AND tx_id < h.xmin
               AND ($2::xid8 IS NULL OR (tx_id, seq) < ($2, $3))
               AND ($4::text[] IS NULL OR event_type = ANY ($4))
             ORDER BY tx_id DESC, seq DESC
             LIMIT $5
         ) o ON true",
    )
    .bind(tenant)
    .bind(before.map(Position::xid))
    .bind(before.map_or(0, |p| p.seq))
    .bind(types)
    .bind(limit)
    .fetch_all(db)
    .await?;
    let xmin = rows.first().map_or(0, |row| row.xmin.0);
    let events = rows
        .into_iter()
        .filter_map(|row| Some((Position::new(row.tx_id?, row.seq?), row.envelope?)))
        .collect();
    Ok((xmin, events))
}

/// The horizon, and one event when there is one (the join is outer).
#[derive(sqlx::FromRow)]
struct RecentRow {
    xmin: Xid8,
    tx_id: Option<Xid8>,
    seq: Option<i64>,
    envelope: Option<String>,
}

/// Where a reader that wants the tenant's events from `since` on starts: just before the
/// first finished event (in feed order) created at or after `since`, or at the horizon
/// when there is none yet. One snapshot, so an event still being written lands after it.
#[tracing::instrument(skip_all)]
pub async fn start_at(
    db: impl PgExecutor<'_>,
    tenant: &str,
    since: DateTime<Utc>,
) -> Result<Position, sqlx::Error> {
    let (xmin, tx_id, seq): (Xid8, Option<Xid8>, Option<i64>) = sqlx::query_as(
        "WITH horizon AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin)
         SELECT h.xmin, o.tx_id, o.seq
         FROM horizon h
         LEFT JOIN LATERAL (
             SELECT tx_id, seq FROM outbox
             WHERE tenant_id = $1 AND created >= $2 AND tx_id < h.xmin
             ORDER BY tx_id, seq LIMIT 1
         ) o ON true",
    )
    .bind(tenant)
    .bind(since)
    .fetch_one(db)
    .await?;
    Ok(match tx_id.zip(seq) {
        Some((tx_id, seq)) => Position::new(tx_id, seq - 1),
        None => Position::horizon(xmin.0),
    })
}

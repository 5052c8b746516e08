//! Sealing every stored secret with the newest key: at start-up for values still in plain
//! text (rows from before encryption, or written by an older release during an upgrade),
//! and by `eventgate secrets rotate` for values sealed with an older key. It works online,
//! in batches of one short transaction each (rows locked only while they are resealed),
//! and is resumable: what is left is found by its stored form, so a second run carries on
//! where an interrupted one stopped.

use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::secrets::{Keyring, places};

const BATCH: i64 = 100;

/// Which stored values to reseal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reseal {
    /// Values in plain text only.
    Plaintext,
    /// Every value not sealed with the newest key.
    NotNewest,
}

#[derive(sqlx::FromRow)]
struct Sealable {
    id: Uuid,
    config: Value,
    secret: Option<String>,
    previous_secret: Option<String>,
}

/// Reseals what `which` names, batch by batch; returns how many destinations changed.
pub async fn reseal(pool: &PgPool, keyring: &Keyring, which: Reseal) -> Result<u64, sqlx::Error> {
    // Sealed values start with "egs1:<key id>:"; a LIKE on that prefix finds the rest.
    let kept = match which {
        Reseal::Plaintext => "egs1:%".to_owned(),
        Reseal::NotNewest => format!("egs1:{}:%", keyring.newest_id()),
    };
    let undecodable = |err| sqlx::Error::Decode(Box::new(err));
    let mut changed = 0;
    let mut after = Uuid::nil();
    loop {
        let mut tx = pool.begin().await?;
        let rows: Vec<Sealable> = sqlx::query_as(
            "SELECT id, config, secret, previous_secret FROM destinations
             WHERE id > $1
               AND (coalesce(config->>'url', $2) NOT LIKE $2
                    OR coalesce(config#>>'{sasl,password}', $2) NOT LIKE $2
                    OR coalesce(secret, $2) NOT LIKE $2
                    OR coalesce(previous_secret, $2) NOT LIKE $2)
             ORDER BY id LIMIT $3 FOR UPDATE",
        )
        .bind(after)
        .bind(&kept)
        .bind(BATCH)
        .fetch_all(&mut *tx)
        .await?;
        let Some(last) = rows.last() else {
            return Ok(changed);
        };
        after = last.id;
        for row in &rows {
            let reseal = |value: Option<String>| -> Result<Option<String>, sqlx::Error> {
                places::open_signing_secret(keyring, row.id, value)
                    .and_then(|plain| {
                        plain
                            .map(|plain| places::seal_signing_secret(keyring, row.id, &plain))
                            .transpose()
                    })
                    .map_err(undecodable)
            };
            let config = places::open_settings(keyring, row.id, row.config.clone())
                .and_then(|plain| places::seal_settings(keyring, row.id, &plain))
                .map_err(undecodable)?;
            sqlx::query(
                "UPDATE destinations SET config = $2, secret = $3, previous_secret = $4
                 WHERE id = $1",
            )
            .bind(row.id)
            .bind(config)
            .bind(reseal(row.secret.clone())?)
            .bind(reseal(row.previous_secret.clone())?)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        changed += rows.len() as u64;
    }
}

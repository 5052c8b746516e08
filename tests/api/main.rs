//! Integration tests against a real PostgreSQL: each test gets a fresh database from
//! `#[sqlx::test]` (DATABASE_URL names the server) and a real eventgate on a free port.

mod address_policy;
mod api_keys;
mod audit;
mod broker_restart;
mod brokers;
mod catalogue;
mod contract;
mod database_restart;
mod delivery;
mod deposits;
mod faults;
mod feed;
mod foundation;
mod helpers;
mod horizon;
mod kafka;
mod kafka_peer;
mod operations;
mod positions;
mod private_rabbit;
mod proxy;
mod receiver;
mod retention;
mod scale_out;
mod secrets_at_rest;
mod slow_consumers;
mod startup;
mod webhooks;
mod zero_config;

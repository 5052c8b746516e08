//! eventgate: the events API server between a wealth-management platform and its b2b
//! clients. See `README.md` for running it and `docs/ARCHITECTURE.md` for the design.

pub mod app;
pub mod audit;
pub mod auth;
pub mod catalogue;
pub mod cli;
pub mod commands;
pub mod config;
pub mod console;
pub mod database;
pub mod delivery;
pub mod egress;
pub mod error;
pub mod feed;
pub mod heap_trim;
pub mod held_connection;
pub mod http;
pub mod idempotency;
pub mod key_cache;
pub mod limits;
pub mod listener;
pub mod maintenance;
pub mod metrics;
pub mod pg_embedded;
pub mod publish;
pub mod rate_limit;
pub mod replay_cache;
pub mod request_front;
pub mod request_guard;
pub mod secrets;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod write_batcher;

//! The command line: `serve`, `migrate`, `openapi`, `keys create`, `secrets rotate`. Parsing only; the work is done by
//! the library functions each subcommand calls.

use clap::{Parser, Subcommand};

use crate::auth::Role;
use crate::config::{DatabaseArgs, LogFormat, SecretsArgs, ServerConfig};

#[derive(Debug, Parser)]
#[command(
    name = "eventgate",
    version,
    about = "Events API server between a wealth platform and its b2b clients"
)]
pub struct Cli {
    /// Log output format.
    #[arg(
        long,
        env = "EVENTGATE_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (migrates the database first).
    Serve {
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(flatten)]
        server: Box<ServerConfig>,
    },
    /// Apply pending database migrations and exit.
    Migrate {
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Print the HTTP contract (OpenAPI 3.1, YAML), generated from this binary's routes.
    Openapi {
        /// Instead of printing it, compare it with this file and fail when they differ.
        #[arg(long, value_name = "FILE")]
        check: Option<std::path::PathBuf>,
    },
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Manage the secrets stored encrypted in the database.
    Secrets {
        #[command(subcommand)]
        command: SecretsCommand,
    },
    /// Ask a running server whether it is ready: exits 0 when the URL answers 2xx within
    /// the timeout, 1 otherwise (a container HEALTHCHECK without a shell or curl).
    Probe {
        /// Default: `/readyz` on the port of EVENTGATE_LISTEN (8080), on 127.0.0.1.
        #[arg(long)]
        url: Option<String>,
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 3)]
        timeout: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Re-encrypt every stored secret with the newest key (the first of
    /// EVENTGATE_SECRETS_KEY; the older ones must still be listed after it). Online, in
    /// batches; run it again to resume if it was interrupted.
    Rotate {
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(flatten)]
        secrets: SecretsArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create an API key and print it once (only its hash is stored).
    Create {
        #[command(flatten)]
        database: DatabaseArgs,
        /// Tenant the key acts for (required for role `client`).
        #[arg(long)]
        tenant: Option<String>,
        /// `client` (one tenant) or `platform` (all tenants).
        #[arg(long, value_enum)]
        role: Role,
    },
}

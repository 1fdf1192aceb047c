//! Storage: where the database comes from ([`Database::connect`]: a URL, or the private cluster of
//! [`cluster`]), the migrations, and the narrow interface the rest of svamlgate uses ([`store::Store`]).

pub mod autogroup;
pub mod cluster;
pub mod copy;
pub mod documents;
pub mod flow_changes;
pub mod flows;
pub mod outbound;
pub mod store;
pub mod writeback;

use std::time::Duration;

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

use crate::config::DatabaseArgs;

/// The migrations in `migrations/`, embedded at build time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A connection pool, plus the private cluster behind it when svamlgate runs its own.
#[derive(Debug)]
pub struct Database {
    /// The pool.
    pub pool: PgPool,
    cluster: Option<cluster::Cluster>,
}

impl Database {
    /// Connects to `DATABASE_URL`, or starts (and on first use initialises) the private cluster in the
    /// data directory.
    pub async fn connect(args: &DatabaseArgs) -> anyhow::Result<Database> {
        let (url, cluster) = match &args.database_url {
            Some(url) => (url.expose().to_owned(), None),
            None => {
                let c =
                    cluster::Cluster::start_persistent(&args.data_dir, args.pg_bin_dir.as_deref())
                        .await
                        .context("starting the embedded PostgreSQL cluster")?;
                tracing::info!(
                    data_dir = %args.data_dir.display(),
                    psql = %c.public_url(),
                    "embedded PostgreSQL cluster started (password in {}/pg-password)",
                    args.data_dir.display()
                );
                (c.url().to_owned(), Some(c))
            }
        };
        let pool = pool_for(&url, args.db_max_connections).await?;
        Ok(Database { pool, cluster })
    }

    /// Wraps an existing pool (tests).
    pub fn from_pool(pool: PgPool) -> Database {
        Database {
            pool,
            cluster: None,
        }
    }

    /// The embedded cluster's supervisor state, when svamlgate runs its own.
    pub fn cluster_health(&self) -> Option<std::sync::Arc<cluster::Health>> {
        self.cluster.as_ref().map(cluster::Cluster::health)
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        MIGRATOR
            .run(&self.pool)
            .await
            .context("running migrations")?;
        Ok(())
    }

    /// Closes the pool and stops the private cluster, if any.
    pub async fn shutdown(mut self) {
        self.pool.close().await;
        if let Some(mut c) = self.cluster.take() {
            tokio::task::spawn_blocking(move || c.stop()).await.ok();
            tracing::info!("embedded PostgreSQL cluster stopped");
        }
    }
}

/// A pool with the timeouts svamlgate wants: callbacks must never wait long for a connection.
pub async fn pool_for(url: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    let options: PgConnectOptions = url
        .parse()
        .context("DATABASE_URL is not a valid PostgreSQL URL")?;
    let options = options.application_name("svamlgate");
    Ok(PgPoolOptions::new()
        .max_connections(max_connections)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(2))
        .connect_lazy_with(options))
}
pub mod refusals;

//! Where jobs, nonces and idempotency records live: in memory (tests,
//! `lacre demo`), in SQLite (one machine, the default of `lacre serve`),
//! or in PostgreSQL (many stateless replicas on one database).

mod sql;

pub use sql::SqlStore;

use crate::error::StoreError;
use crate::jobs::{JobStore, MemoryJobStore};
use crate::nonce::{BatchedNonceStore, MemoryNonceStore, NonceBackend};
use std::sync::Arc;

/// The kind of store a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// `memory`: nothing survives a restart; one process only.
    Memory,
    /// `sqlite://PATH`: one machine.
    Sqlite,
    /// `postgres://...`: many replicas.
    Postgres,
}

impl StoreKind {
    /// Which kind `url` names, or `None` if it names none.
    pub fn of(url: &str) -> Option<StoreKind> {
        if url == "memory" {
            Some(StoreKind::Memory)
        } else if url.starts_with("sqlite:") {
            Some(StoreKind::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(StoreKind::Postgres)
        } else {
            None
        }
    }
}

/// The opened stores (one object may implement both traits).
#[derive(Clone)]
pub struct Stores {
    /// What kind.
    pub kind: StoreKind,
    /// Jobs and idempotency records.
    pub jobs: Arc<dyn JobStore>,
    /// Nonces.
    pub nonces: Arc<dyn NonceBackend>,
    /// The audit log (written only with `[audit] enabled`).
    pub audit: Arc<dyn crate::audit::AuditStore>,
}

/// The URL with any password replaced, for logs: in the user-info part
/// (`postgres://u:pw@h`) and in query parameters (`?password=pw`,
/// `?sslpassword=pw`).
pub fn redact(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut out = match (base.find("://"), base.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = base.get(scheme_end + 3..at).unwrap_or_default();
            match userinfo.split_once(':') {
                Some((user, _)) => format!(
                    "{}{user}:***{}",
                    base.get(..scheme_end + 3).unwrap_or_default(),
                    base.get(at..).unwrap_or_default()
                ),
                None => base.to_owned(),
            }
        }
        _ => base.to_owned(),
    };
    if let Some(q) = query {
        let params: Vec<String> = q
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k.to_ascii_lowercase().contains("password") => format!("{k}=***"),
                _ => kv.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

/// Opens the store `url` names and brings its schema up to date, reading
/// stored JSON with the default parsing limits.
pub async fn open(url: &str) -> Result<Stores, StoreError> {
    open_with_limits(url, lacre_proto::ParseLimits::default()).await
}

/// As [`open`], reading stored JSON with the server's own parsing limits.
pub async fn open_with_limits(
    url: &str,
    limits: lacre_proto::ParseLimits,
) -> Result<Stores, StoreError> {
    match StoreKind::of(url) {
        Some(StoreKind::Memory) => Ok(Stores {
            kind: StoreKind::Memory,
            jobs: Arc::new(MemoryJobStore::new()),
            nonces: Arc::new(MemoryNonceStore::new()),
            audit: Arc::new(crate::audit::MemoryAudit::new()),
        }),
        Some(kind) => {
            let store = SqlStore::connect(url, limits).await?;
            Ok(Stores {
                kind,
                jobs: store.clone(),
                audit: store.clone(),
                nonces: Arc::new(BatchedNonceStore::new(store)),
            })
        }
        None => Err(StoreError::UnsupportedUrl(redact(url))),
    }
}

/// Where `lacre serve` journals the nonces of a SQLite store: the
/// directory `<database file>-nonces` beside it. `None` for other stores
/// and for an in-memory SQLite database.
pub fn journal_dir(url: &str) -> Option<std::path::PathBuf> {
    if StoreKind::of(url) != Some(StoreKind::Sqlite) {
        return None;
    }
    let file = sql::sqlite_file(url)?;
    let mut dir = file.into_os_string();
    dir.push("-nonces");
    Some(dir.into())
}

/// Opens a SQLite store whose nonces are kept in a journal beside the
/// database (see [`crate::NonceJournal`]) instead of in its table: the
/// default of `lacre serve`. Live nonces found in the table (written by an
/// earlier version) are moved into the journal first.
pub async fn open_journaled(
    url: &str,
    limits: lacre_proto::ParseLimits,
    fsync: bool,
    clock: Arc<dyn lacre_proto::Clock>,
) -> Result<Stores, StoreError> {
    let dir = journal_dir(url).ok_or_else(|| {
        StoreError::InvalidUrl(format!(
            "{}: a nonce journal needs a SQLite database file",
            redact(url)
        ))
    })?;
    let store = SqlStore::connect(url, limits).await?;
    let journal = crate::nonce::NonceJournal::open_with_clock(&dir, fsync, clock.clone())
        .await
        .map_err(|e| StoreError::Journal(crate::error::Cause::new(e)))?;
    let moved = store.move_nonces_into(&journal, clock.now_ms()).await?;
    if moved > 0 {
        tracing::info!(moved, "nonces moved from the database into the journal");
    }
    Ok(Stores {
        kind: StoreKind::Sqlite,
        jobs: store.clone(),
        audit: store,
        nonces: journal,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_redaction() {
        assert_eq!(StoreKind::of("memory"), Some(StoreKind::Memory));
        assert_eq!(StoreKind::of("sqlite://x.db"), Some(StoreKind::Sqlite));
        assert_eq!(
            StoreKind::of("postgresql://h/db"),
            Some(StoreKind::Postgres)
        );
        assert_eq!(StoreKind::of("mysql://h"), None);
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        // files_and_secrets: a password in the query is hidden too.
        assert_eq!(
            redact("postgres://u@h/db?password=hunter2&sslmode=require"),
            "postgres://u@h/db?password=***&sslmode=require"
        );
        assert_eq!(
            redact("postgres://u:a@h/db?sslpassword=x"),
            "postgres://u:***@h/db?sslpassword=***"
        );
    }

    #[tokio::test]
    async fn an_unsupported_url_is_not_an_outage() {
        let err = open("mysql://u:pw@h/db").await.err();
        assert_eq!(
            err,
            Some(StoreError::UnsupportedUrl("mysql://u:***@h/db".to_owned()))
        );
    }

    #[tokio::test]
    async fn an_outage_keeps_its_cause() {
        use std::error::Error as _;
        // Nothing listens on port 1: the connection error is the source.
        let err = open("postgres://u@127.0.0.1:1/db?connect_timeout=1")
            .await
            .err()
            .expect("no database listens on port 1");
        assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
        assert!(err.source().is_some(), "{err}");
    }
}

//! The `database` source: one parameterized query through sqlx's `Any` driver (PostgreSQL,
//! MySQL/MariaDB, SQLite), pooled, the username always bound as a parameter, never spliced
//! into the SQL.
//!
//! The query returns at most one row, with columns by name: `password_hash` (required; see
//! [`super::hash`]), `roles`, `scopes` (text lists) and `subject`. A NULL or unparsable hash
//! rejects the login and logs that the row is unusable (not which user); a NULL hash also
//! ends the user's refreshes (a way to disable a user). An unknown user still costs one hash
//! check, against the last real hash seen (a 100 000-round PBKDF2 until one is), and
//! `roles_query` runs only after the password matched, so the answer's timing does not tell
//! unknown names from wrong passwords. A query that returns two rows rejects the login.

use super::hash::PasswordHash;
use super::{split_list, verify_off_runtime, Answer, Identity, IdentityError};
use crate::error::Errors;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Column, Row as _};
use std::str::FromStr as _;
use std::sync::Mutex;
use std::time::Duration;

pub struct DbSource {
    /// Made on first use, on the identity runtime (the pool spawns its maintenance there).
    pool: tokio::sync::OnceCell<AnyPool>,
    options: AnyPoolOptions,
    connect: AnyConnectOptions,
    query: String,
    roles_query: Option<String>,
    sep: String,
    /// Checked for unknown names: the last real hash seen (a PBKDF2 dummy until then).
    last_hash: Mutex<PasswordHash>,
}

fn err(what: &str, e: sqlx::Error) -> IdentityError {
    if matches!(e, sqlx::Error::PoolTimedOut) {
        return IdentityError::Timeout;
    }
    // sqlx's messages carry no parameter values (the username is bound, not formatted).
    let kind = match &e {
        sqlx::Error::Io(_) => "I/O error".to_string(),
        sqlx::Error::Tls(_) => "TLS error".to_string(),
        sqlx::Error::Database(d) => format!("database error {}", d.code().unwrap_or_default()),
        other => other.to_string(),
    };
    IdentityError::Unavailable(format!("database {what}: {kind}"))
}

fn text(row: &AnyRow, col: &str) -> Result<Option<String>, IdentityError> {
    if !row.columns().iter().any(|c| c.name() == col) {
        return Ok(None);
    }
    row.try_get::<Option<String>, _>(col)
        .map_err(|_| IdentityError::Unavailable(format!("database: column {col} is not text")))
}

impl DbSource {
    pub fn compile(
        c: &super::config::DatabaseConfig,
        timeout: Duration,
        path: &str,
        errs: &mut Errors,
    ) -> Option<DbSource> {
        let super::config::DatabaseConfig {
            url,
            query,
            roles_query,
            roles_separator,
            pool_size,
        } = c;
        let before = errs.0.len();
        let placeholder = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            "$1"
        } else if url.starts_with("mysql://")
            || url.starts_with("mariadb://")
            || url.starts_with("sqlite:")
        {
            "?"
        } else {
            errs.push(
                format!("{path}.url"),
                "must be a postgres://, mysql:// or sqlite: URL",
            );
            "?"
        };
        for (k, q) in [
            ("query", Some(query)),
            ("roles_query", roles_query.as_ref()),
        ] {
            if let Some(q) = q {
                if !q.contains(placeholder) {
                    errs.push(
                        format!("{path}.{k}"),
                        format!("must take the username as the parameter {placeholder}"),
                    );
                }
            }
        }
        if *pool_size == 0 {
            errs.push(format!("{path}.pool_size"), "must be at least 1");
        }
        if roles_separator.is_empty() {
            errs.push(format!("{path}.roles_separator"), "must not be empty");
        }
        if errs.0.len() > before {
            return None;
        }
        let dummy = match super::secret::SecretHash::dummy(100_000) {
            Ok(d) => d,
            Err(e) => {
                errs.push(path, e);
                return None;
            }
        };
        static DRIVERS: std::sync::Once = std::sync::Once::new();
        DRIVERS.call_once(sqlx::any::install_default_drivers);
        // mariadb:// is the same wire protocol.
        let url = match url.strip_prefix("mariadb://") {
            Some(rest) => format!("mysql://{rest}"),
            None => url.clone(),
        };
        let options = AnyPoolOptions::new()
            .max_connections(u32::try_from(*pool_size).unwrap_or(u32::MAX))
            .min_connections(0)
            .acquire_timeout(timeout)
            .idle_timeout(Some(Duration::from_secs(300)));
        match AnyConnectOptions::from_str(&url) {
            Ok(connect) => Some(DbSource {
                pool: tokio::sync::OnceCell::new(),
                options,
                connect,
                query: query.clone(),
                roles_query: roles_query.clone(),
                sep: roles_separator.clone(),
                last_hash: Mutex::new(PasswordHash::Pbkdf2(dummy)),
            }),
            Err(_) => {
                errs.push(format!("{path}.url"), "not a valid URL");
                None
            }
        }
    }

    async fn pool(&self) -> &AnyPool {
        self.pool
            .get_or_init(|| async { self.options.clone().connect_lazy_with(self.connect.clone()) })
            .await
    }

    /// The user's row: `(hash, identity)`, None when no single row matches.
    /// The user's row. A value the database refuses as data (PostgreSQL SQLSTATE class 22,
    /// e.g. a NUL; MySQL's charset and collation errors 1267, 1271, 1366) cannot be a user:
    /// `Unusable`, not a source failure anyone could trigger.
    async fn row(&self, username: &str) -> Result<Row, IdentityError> {
        let rows = match sqlx::query(&self.query)
            .bind(username.to_string())
            .fetch_all(self.pool().await)
            .await
        {
            Ok(rows) => rows,
            Err(sqlx::Error::Database(d)) if refused_as_data(d.as_ref()) => {
                return Ok(Row::Unusable)
            }
            Err(e) => return Err(err("query", e)),
        };
        let row = match rows.as_slice() {
            [] => return Ok(Row::Missing),
            [row] => row,
            _ => {
                log::warn!("database source: the query returned several rows; login refused");
                return Ok(Row::Unusable);
            }
        };
        let hash = text(row, "password_hash")?;
        let roles = text(row, "roles")?
            .map(|r| split_list(&r, &self.sep))
            .unwrap_or_default();
        let scopes = text(row, "scopes")?
            .map(|r| split_list(&r, &self.sep))
            .unwrap_or_default();
        let subject = text(row, "subject")?.unwrap_or_else(|| username.to_string());
        Ok(Row::Found(
            hash,
            Identity {
                subject,
                roles,
                scopes,
            },
        ))
    }

    /// Add the `roles_query` rows (run only for an authenticated or refreshed user, so it
    /// costs nothing an unknown name could be told apart by).
    async fn with_roles(
        &self,
        username: &str,
        mut id: Identity,
    ) -> Result<Identity, IdentityError> {
        if let Some(q) = &self.roles_query {
            let rows = sqlx::query(q)
                .bind(username.to_string())
                .fetch_all(self.pool().await)
                .await
                .map_err(|e| err("roles query", e))?;
            for r in rows.iter().take(1000) {
                if let Ok(Some(role)) = r.try_get::<Option<String>, _>(0) {
                    id.roles.push(role);
                }
            }
        }
        id.roles.sort();
        id.roles.dedup();
        Ok(id)
    }

    pub async fn authenticate(
        &self,
        username: &str,
        password: &str,
        deadline: tokio::time::Instant,
    ) -> Result<Answer, IdentityError> {
        let (hash, id) = match self.row(username).await? {
            Row::Found(Some(h), id) => match PasswordHash::parse(&h) {
                Ok(h) => {
                    if let Ok(mut l) = self.last_hash.lock() {
                        *l = h.clone();
                    }
                    (Some(h), Some(id))
                }
                Err(e) => {
                    log::warn!("database source: a user's password_hash is unusable: {e}");
                    (None, None)
                }
            },
            Row::Found(None, _) | Row::Missing | Row::Unusable => (None, None),
        };
        let Some(hash) = hash else {
            // Unknown user or no usable hash: the same work as a real check, then reject.
            let dummy = self.last_hash.lock().ok().map(|l| l.clone());
            if let Some(d) = dummy {
                verify_off_runtime(d, password, deadline).await?;
            }
            return Ok(Answer::Rejected);
        };
        if !verify_off_runtime(hash, password, deadline).await? {
            return Ok(Answer::Rejected);
        }
        match id {
            Some(id) => Ok(Answer::Accepted(self.with_roles(username, id).await?)),
            None => Ok(Answer::Rejected),
        }
    }

    /// A refresh: the row must still be there with a hash (a NULL hash disables the user).
    pub async fn lookup(&self, username: &str) -> Result<Answer, IdentityError> {
        Ok(match self.row(username).await? {
            Row::Found(Some(_), id) => Answer::Accepted(self.with_roles(username, id).await?),
            Row::Found(None, _) | Row::Missing => Answer::Gone,
            Row::Unusable => Answer::Unsure,
        })
    }
}

/// What the query found for a username.
enum Row {
    /// No row.
    Missing,
    /// Several rows, or a value the database refused as data.
    Unusable,
    /// One row: its `password_hash` (None: NULL) and the identity without `roles_query`.
    Found(Option<String>, Identity),
}

fn refused_as_data(d: &dyn sqlx::error::DatabaseError) -> bool {
    if let Some(m) = d.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
        return matches!(m.number(), 1267 | 1271 | 1366);
    }
    d.code().is_some_and(|c| c.starts_with("22"))
}

//! The `idempotency_keys` table: a request with an `Idempotency-Key` is answered once; a
//! retry of the same request gets the first answer, another request with the key is refused.

use diesel::prelude::*;
use serde_json::Value;

use super::schema::idempotency_keys;
use super::DbError;

/// What an earlier request with the same key got.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The same request body (a retry) or another one.
    pub same_request: bool,
    pub status: i16,
    pub response: Value,
}

/// Runs `create` once per `key` (in the caller's transaction: call inside one). With a key,
/// concurrent retries are serialised by a transaction-scoped advisory lock; an earlier
/// answer for the key is returned as `Err(Seen)` instead of running `create` again.
pub fn once<T: serde::Serialize>(
    conn: &mut PgConnection,
    key: Option<&str>,
    request_hash: &str,
    status: i16,
    create: impl FnOnce(&mut PgConnection) -> Result<T, DbError>,
) -> Result<Result<T, Seen>, DbError> {
    if let Some(k) = key {
        diesel::sql_query("SELECT pg_advisory_xact_lock(hashtext($1))")
            .bind::<diesel::sql_types::Text, _>(k)
            .execute(conn)?;
        let seen: Option<(String, i16, Value)> = idempotency_keys::table
            .find(k)
            .select((
                idempotency_keys::request_hash,
                idempotency_keys::status,
                idempotency_keys::response,
            ))
            .first(conn)
            .optional()?;
        if let Some((hash, status, response)) = seen {
            return Ok(Err(Seen {
                same_request: hash == request_hash,
                status,
                response,
            }));
        }
    }
    let created = create(conn)?;
    if let Some(k) = key {
        diesel::insert_into(idempotency_keys::table)
            .values((
                idempotency_keys::key.eq(k),
                idempotency_keys::request_hash.eq(request_hash),
                idempotency_keys::status.eq(status),
                idempotency_keys::response.eq(serde_json::to_value(&created).unwrap_or_default()),
            ))
            .execute(conn)?;
    }
    Ok(Ok(created))
}

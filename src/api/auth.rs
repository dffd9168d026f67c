//! Bearer-token authentication and role checks.
//!
//! Tokens are configured as SHA-256 hashes; a presented token is hashed and compared in
//! constant time against every configured hash (no early exit). The token itself is never
//! stored, logged or echoed.

use std::future::{ready, Ready};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::AUTHORIZATION;
use actix_web::middleware::Next;
use actix_web::{web, Error, FromRequest, HttpMessage, HttpRequest};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::input::InputProblem;
use crate::config::{Role, TokenConfig};
use crate::db::run_tokens::{RunGrant, RUN_TOKEN_PREFIX};

/// A new random token (`ovs_` + 64 hex digits) and its SHA-256 (hex) for the configuration.
pub fn new_token() -> (String, String) {
    crate::stdx::secrets::new_token("ovs_")
}

pub use crate::stdx::secrets::hash_token;

struct Entry {
    name: String,
    role: Role,
    hash: [u8; 32],
}

/// The accepted tokens.
#[derive(Default)]
pub struct TokenSet {
    entries: Vec<Entry>,
}

impl TokenSet {
    pub fn from_config(tokens: &[TokenConfig]) -> Self {
        let mut set = Self::default();
        for t in tokens {
            set.add_hash(&t.name, t.role, &t.sha256);
        }
        set
    }

    pub fn add_hash(&mut self, name: &str, role: Role, sha256_hex: &str) {
        let mut hash = [0u8; 32];
        if hex::decode_to_slice(sha256_hex, &mut hash).is_ok() {
            self.entries.push(Entry {
                name: name.to_string(),
                role,
                hash,
            });
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn authenticate(&self, presented: &str) -> Option<Caller> {
        let digest = Sha256::digest(presented.as_bytes());
        let mut found: Option<&Entry> = None;
        for entry in &self.entries {
            if bool::from(entry.hash.ct_eq(digest.as_slice())) {
                found = Some(entry);
            }
        }
        found.map(|e| Caller {
            name: e.name.clone(),
            role: e.role,
            run: None,
        })
    }
}

/// Reads `<state_dir>/admin.token`, creating it (mode 0600) with a new admin token if it
/// does not exist. Returns the token's hash; the token itself stays in the file.
pub fn bootstrap_admin_token(path: &Path) -> std::io::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(hash_token(text.trim())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let (token, hash) = new_token();
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)?;
            writeln!(f, "{token}")?;
            Ok(hash)
        }
        Err(e) => Err(e),
    }
}

/// The authenticated caller of an `/api/v1` request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    pub role: Role,
    /// A running program's run token (`OVERSEER_RUN_TOKEN`): it may do only what the grant
    /// says, on the routes that take `AsViewerOrRun` / `AsOperatorOrRun`.
    pub run: Option<RunGrant>,
}

/// What a run token may do, said once for every refusal.
const RUN_TOKEN_SCOPE: &str = "a run token may only read, consume and refund the quotas in its \
     job's payload.quotas, and report progress and notices for its own run";

impl Caller {
    /// 403 unless the caller's role is at least `role` (a run token never has one).
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.run.is_some() {
            return Err(ApiError::forbidden(RUN_TOKEN_SCOPE));
        }
        if self.role >= role {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this needs the {role} role; token `{}` has {}",
                self.name, self.role
            )))
        }
    }
}

impl Caller {
    /// For a run token: 403 unless `quota` is one its job's payload lists.
    pub fn may_use_quota(&self, quota: &str) -> Result<(), ApiError> {
        match &self.run {
            Some(g) if !g.quotas.iter().any(|q| q == quota) => {
                Err(ApiError::forbidden(RUN_TOKEN_SCOPE))
            }
            _ => Ok(()),
        }
    }

    /// For a run token: 403 unless `run_id` is its own run.
    pub fn may_report_on(&self, run_id: uuid::Uuid) -> Result<(), ApiError> {
        match &self.run {
            Some(g) if g.run_id != run_id => Err(ApiError::forbidden(RUN_TOKEN_SCOPE)),
            _ => Ok(()),
        }
    }
}

/// The authenticated caller, with `role` checked when given (a run token passes only where
/// `run_ok`), then what the input gate found wrong with the request: 401, then 403, then
/// the input error, before any other extractor reads the body.
fn caller_for(req: &HttpRequest, role: Option<Role>, run_ok: bool) -> Result<Caller, ApiError> {
    let caller = req
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| ApiError::unauthorized("missing bearer token"))?;
    match role {
        Some(_) if run_ok && caller.run.is_some() => {}
        Some(role) => caller.require(role)?,
        None => {}
    }
    if let Some(problem) = req.extensions().get::<InputProblem>() {
        return Err(problem.0.clone());
    }
    Ok(caller)
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(caller_for(req, None, true))
    }
}

macro_rules! role_extractor {
    ($(#[$doc:meta])* $name:ident, $role:expr) => {
        role_extractor!($(#[$doc])* $name, $role, false);
    };
    ($(#[$doc:meta])* $name:ident, $role:expr, $run_ok:expr) => {
        $(#[$doc])*
        /// Put it first among a handler's arguments: it is checked before the body is read.
        #[derive(Debug, Clone)]
        pub struct $name(pub Caller);

        impl std::ops::Deref for $name {
            type Target = Caller;
            fn deref(&self) -> &Caller {
                &self.0
            }
        }

        impl FromRequest for $name {
            type Error = ApiError;
            type Future = Ready<Result<Self, ApiError>>;
            fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
                ready(caller_for(req, Some($role), $run_ok).map($name))
            }
        }
    };
}

role_extractor!(
    /// A caller with at least the viewer role (reads).
    AsViewer,
    Role::Viewer
);
role_extractor!(
    /// A caller with at least the operator role (jobs, runs, quotas).
    AsOperator,
    Role::Operator
);
role_extractor!(
    /// A caller with the admin role.
    AsAdmin,
    Role::Admin
);
role_extractor!(
    /// A viewer, or a run token (the handler checks what the token's grant covers).
    AsViewerOrRun,
    Role::Viewer,
    true
);
role_extractor!(
    /// An operator, or a run token (the handler checks what the token's grant covers).
    AsOperatorOrRun,
    Role::Operator,
    true
);

/// Middleware on `/api/v1`: 401 unless a configured token, or the run token of a running
/// run, is presented.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let limits = req
        .app_data::<actix_web::web::Data<super::rate_limit::Limits>>()
        .cloned();
    match authenticate(&req).await {
        Ok(caller) => {
            tracing::Span::current().record("caller", caller.name.as_str());
            if let Some(wait) = limits.and_then(|l| l.caller(&caller, req.path()).err()) {
                return Ok(req.error_response(ApiError::rate_limited(wait)));
            }
            req.extensions_mut().insert(caller);
            next.call(req)
                .await
                .map(ServiceResponse::map_into_boxed_body)
        }
        // A response, not an Err: outer middleware (metrics, request id) see it like any other.
        // A request that did not authenticate counts against its source address: guessing
        // tokens is limited like any anonymous flood.
        Err(e) => {
            if let Some(wait) = limits.and_then(|l| l.anonymous_request(req.request()).err()) {
                return Ok(req.error_response(ApiError::rate_limited(wait)));
            }
            Ok(req.error_response(e))
        }
    }
}

async fn authenticate(req: &ServiceRequest) -> Result<Caller, ApiError> {
    let presented = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let presented = match presented {
        Some(p) => p,
        // The dashboard: its session cookie instead of a token.
        None => match req.cookie(super::session::COOKIE) {
            Some(cookie) => return session_caller(req, cookie.value()).await,
            None => {
                return Err(ApiError::unauthorized(
                    "missing `Authorization: Bearer <token>` header",
                ))
            }
        },
    };
    if presented.starts_with(RUN_TOKEN_PREFIX) {
        return run_caller(req, presented).await;
    }
    let tokens = req
        .app_data::<web::Data<TokenSet>>()
        .ok_or_else(ApiError::internal)?;
    tokens
        .authenticate(presented)
        .ok_or_else(|| ApiError::unauthorized("invalid token"))
}

/// A dashboard session is valid until it has been idle for `[ui] session_idle`; every
/// request that changes something must carry the session's CSRF token in `X-CSRF-Token`.
async fn session_caller(req: &ServiceRequest, id: &str) -> Result<Caller, ApiError> {
    let state = req
        .app_data::<web::Data<super::ApiState>>()
        .ok_or_else(ApiError::internal)?;
    let session = super::session::lookup(state, id)
        .await?
        .ok_or_else(|| ApiError::unauthorized("the dashboard session expired; log in again"))?;
    let safe = matches!(req.method().as_str(), "GET" | "HEAD" | "OPTIONS");
    if !safe {
        let sent = req
            .headers()
            .get(super::csrf::HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !super::csrf::matches(&session.csrf, sent) {
            return Err(ApiError::forbidden(
                "missing or wrong CSRF token (X-CSRF-Token)",
            ));
        }
    }
    let role: Role = session.role.parse().map_err(|_| ApiError::internal())?;
    Ok(Caller {
        name: session.token_name,
        role,
        run: None,
    })
}

/// A run token is valid while its run is running in the attempt it was issued for.
async fn run_caller(req: &ServiceRequest, presented: &str) -> Result<Caller, ApiError> {
    let state = req
        .app_data::<web::Data<super::ApiState>>()
        .ok_or_else(ApiError::internal)?;
    let hash = hash_token(presented);
    let grant = state
        .db
        .run(move |c| crate::db::run_tokens::lookup(c, &hash))
        .await?
        .ok_or_else(|| ApiError::unauthorized("invalid token (a run token dies with its run)"))?;
    Ok(Caller {
        name: format!("run:{}", grant.run_id),
        role: Role::Viewer,
        run: Some(grant),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_authenticate_by_hash_only() {
        let (token, hash) = new_token();
        assert!(token.starts_with("ovs_") && token.len() == 68);
        assert_eq!(hash.len(), 64);
        let mut set = TokenSet::default();
        set.add_hash("ops", Role::Operator, &hash);
        let caller = set.authenticate(&token).unwrap();
        assert_eq!(caller.role, Role::Operator);
        assert!(set.authenticate("ovs_wrong").is_none());
        assert!(set.authenticate(&hash).is_none(), "the hash is not a token");
    }

    #[test]
    fn roles_are_ordered() {
        let c = Caller {
            run: None,
            name: "x".into(),
            role: Role::Operator,
        };
        assert!(c.require(Role::Viewer).is_ok());
        assert!(c.require(Role::Operator).is_ok());
        assert_eq!(c.require(Role::Admin).unwrap_err().status.as_u16(), 403);
        assert_eq!("admin".parse::<Role>(), Ok(Role::Admin));
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn bootstrap_token_file_is_private_and_stable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.token");
        let h1 = bootstrap_admin_token(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let h2 = bootstrap_admin_token(&path).unwrap();
        assert_eq!(h1, h2);
        let token = std::fs::read_to_string(&path).unwrap();
        assert_eq!(hash_token(token.trim()), h1);
    }
}

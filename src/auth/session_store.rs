//! actix-session's store over the database.
//!
//! Only a SHA-256 of the session id is stored, so a leaked table does not
//! let anyone in. The idle timeout slides inside `load` (writing at most
//! every few seconds) instead of actix-session's write-every-request policy,
//! and the absolute timeout is fixed at sign-in from the state's
//! `signed_in_at`, which survives the delete-and-save of a renewal.

use std::collections::HashMap;
use std::time::Duration;

use actix_session::storage::{LoadError, SaveError, SessionKey, SessionStore, UpdateError};
use actix_web::cookie::time::Duration as CookieDuration;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use super::prefetch::{PageData, PageNeed, PageNeeds};
use super::session::{
    ACCOUNT, FORWARD_ID_HASH, IP, LOADED_FORWARD_ID_HASH, LoadedAccount, PUBLIC_ID, REMEMBER, SIGNED_IN_AT, USER_AGENT,
    USER_ID, forward_id_hash,
};
use crate::db::sessions::{self, ForwardSession, NewSession, SessionRow, SessionTimes};
use crate::db::users::SignedInAccount;
use crate::db::{Db, DbConnection, now};
use crate::domain::random_secret;

type State = HashMap<String, String>;

/// Sessions a user may have at once; a new one evicts the oldest.
pub const MAX_SESSIONS_PER_USER: i64 = 50;

/// Timeouts and the account states a session needs to stay valid.
#[derive(Clone, Copy, Debug)]
pub struct SessionPolicy {
    pub idle_ttl: Duration,
    pub absolute_ttl: Duration,
    pub remember_ttl: Duration,
    pub require_verification: bool,
    pub require_approval: bool,
}

impl SessionPolicy {
    fn idle_secs(&self, remember: bool) -> i64 {
        (if remember { self.remember_ttl } else { self.idle_ttl }).as_secs() as i64
    }

    fn absolute_secs(&self, remember: bool) -> i64 {
        (if remember { self.remember_ttl } else { self.absolute_ttl }).as_secs() as i64
    }

    /// How stale `last_seen_at` may get before a request writes it: at most
    /// a minute, and a tenth of the idle timeout, so sliding stays accurate.
    fn touch_after_secs(&self, remember: bool) -> i64 {
        (self.idle_secs(remember) / 10).min(60)
    }
}

#[derive(Clone)]
pub struct DbSessionStore {
    db: Db,
    policy: SessionPolicy,
}

impl DbSessionStore {
    pub fn new(db: Db, policy: SessionPolicy) -> Self {
        Self { db, policy }
    }
}

fn hash_key(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

fn field<T: serde::de::DeserializeOwned>(state: &State, name: &str) -> Option<T> {
    state.get(name).and_then(|json| serde_json::from_str(json).ok())
}

/// Loads a live session, dropping it when its account may no longer sign
/// in, with what the page `need`s read on the same connection.
fn load_state(
    conn: &mut DbConnection,
    id_hash: &[u8],
    policy: SessionPolicy,
    need: Option<PageNeed>,
) -> diesel::QueryResult<Option<(State, Option<PageData>)>> {
    let now = now();
    let Some(Found { session, user, two_factor_since, data }) = find_for_page(conn, id_hash, now, need)? else {
        return Ok(None);
    };
    if !keep_alive(conn, &session.times(), &user, policy, now)? {
        return Ok(None);
    }
    let Ok(mut state) = serde_json::from_str::<State>(&session.state) else { return Ok(None) };
    // The column decides: a flow that ended other ways in may have cleared it.
    state.remove(FORWARD_ID_HASH);
    if let Some(hash) = &session.forward_id_hash {
        let encoded = serde_json::to_string(&URL_SAFE_NO_PAD.encode(hash)).unwrap_or_default();
        state.insert(FORWARD_ID_HASH.to_owned(), encoded.clone());
        state.insert(LOADED_FORWARD_ID_HASH.to_owned(), encoded);
    }
    let account = LoadedAccount {
        is_admin: user.is_admin,
        status: user.state().describe().to_owned(),
        email: user.email,
        two_factor: two_factor_since.is_some(),
    };
    state.insert(ACCOUNT.to_owned(), serde_json::to_string(&account).unwrap_or_default());
    Ok(Some((state, data)))
}

/// A live session as one trip reads it for a page.
struct Found {
    session: SessionRow,
    user: SignedInAccount,
    /// When two-step sign-in was turned on (unix seconds), if it is on.
    two_factor_since: Option<i64>,
    /// What the page asked for, when it asked.
    data: Option<PageData>,
}

/// A live session, its account and second factor, with what the page
/// `need`s: one query either way.
fn find_for_page(
    conn: &mut DbConnection,
    id_hash: &[u8],
    now: i64,
    need: Option<PageNeed>,
) -> diesel::QueryResult<Option<Found>> {
    Ok(match need {
        None => sessions::find_live(conn, id_hash, now)?.map(|(session, user, two_factor_since)| Found {
            session,
            user,
            two_factor_since,
            data: None,
        }),
        Some(PageNeed::AccountOverview) => sessions::find_live_with_overview(conn, id_hash, now)?.map(|found| Found {
            session: found.session,
            user: found.user,
            two_factor_since: found.two_factor_since,
            data: Some(PageData::AccountOverview(found.overview)),
        }),
    })
}

/// Whether a live session still counts: false, with the session deleted,
/// when its account may no longer sign in (disabled, rejected, deleted, or
/// short of a state the operator requires). Slides the idle timeout when due.
fn keep_alive(
    conn: &mut DbConnection,
    session: &SessionTimes,
    user: &SignedInAccount,
    policy: SessionPolicy,
    now: i64,
) -> diesel::QueryResult<bool> {
    let blocked = user.state().sign_in_block(policy.require_verification, policy.require_approval).is_some();
    if blocked || user.deleted_at.is_some() {
        sessions::delete(conn, &session.id_hash)?;
        return Ok(false);
    }
    if now - session.last_seen_at >= policy.touch_after_secs(session.remember) {
        let idle_expires_at = (now + policy.idle_secs(session.remember)).min(session.absolute_expires_at);
        sessions::touch(conn, &session.id_hash, now, idle_expires_at)?;
    }
    Ok(true)
}

/// The account signed in by the session that issued forward-auth id
/// `forward_id` (the cookie guarded apps' proxies present), with its second
/// factor and groups; `None` when there is no such live session or its
/// account may no longer sign in. One query, plus the idle timeout's slide
/// when due: counts as use of the session, as a page would.
pub fn forward_auth_account(
    conn: &mut DbConnection,
    forward_id: &str,
    policy: SessionPolicy,
) -> diesel::QueryResult<Option<ForwardSession>> {
    let hash = forward_id_hash(forward_id);
    let now = now();
    let Some(found) = sessions::find_live_by_forward_id(conn, &hash, now)? else {
        return Ok(None);
    };
    Ok(keep_alive(conn, &found.session, &found.user, policy, now)?.then_some(found))
}

/// The forward-auth id hash a session's state carries, as bytes.
fn forward_id_hash_of(state: &State) -> Option<Vec<u8>> {
    let encoded: String = field(state, FORWARD_ID_HASH)?;
    URL_SAFE_NO_PAD.decode(encoded).ok()
}

fn save_state(conn: &mut DbConnection, id_hash: &[u8], state: &State, policy: SessionPolicy) -> anyhow::Result<()> {
    let user_id: i64 = field(state, USER_ID).ok_or_else(|| anyhow::anyhow!("session state without a user"))?;
    let now = now();
    let signed_in_at: i64 = field(state, SIGNED_IN_AT).unwrap_or(now);
    let remember: bool = field(state, REMEMBER).unwrap_or(false);
    let user_agent: String = field(state, USER_AGENT).unwrap_or_default();
    let ip: String = field(state, IP).unwrap_or_default();
    let public_id: String = field(state, PUBLIC_ID).unwrap_or_default();
    let absolute_expires_at = signed_in_at + policy.absolute_secs(remember);
    let json = serde_json::to_string(state)?;
    let forward_id_hash = forward_id_hash_of(state);
    sessions::insert(
        conn,
        &NewSession {
            id_hash,
            user_id,
            public_id: &public_id,
            state: &json,
            remember,
            created_at: signed_in_at,
            last_seen_at: now,
            idle_expires_at: (now + policy.idle_secs(remember)).min(absolute_expires_at),
            absolute_expires_at,
            user_agent: &user_agent,
            ip: &ip,
            forward_id_hash: forward_id_hash.as_deref(),
        },
    )?;
    sessions::evict_oldest(conn, user_id, MAX_SESSIONS_PER_USER)?;
    Ok(())
}

fn new_session_key() -> SessionKey {
    SessionKey::try_from(URL_SAFE_NO_PAD.encode(random_secret::<32>())).expect("43 characters is a valid key")
}

impl SessionStore for DbSessionStore {
    async fn load(&self, key: &SessionKey) -> Result<Option<State>, LoadError> {
        let id_hash = hash_key(key.as_ref());
        let policy = self.policy;
        let needs = PageNeeds::current();
        let need = needs.as_ref().map(PageNeeds::need);
        // Every signed-in request starts here: run again on a closed
        // connection rather than test each one first (see `Db::run_idempotent`).
        let loaded = self
            .db
            .run_idempotent(move |conn| load_state(conn, &id_hash, policy, need))
            .await
            .map_err(|e| LoadError::Other(e.into()))?;
        Ok(loaded.map(|(state, data)| {
            if let (Some(needs), Some(data)) = (needs, data) {
                needs.fill(data);
            }
            state
        }))
    }

    async fn save(&self, mut state: State, _ttl: &CookieDuration) -> Result<SessionKey, SaveError> {
        state.remove(ACCOUNT);
        state.remove(LOADED_FORWARD_ID_HASH);
        let key = new_session_key();
        let id_hash = hash_key(key.as_ref());
        let policy = self.policy;
        self.db
            .run(move |conn| Ok(save_state(conn, &id_hash, &state, policy)))
            .await
            .map_err(|e| SaveError::Other(e.into()))?
            .map_err(SaveError::Other)?;
        Ok(key)
    }

    async fn update(
        &self,
        key: SessionKey,
        mut state: State,
        _ttl: &CookieDuration,
    ) -> Result<SessionKey, UpdateError> {
        state.remove(ACCOUNT);
        let loaded = state.remove(LOADED_FORWARD_ID_HASH);
        let id_hash = hash_key(key.as_ref());
        // Written only when this request changed it: a request that loaded
        // the session earlier must not bring back an id issued since.
        let changed = state.get(FORWARD_ID_HASH) != loaded.as_ref();
        let forward_id_hash = changed.then(|| forward_id_hash_of(&state));
        let json = serde_json::to_string(&state).map_err(|e| UpdateError::Serialization(e.into()))?;
        let updated = self
            .db
            .run_idempotent(move |conn| {
                let forward = forward_id_hash.as_ref().map(Option::as_deref);
                sessions::update_state(conn, &id_hash, &json, forward)
            })
            .await
            .map_err(|e| UpdateError::Other(e.into()))?;
        if updated == 0 {
            // The row is gone (signed out elsewhere, revoked, expired)
            // meanwhile; it stays gone and the next request is anonymous.
            tracing::debug!("session ended while a request changed it");
        }
        Ok(key)
    }

    async fn update_ttl(&self, _key: &SessionKey, _ttl: &CookieDuration) -> Result<(), anyhow::Error> {
        // Sliding happens in `load`.
        Ok(())
    }

    async fn delete(&self, key: &SessionKey) -> Result<(), anyhow::Error> {
        let id_hash = hash_key(key.as_ref());
        self.db.run_idempotent(move |conn| sessions::delete(conn, &id_hash)).await?;
        Ok(())
    }
}

//! The typed face of the session state.

use actix_session::{Session, SessionExt};
use actix_web::HttpRequest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::domain::random_secret;

pub(crate) const USER_ID: &str = "user_id";
pub(crate) const SIGNED_IN_AT: &str = "signed_in_at";
/// When the password was last typed in this session (sign-in, "confirm
/// it's you", a password change): unix seconds, kept server side.
pub(crate) const REAUTHENTICATED_AT: &str = "reauthenticated_at";
pub(crate) const REMEMBER: &str = "remember";
pub(crate) const CSRF: &str = "csrf";
pub(crate) const USER_AGENT: &str = "user_agent";
pub(crate) const IP: &str = "ip";
pub(crate) const PUBLIC_ID: &str = "public_id";
/// SHA-256 of the forward-auth cookie's id (base64url), once issued. The
/// store keeps it in its own indexed column, which is the truth: each load
/// reads it from there (a flow that ends other ways in may have cleared it).
pub(crate) const FORWARD_ID_HASH: &str = "forward_id_hash";
/// The forward-auth id hash as this request loaded it; never stored.
pub(crate) const LOADED_FORWARD_ID_HASH: &str = "loaded_forward_id_hash";
/// The account as the session store loaded it for this request; never stored.
pub(crate) const ACCOUNT: &str = "account";

/// The signed-in account, read together with the session on each request,
/// so guards and pages need not read it again.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct LoadedAccount {
    pub email: String,
    pub is_admin: bool,
    /// `AccountState::describe` of the account.
    pub status: String,
    /// Two-step sign-in is on.
    #[serde(default)]
    pub two_factor: bool,
}

/// Read access to the session of a request. Anonymous visitors have an
/// empty one, which is never stored.
pub struct SessionData(Session);

/// What a new session records at sign-in.
pub struct SessionStart {
    pub user_id: i64,
    pub remember: bool,
    pub user_agent: String,
    pub ip: String,
}

impl SessionData {
    pub fn of(req: &HttpRequest) -> Self {
        Self(req.get_session())
    }

    pub fn user_id(&self) -> Option<i64> {
        self.0.get(USER_ID).ok().flatten()
    }

    /// The account this request's session belongs to, as loaded with it.
    pub fn account(&self) -> Option<LoadedAccount> {
        self.0.get(ACCOUNT).ok().flatten()
    }

    /// When the password was last typed in this session (unix seconds).
    pub fn reauthenticated_at(&self) -> Option<i64> {
        self.0.get(REAUTHENTICATED_AT).ok().flatten()
    }

    /// Notes that the password was typed just now.
    pub fn mark_reauthenticated(req: &HttpRequest) -> Result<(), actix_session::SessionInsertError> {
        req.get_session().insert(REAUTHENTICATED_AT, crate::db::now())
    }

    pub fn csrf_token(&self) -> Option<String> {
        self.0.get(CSRF).ok().flatten()
    }

    /// Whether the person asked to be kept signed in ("remember me").
    pub fn remembered(&self) -> bool {
        self.0.get(REMEMBER).ok().flatten().unwrap_or(false)
    }

    /// Names this session on the account page (not a secret).
    pub fn public_id(&self) -> Option<String> {
        self.0.get(PUBLIC_ID).ok().flatten()
    }

    /// Starts a signed-in session under a new id (the old one, if any, is
    /// deleted), with a fresh CSRF token bound to it.
    pub fn start(req: &HttpRequest, start: SessionStart) -> Result<(), actix_session::SessionInsertError> {
        let session = req.get_session();
        session.renew();
        session.clear();
        session.insert(USER_ID, start.user_id)?;
        session.insert(SIGNED_IN_AT, crate::db::now())?;
        session.insert(REAUTHENTICATED_AT, crate::db::now())?;
        session.insert(REMEMBER, start.remember)?;
        session.insert(CSRF, URL_SAFE_NO_PAD.encode(random_secret::<32>()))?;
        session.insert(USER_AGENT, start.user_agent)?;
        session.insert(IP, start.ip)?;
        session.insert(PUBLIC_ID, URL_SAFE_NO_PAD.encode(random_secret::<12>()))?;
        Ok(())
    }

    /// Moves the session to a new id (and CSRF token), keeping everything
    /// else, including when it started: after a password change. Its
    /// forward-auth id goes (its next way to a guarded app issues another),
    /// so a copy of the old cookie opens nothing.
    pub fn renew(req: &HttpRequest) -> Result<(), actix_session::SessionInsertError> {
        let session = req.get_session();
        session.renew();
        session.remove(FORWARD_ID_HASH);
        session.insert(CSRF, URL_SAFE_NO_PAD.encode(random_secret::<32>()))
    }

    /// Gives the session a new forward-auth id and returns it, for the
    /// cookie guarded apps' proxies present (`routes::forward_auth`). Only
    /// its SHA-256 is stored; an older id stops working.
    pub fn issue_forward_id(req: &HttpRequest) -> Result<String, actix_session::SessionInsertError> {
        let id = URL_SAFE_NO_PAD.encode(random_secret::<32>());
        req.get_session().insert(FORWARD_ID_HASH, URL_SAFE_NO_PAD.encode(forward_id_hash(&id)))?;
        Ok(id)
    }

    /// Ends the session: its row is deleted and the cookie removed.
    pub fn end(req: &HttpRequest) {
        req.get_session().purge();
    }
}

/// How a forward-auth id is stored and looked up: its SHA-256.
pub fn forward_id_hash(id: &str) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(id.as_bytes()).to_vec()
}

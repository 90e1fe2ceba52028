//! Second factors: what happens when a person turns one on, signs in with
//! it, renews their recovery codes or turns it off, and when an
//! administrator (or the command line) resets it for someone who lost
//! their device. ASVS 2.8 (one-time verifiers) and 2.6 (look-up secrets).
//!
//! - The authenticator secret is sealed under `USHER_ENCRYPTION_KEY` with
//!   the user id as associated data; enrolment keeps it pending until a
//!   first valid code.
//! - A code is good once: the latest accepted time step is kept, and only
//!   a later one is accepted, by a conditional UPDATE (RFC 6238 §5.2).
//!   Sign-in, enrolment and turning off share that counter.
//! - Recovery codes: ten, shown once, stored as salted SHA-256, each used
//!   by a conditional UPDATE; a new set voids the old one.
//! - Turning on or off ends the account's other sessions; every step
//!   writes an audit event and mails a notice.

use diesel::QueryResult;
use subtle::ConstantTimeEq;

use super::Context;
use crate::auth::KeyRing;
use crate::db::audit::{self, Event, EventKind};
use crate::db::users::User;
use crate::db::{DbConnection, sessions, two_factor};
use crate::domain::{SecondFactorCode, TotpSecret, hash_recovery_code, new_recovery_codes, recovery_code_hash};
use crate::mail::MailKind;
use crate::mail::messages::{queue, queue_notice};

/// The associated data that binds a sealed secret to its account.
fn sealed_for(user_id: i64) -> Vec<u8> {
    format!("two_factor.secret user {user_id}").into_bytes()
}

/// Opens the sealed secret of `row`. `KeyUnavailable`, logged, when no
/// key of the ring opens it (a key missing from USHER_ENCRYPTION_KEY or
/// USHER_ENCRYPTION_OLD_KEYS): the server's fault, never the person's.
fn open_secret(row: &two_factor::TwoFactorRow, keys: &KeyRing) -> Result<TotpSecret, CodeRefusal> {
    let opened = keys.open(&row.secret, &sealed_for(row.user_id)).ok().and_then(|bytes| TotpSecret::from_bytes(&bytes));
    opened.ok_or_else(|| {
        tracing::error!(
            user_id = row.user_id,
            "an authenticator key cannot be decrypted: is USHER_ENCRYPTION_KEY (or USHER_ENCRYPTION_OLD_KEYS) the key it was stored with?"
        );
        CodeRefusal::KeyUnavailable
    })
}

/// Starts (or starts again) enrolment: a new secret, kept sealed and
/// pending until `confirm_enrolment`. `None` when a second factor is on
/// already (it must be turned off first), or the account is gone.
pub fn start_enrolment(
    conn: &mut DbConnection,
    user_id: i64,
    keys: &KeyRing,
    now: i64,
) -> QueryResult<Option<TotpSecret>> {
    if !User::lock(conn, user_id)? {
        return Ok(None);
    }
    let secret = TotpSecret::generate();
    let sealed = keys.seal(secret.as_bytes(), &sealed_for(user_id));
    Ok(two_factor::start_enrolment(conn, user_id, &sealed, now)?.then_some(secret))
}

/// The account's second factor as its pages show it.
#[derive(Clone, Debug)]
pub enum SecondFactorState {
    Off,
    /// Enrolment started: the secret to show, until a first code.
    Pending(TotpSecret),
    /// On, with this many recovery codes left.
    On {
        codes_left: i64,
    },
}

/// Reads the account's second factor.
pub fn state_of(conn: &mut DbConnection, user_id: i64, keys: &KeyRing) -> QueryResult<SecondFactorState> {
    let Some(row) = two_factor::find(conn, user_id)? else { return Ok(SecondFactorState::Off) };
    if row.enabled_at.is_some() {
        return Ok(SecondFactorState::On { codes_left: two_factor::codes_left(conn, user_id)? });
    }
    Ok(open_secret(&row, keys).map_or(SecondFactorState::Off, SecondFactorState::Pending))
}

/// Why a code was not taken; nothing changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeRefusal {
    /// Not a current code, nor an unused recovery code of the account.
    WrongCode,
    /// A current code, but its time step was accepted already: a code is
    /// good once, so the next one must be awaited.
    AlreadyUsed,
    /// No enrolment waits (finished in another tab, or started again), no
    /// second factor is on, or the set of codes named is not the current one.
    NothingToDo,
    /// The stored key cannot be decrypted with the keys Usher was given: a
    /// fault of the server's settings, not a wrong code.
    KeyUnavailable,
}

/// A second factor turned on: its recovery codes (shown once) and how many
/// other sessions ended.
#[derive(Debug)]
pub struct Enabled {
    pub recovery_codes: Vec<String>,
    pub sessions_ended: usize,
}

/// Completes enrolment with a first code from the authenticator: the
/// factor is on, ten recovery codes are made, the account's sessions but
/// `keep` (a public id) end, and a notice is queued. In the caller's
/// write transaction.
pub fn confirm_enrolment(
    conn: &mut DbConnection,
    user_id: i64,
    keep: &str,
    typed: &str,
    keys: &KeyRing,
    ctx: Context,
) -> QueryResult<Result<Enabled, CodeRefusal>> {
    if !User::lock(conn, user_id)? {
        return Ok(Err(CodeRefusal::NothingToDo));
    }
    let Some(row) = two_factor::find(conn, user_id)?.filter(|row| row.enabled_at.is_none()) else {
        return Ok(Err(CodeRefusal::NothingToDo));
    };
    let secret = match open_secret(&row, keys) {
        Ok(secret) => secret,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let step = match SecondFactorCode::parse(typed) {
        Some(SecondFactorCode::Totp(code)) => secret.matching_step(&code, ctx.now),
        _ => None,
    };
    let Some(step) = step else { return Ok(Err(CodeRefusal::WrongCode)) };
    if !two_factor::enable(conn, user_id, &row.secret, step, ctx.now)? {
        return Ok(Err(CodeRefusal::NothingToDo));
    }
    let recovery_codes = store_new_recovery_codes(conn, user_id)?;
    let sessions_ended = sessions::delete_others(conn, user_id, keep)?;
    record_and_notify(conn, user_id, EventKind::TwoFactorEnabled, MailKind::TwoFactorEnabled, ctx)?;
    Ok(Ok(Enabled { recovery_codes, sessions_ended }))
}

fn store_new_recovery_codes(conn: &mut DbConnection, user_id: i64) -> QueryResult<Vec<String>> {
    let codes = new_recovery_codes();
    let hashed: Vec<(Vec<u8>, Vec<u8>)> = codes.iter().map(|code| hash_recovery_code(code)).collect();
    two_factor::replace_recovery_codes(conn, user_id, &hashed)?;
    Ok(codes)
}

/// How a second factor was proven.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proof {
    /// A current code from the authenticator app.
    Authenticator,
    /// A recovery code, now used up; this many are left.
    RecoveryCode { left: i64 },
}

/// Checks `typed` (an authenticator code or a recovery code) for an
/// account whose second factor is on, and uses it up: the time step by the
/// shared counter, a recovery code by marking it used.
fn use_code(
    conn: &mut DbConnection,
    user_id: i64,
    typed: &str,
    keys: &KeyRing,
    now: i64,
) -> QueryResult<Result<Proof, CodeRefusal>> {
    let Some(row) = two_factor::find(conn, user_id)?.filter(|row| row.enabled_at.is_some()) else {
        return Ok(Err(CodeRefusal::NothingToDo));
    };
    let proof = match SecondFactorCode::parse(typed) {
        Some(SecondFactorCode::Totp(code)) => {
            let secret = match open_secret(&row, keys) {
                Ok(secret) => secret,
                Err(refusal) => return Ok(Err(refusal)),
            };
            match secret.matching_step(&code, now) {
                Some(step) if two_factor::accept_step(conn, user_id, step)? => Some(Proof::Authenticator),
                Some(_) => return Ok(Err(CodeRefusal::AlreadyUsed)),
                None => None,
            }
        }
        Some(SecondFactorCode::Recovery(normal)) => {
            let stored = two_factor::unused_codes(conn, user_id)?;
            // Every stored code is hashed and compared, whichever matches.
            let matching = stored.iter().fold(None, |found, code| {
                let same = bool::from(recovery_code_hash(&code.salt, &normal).ct_eq(&code.code_hash));
                if same { Some(code.id) } else { found }
            });
            match matching {
                Some(id) if two_factor::use_code(conn, id, now)? => {
                    Some(Proof::RecoveryCode { left: two_factor::codes_left(conn, user_id)? })
                }
                _ => None,
            }
        }
        None => None,
    };
    Ok(proof.ok_or(CodeRefusal::WrongCode))
}

/// The second step of a sign-in: `typed` proves the factor of `user_id`,
/// or nothing changes. A recovery code used is audited and its owner told
/// (with how many are left). In the caller's write transaction; the caller
/// records the sign-in itself.
pub fn prove_for_sign_in(
    conn: &mut DbConnection,
    user_id: i64,
    typed: &str,
    keys: &KeyRing,
    ctx: Context,
) -> QueryResult<Result<Proof, CodeRefusal>> {
    let proof = use_code(conn, user_id, typed, keys, ctx.now)?;
    if let Ok(Proof::RecoveryCode { left }) = proof {
        let detail = format!("{left} left");
        let event = Event {
            kind: EventKind::RecoveryCodeUsed,
            user_id: Some(user_id),
            actor_id: Some(user_id),
            ip: ctx.ip,
            detail: &detail,
        };
        audit::record(conn, event, ctx.now)?;
        if let Some(user) = User::find(conn, user_id)? {
            queue_notice(conn, MailKind::RecoveryCodeUsed, &user.email, user_id, &ctx.facts(), ctx.config)?;
        }
    }
    Ok(proof)
}

/// Ends the code step `challenge` (the hash of its id) of `user_id`, out
/// of attempts: wrong codes after a right password. The owner is mailed
/// once per code step, since whoever typed the password knows it.
pub fn end_code_step_out_of_attempts(
    conn: &mut DbConnection,
    challenge: &[u8],
    user_id: i64,
    ctx: Context,
) -> QueryResult<()> {
    if !two_factor::close_challenge(conn, challenge)? {
        return Ok(());
    }
    if let Some(user) = User::find(conn, user_id)? {
        queue_notice(conn, MailKind::TwoFactorLockout, &user.email, user_id, &ctx.facts(), ctx.config)?;
    }
    Ok(())
}

/// A new set of recovery codes for an account whose second factor is on,
/// in place of the set named `generation` (`two_factor::codes_generation`,
/// as the page showed it); the old set stops working. `None` when it is
/// off, or the set was renewed since (a form sent again on reload).
pub fn renew_recovery_codes(
    conn: &mut DbConnection,
    user_id: i64,
    generation: i64,
    ctx: Context,
) -> QueryResult<Option<Vec<String>>> {
    if !User::lock(conn, user_id)?
        || !two_factor::is_enabled(conn, user_id)?
        || two_factor::codes_generation(conn, user_id)? != generation
    {
        return Ok(None);
    }
    let codes = store_new_recovery_codes(conn, user_id)?;
    record_and_notify(conn, user_id, EventKind::RecoveryCodesRenewed, MailKind::RecoveryCodesRenewed, ctx)?;
    Ok(Some(codes))
}

/// Turns the account's second factor off with a current code or a
/// recovery code: its secret and codes go, its sessions but `keep` end,
/// and a notice is queued. Returns how many sessions ended.
pub fn turn_off(
    conn: &mut DbConnection,
    user_id: i64,
    keep: &str,
    typed: &str,
    keys: &KeyRing,
    ctx: Context,
) -> QueryResult<Result<usize, CodeRefusal>> {
    if !User::lock(conn, user_id)? || !two_factor::is_enabled(conn, user_id)? {
        return Ok(Err(CodeRefusal::NothingToDo));
    }
    if let Err(refusal) = use_code(conn, user_id, typed, keys, ctx.now)? {
        return Ok(Err(refusal));
    }
    two_factor::remove(conn, user_id)?;
    let ended = sessions::delete_others(conn, user_id, keep)?;
    record_and_notify(conn, user_id, EventKind::TwoFactorDisabled, MailKind::TwoFactorDisabled, ctx)?;
    Ok(Ok(ended))
}

/// Who resets a second factor for someone who lost their device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetBy {
    /// The administrator with this id, from the admin pages.
    Admin(i64),
    /// `usher reset-two-factor` on the server.
    CommandLine,
}

/// Resets (turns off) the second factor of `user_id` for its owner, who
/// lost their device: its secret, codes and pending sign-ins go, and the
/// owner is told an administrator did it. Sessions stay: whoever holds
/// one already passed the factor. False when it had none on.
pub fn reset(conn: &mut DbConnection, user_id: i64, by: ResetBy, ctx: Context) -> QueryResult<bool> {
    if !User::lock(conn, user_id)? || !two_factor::remove(conn, user_id)? {
        return Ok(false);
    }
    let actor = match by {
        ResetBy::Admin(admin) => Some(admin),
        ResetBy::CommandLine => None,
    };
    let event = Event {
        kind: EventKind::TwoFactorDisabled,
        user_id: Some(user_id),
        actor_id: actor,
        ip: ctx.ip,
        detail: "reset for a lost device",
    };
    audit::record(conn, event, ctx.now)?;
    if let Some(user) = User::find(conn, user_id)? {
        // No facts: the administrator's address is not the person's to see.
        queue(conn, MailKind::TwoFactorDisabled, &user.email, Some(user_id), ctx.config)?;
    }
    Ok(true)
}

/// Records `kind` as done by the account's owner and queues `mail` with
/// the facts of it.
fn record_and_notify(
    conn: &mut DbConnection,
    user_id: i64,
    kind: EventKind,
    mail: MailKind,
    ctx: Context,
) -> QueryResult<()> {
    let event = Event { kind, user_id: Some(user_id), actor_id: Some(user_id), ip: ctx.ip, detail: "" };
    audit::record(conn, event, ctx.now)?;
    if let Some(user) = User::find(conn, user_id)? {
        queue_notice(conn, mail, &user.email, user_id, &ctx.facts(), ctx.config)?;
    }
    Ok(())
}

/// What `reseal_secrets` did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResealReport {
    /// Sealed anew under the current key.
    pub resealed: usize,
    /// Under the current key already.
    pub current: usize,
    /// Opened by no key of the ring: left as they are.
    pub unreadable: usize,
}

/// Re-encrypts every stored authenticator secret not sealed under the
/// ring's current key (`usher rotate-encryption-key`). Each row is
/// replaced only if it did not change meanwhile.
pub fn reseal_secrets(conn: &mut DbConnection, keys: &KeyRing) -> QueryResult<ResealReport> {
    let mut report = ResealReport::default();
    for (user_id, sealed) in two_factor::all_secrets(conn)? {
        if keys.is_current(&sealed) {
            report.current += 1;
            continue;
        }
        let Ok(plain) = keys.open(&sealed, &sealed_for(user_id)) else {
            report.unreadable += 1;
            continue;
        };
        if two_factor::reseal(conn, user_id, &sealed, &keys.seal(&plain, &sealed_for(user_id)))? {
            report.resealed += 1;
        }
    }
    Ok(report)
}

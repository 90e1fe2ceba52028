//! Brings addresses stored before IDN normalisation to the form
//! [`EmailAddress::parse`] gives now: the domain in its IDNA ASCII form
//! (UTS #46, RFC 5891 A-labels). Runs after the schema migrations on every
//! start, so rows written by an older instance during an upgrade are
//! caught too; with nothing to convert it costs a scan of `users` and
//! `throttle_hits`.

use std::collections::BTreeMap;

use anyhow::bail;
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::Bool;

use crate::db::DbConnection;
use crate::db::schema::{outbox, throttle_hits, users};
use crate::domain::EmailAddress;

/// How many stored values were rewritten, per table.
#[derive(Debug, PartialEq, Eq)]
pub struct Converted {
    pub users: usize,
    pub outbox: usize,
    pub throttle_buckets: usize,
}

impl Converted {
    fn any(&self) -> bool {
        self.users + self.outbox + self.throttle_buckets > 0
    }
}

/// Throttle buckets keyed by an address (see `throttle::Bucket::key`).
const ADDRESS_BUCKETS: [&str; 3] = ["signin-address:", "mail-address:", "code-address:"];

/// Rewrites, in one transaction, every `users.email`, the recipient of
/// every pending or dead mail (the ones that may still be sent) and every
/// address-keyed throttle bucket whose domain is not in its ASCII form.
///
/// An address that no longer parses (a Unicode domain that is no valid
/// IDN) is left as it is, with a warning naming the account.
///
/// # Errors
/// When an account's converted address is already another account's (a
/// Unicode row with a punycode twin, or two Unicode spellings of one
/// domain), nothing is changed and the error names both rows, so the
/// operator can keep one; and on any database error.
pub fn convert_stored_addresses(conn: &mut DbConnection) -> anyhow::Result<Converted> {
    let converted = conn.write(|conn| {
        anyhow::Ok(Converted {
            users: convert_users(conn)?,
            outbox: convert_outbox(conn)?,
            throttle_buckets: convert_throttle_buckets(conn)?,
        })
    })?;
    if converted.any() {
        tracing::info!(
            users = converted.users,
            mail = converted.outbox,
            throttle_buckets = converted.throttle_buckets,
            "stored addresses converted to their ASCII (IDNA) form"
        );
    }
    Ok(converted)
}

/// A condition true where `column` holds a non-ASCII character: only such
/// rows can need converting. Text is UTF-8 on both backends, so a byte
/// count above the character count gives them away.
fn non_ascii(conn: &DbConnection, column: &str) -> diesel::expression::SqlLiteral<Bool> {
    if conn.is_postgres() {
        sql::<Bool>(&format!("octet_length({column}) <> char_length({column})"))
    } else {
        sql::<Bool>(&format!("length(CAST({column} AS BLOB)) <> length({column})"))
    }
}

/// The stored form of `address`: `Some` when it differs, `None` when the
/// address is already in it, `Err` when it no longer parses (the caller
/// decides what to say).
fn ascii_form(address: &str) -> Result<Option<String>, ()> {
    match EmailAddress::parse(address) {
        Ok(parsed) if parsed.as_str() == address => Ok(None),
        Ok(parsed) => Ok(Some(parsed.as_str().to_owned())),
        Err(_) => Err(()),
    }
}

fn convert_users(conn: &mut DbConnection) -> anyhow::Result<usize> {
    let candidates: Vec<(i64, String)> =
        users::table.filter(non_ascii(conn, "email")).select((users::id, users::email)).order(users::id).load(conn)?;
    // The ASCII form each account gets, with the accounts that get it.
    let mut planned: BTreeMap<String, Vec<(i64, String)>> = BTreeMap::new();
    for (id, email) in candidates {
        match ascii_form(&email) {
            Ok(Some(ascii)) => planned.entry(ascii).or_default().push((id, email)),
            Ok(None) => {} // a non-ASCII local part with an ASCII domain
            Err(()) => tracing::warn!(
                account = id,
                email = %email,
                "this address has no valid ASCII (IDNA) form and is left as it is; \
                 its owner cannot sign in until an administrator changes it"
            ),
        }
    }
    let mut twins = Vec::new();
    for (ascii, rows) in &planned {
        let existing: Option<(i64, String)> =
            users::table.filter(users::email.eq(ascii)).select((users::id, users::email)).first(conn).optional()?;
        let mut holders: Vec<&(i64, String)> = existing.iter().chain(rows.iter()).collect();
        holders.sort();
        if holders.len() > 1 {
            let named: Vec<String> = holders.iter().map(|(id, email)| format!("account {id} ({email})")).collect();
            twins.push(format!("{} are one mailbox, {ascii}", named.join(" and ")));
        }
    }
    if !twins.is_empty() {
        bail!(
            "cannot store every address with its domain in ASCII (IDNA) form: {}. Keep one account of each \
             (delete the others, or change their address, in the users table), then start Usher again. \
             Nothing was changed.",
            twins.join("; ")
        );
    }
    let mut changed = 0;
    for (ascii, rows) in &planned {
        for (id, email) in rows {
            changed += diesel::update(users::table.find(id).filter(users::email.eq(email)))
                .set(users::email.eq(ascii))
                .execute(conn)?;
        }
    }
    Ok(changed)
}

fn convert_outbox(conn: &mut DbConnection) -> anyhow::Result<usize> {
    let candidates: Vec<(i64, String)> = outbox::table
        .filter(outbox::state.eq_any(["pending", "dead"]))
        .filter(non_ascii(conn, "recipient"))
        .select((outbox::id, outbox::recipient))
        .load(conn)?;
    let mut changed = 0;
    for (id, recipient) in candidates {
        // A recipient without an ASCII form is its account's, warned about above.
        if let Ok(Some(ascii)) = ascii_form(&recipient) {
            changed += diesel::update(outbox::table.find(id)).set(outbox::recipient.eq(ascii)).execute(conn)?;
        }
    }
    Ok(changed)
}

/// Keeps the counts of recent attempts on an address across the upgrade,
/// so a lockout does not lift because the key's spelling changed.
fn convert_throttle_buckets(conn: &mut DbConnection) -> anyhow::Result<usize> {
    let buckets: Vec<String> =
        throttle_hits::table.filter(non_ascii(conn, "bucket")).select(throttle_hits::bucket).distinct().load(conn)?;
    let mut changed = 0;
    for bucket in buckets {
        let Some((prefix, address)) =
            ADDRESS_BUCKETS.iter().find_map(|prefix| bucket.strip_prefix(prefix).map(|address| (prefix, address)))
        else {
            continue;
        };
        if let Ok(Some(ascii)) = ascii_form(address) {
            changed += diesel::update(throttle_hits::table.filter(throttle_hits::bucket.eq(&bucket)))
                .set(throttle_hits::bucket.eq(format!("{prefix}{ascii}")))
                .execute(conn)?;
        }
    }
    Ok(changed)
}

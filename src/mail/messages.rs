//! The emails Usher sends. Secrets in them (link tokens, codes) are minted
//! only when the mail is composed for sending, so the outbox never holds one.

use std::sync::Arc;
use std::time::Duration;

use askama::Template;
use diesel::QueryResult;
use lettre::Message;
use lettre::message::{Mailbox, MultiPart};

use crate::config::Config;
use crate::db::email_changes::{self, EmailChange, REVERT_TTL_SECS};
use crate::db::email_tokens::{self, NewToken, Purpose};
use crate::db::invitations::{self, Invitation};
use crate::db::outbox::{self, NewMail, OutboxRow};
use crate::db::users::User;
use crate::db::{DbConnection, now};
use crate::domain::{CodeHasher, PlainToken, VerificationCode};

const DAY: Duration = Duration::from_secs(24 * 3600);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MailKind {
    /// A link and a code to prove the address.
    VerifyEmail,
    /// To a verified owner when someone registers with their address.
    SignupAttempt,
    /// A single-use link to choose a new password.
    PasswordReset,
    /// A notice after the password was changed or reset.
    PasswordChanged,
    /// An administrator approved the account.
    AccountApproved,
    /// An administrator rejected the account.
    AccountRejected,
    /// To a new address: a link that completes the change to it. Bound
    /// to its `email_changes` row, not to the account's address.
    EmailChangeConfirm,
    /// To the current address when a change away from it is requested.
    EmailChangeRequested,
    /// To the old address once the change is complete, with a link that
    /// undoes it. Bound to its `email_changes` row.
    EmailChanged,
    /// A sign-in from a browser the account had not used (ASVS 2.2.3).
    NewSignIn,
    /// Goodbye: the account was deleted. Belongs to no account, so its
    /// recipient is wiped once it is sent or given up on.
    AccountDeleted,
    /// A second factor was turned on.
    TwoFactorEnabled,
    /// A second factor was turned off: by its owner when the row holds
    /// the facts, else reset by an administrator.
    TwoFactorDisabled,
    /// A new set of recovery codes replaced the old one.
    RecoveryCodesRenewed,
    /// A recovery code was used to sign in.
    RecoveryCodeUsed,
    /// A right password, then wrong two-step codes until the limit: someone
    /// else may know the password.
    TwoFactorLockout,
    /// An administrator's invitation to sign up, with its link. Belongs
    /// to no account; bound to its `invitations` row.
    Invitation,
}

const ALL_KINDS: [MailKind; 17] = [
    MailKind::VerifyEmail,
    MailKind::SignupAttempt,
    MailKind::PasswordReset,
    MailKind::PasswordChanged,
    MailKind::AccountApproved,
    MailKind::AccountRejected,
    MailKind::EmailChangeConfirm,
    MailKind::EmailChangeRequested,
    MailKind::EmailChanged,
    MailKind::NewSignIn,
    MailKind::AccountDeleted,
    MailKind::TwoFactorEnabled,
    MailKind::TwoFactorDisabled,
    MailKind::RecoveryCodesRenewed,
    MailKind::RecoveryCodeUsed,
    MailKind::TwoFactorLockout,
    MailKind::Invitation,
];

impl MailKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::SignupAttempt => "signup_attempt",
            Self::PasswordReset => "password_reset",
            Self::PasswordChanged => "password_changed",
            Self::AccountApproved => "account_approved",
            Self::AccountRejected => "account_rejected",
            Self::EmailChangeConfirm => "email_change_confirm",
            Self::EmailChangeRequested => "email_change_requested",
            Self::EmailChanged => "email_changed",
            Self::NewSignIn => "new_sign_in",
            Self::AccountDeleted => "account_deleted",
            Self::TwoFactorEnabled => "two_factor_enabled",
            Self::TwoFactorDisabled => "two_factor_disabled",
            Self::RecoveryCodesRenewed => "recovery_codes_renewed",
            Self::RecoveryCodeUsed => "recovery_code_used",
            Self::TwoFactorLockout => "two_factor_lockout",
            Self::Invitation => "invitation",
        }
    }

    /// What the mail is for, in words for administrators.
    pub fn purpose(self) -> &'static str {
        match self {
            Self::VerifyEmail => "Confirmation of a new address",
            Self::SignupAttempt => "Note about a sign-up with a taken address",
            Self::PasswordReset => "Password reset link",
            Self::PasswordChanged => "Password-changed notice",
            Self::AccountApproved => "Account approved",
            Self::AccountRejected => "Account not approved",
            Self::EmailChangeConfirm => "Confirmation of a change of address",
            Self::EmailChangeRequested => "Notice of a requested change of address",
            Self::EmailChanged => "Notice of a change of address, with an undo link",
            Self::NewSignIn => "Notice of a sign-in from a new browser",
            Self::AccountDeleted => "Goodbye notice of a deleted account",
            Self::TwoFactorEnabled => "Notice of two-step sign-in turned on",
            Self::TwoFactorDisabled => "Notice of two-step sign-in turned off",
            Self::RecoveryCodesRenewed => "Notice of new recovery codes",
            Self::RecoveryCodeUsed => "Notice of a recovery code used",
            Self::TwoFactorLockout => "Notice of wrong two-step codes after a right password",
            Self::Invitation => "Invitation to sign up",
        }
    }

    pub fn parse(kind: &str) -> Option<Self> {
        ALL_KINDS.into_iter().find(|k| k.as_str() == kind)
    }

    /// The secrets this mail carries; once it is sent, older ones of these
    /// purposes stop working.
    pub fn secret_purposes(self) -> &'static [Purpose] {
        match self {
            Self::VerifyEmail => &[Purpose::VerifyLink, Purpose::VerifyCode],
            Self::SignupAttempt | Self::PasswordReset => &[Purpose::ResetLink],
            Self::PasswordChanged
            | Self::AccountApproved
            | Self::AccountRejected
            | Self::NewSignIn
            | Self::AccountDeleted
            | Self::TwoFactorEnabled
            | Self::TwoFactorDisabled
            | Self::RecoveryCodesRenewed
            | Self::RecoveryCodeUsed
            | Self::TwoFactorLockout => &[],
            // Their links end with the state of their `email_changes` or `invitations` row instead.
            Self::Invitation => &[],
            Self::EmailChangeConfirm | Self::EmailChangeRequested | Self::EmailChanged => &[],
        }
    }

    /// After this a queued mail is no longer worth sending: its link would
    /// have expired had it been minted when the mail was queued.
    fn deliver_within(self, config: &Config) -> Duration {
        match self {
            Self::VerifyEmail | Self::EmailChangeConfirm => config.settings.verify_token_ttl,
            Self::PasswordReset | Self::SignupAttempt => config.settings.reset_token_ttl,
            Self::PasswordChanged
            | Self::AccountApproved
            | Self::AccountRejected
            | Self::EmailChangeRequested
            | Self::EmailChanged
            | Self::NewSignIn
            | Self::AccountDeleted
            | Self::TwoFactorEnabled
            | Self::TwoFactorDisabled
            | Self::RecoveryCodesRenewed
            | Self::RecoveryCodeUsed
            | Self::TwoFactorLockout => DAY,
            Self::Invitation => config.settings.invitation_ttl,
        }
    }
}

/// When, from where and with which browser something happened to an
/// account: what a notice tells its owner (ASVS 2.2.3), kept with the
/// queued mail. Never a secret.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct EventFacts {
    /// Unix seconds (UTC).
    pub at: i64,
    pub ip: String,
    /// The browser and system in words, e.g. "Firefox on Linux".
    pub browser: String,
}

impl EventFacts {
    /// "on 30 November 2026 at 22:53 UTC, from Firefox on Linux (IP address 192.0.2.7)"
    fn describe(&self) -> String {
        let when = chrono::DateTime::from_timestamp(self.at, 0)
            .map_or_else(String::new, |at| at.format("on %-d %B %Y at %H:%M UTC").to_string());
        format!("{when}, from {} (IP address {})", self.browser, self.ip)
    }
}

/// Queues a mail inside the caller's transaction; the worker sends it.
pub fn queue(
    conn: &mut DbConnection,
    kind: MailKind,
    recipient: &str,
    user_id: Option<i64>,
    config: &Config,
) -> QueryResult<i64> {
    enqueue(conn, NewMail { kind: kind.as_str(), recipient, user_id, ..unbound() }, kind, config)
}

/// Queues mail about a change of address (`EmailChange*` kinds), bound to
/// its `email_changes` row `change_id`; `facts` for the notices.
pub fn queue_about_email_change(
    conn: &mut DbConnection,
    kind: MailKind,
    recipient: &str,
    user_id: i64,
    change_id: i64,
    facts: Option<&EventFacts>,
    config: &Config,
) -> QueryResult<i64> {
    let event = facts.map(|facts| serde_json::to_string(facts).expect("event facts serialise"));
    let mail = NewMail {
        kind: kind.as_str(),
        recipient,
        user_id: Some(user_id),
        event: event.as_deref(),
        email_change_id: Some(change_id),
        ..unbound()
    };
    enqueue(conn, mail, kind, config)
}

/// Queues a notice that reports `facts` about the event that caused it.
pub fn queue_notice(
    conn: &mut DbConnection,
    kind: MailKind,
    recipient: &str,
    user_id: i64,
    facts: &EventFacts,
    config: &Config,
) -> QueryResult<i64> {
    let event = serde_json::to_string(facts).expect("event facts serialise");
    let mail = NewMail { kind: kind.as_str(), recipient, user_id: Some(user_id), event: Some(&event), ..unbound() };
    enqueue(conn, mail, kind, config)
}

/// Queues mail that belongs to no account (a deleted account's goodbye),
/// with the facts of the event it reports when there are any to tell. Such
/// a row forgets its recipient once it is sent or given up on
/// (`outbox::finish`), so it cannot be sent again from the admin pages.
pub fn queue_without_account(
    conn: &mut DbConnection,
    kind: MailKind,
    recipient: &str,
    facts: Option<&EventFacts>,
    config: &Config,
) -> QueryResult<i64> {
    let event = facts.map(|facts| serde_json::to_string(facts).expect("event facts serialise"));
    let mail = NewMail { kind: kind.as_str(), recipient, event: event.as_deref(), ..unbound() };
    enqueue(conn, mail, kind, config)
}

/// Queues the mail of invitation `invitation_id` to `recipient`. Like a
/// goodbye it belongs to no account, so it forgets its recipient once
/// sent; its link is minted when it is composed.
pub fn queue_invitation(
    conn: &mut DbConnection,
    recipient: &str,
    invitation_id: i64,
    config: &Config,
) -> QueryResult<i64> {
    let kind = MailKind::Invitation;
    let mail = NewMail { kind: kind.as_str(), recipient, invitation_id: Some(invitation_id), ..unbound() };
    enqueue(conn, mail, kind, config)
}

/// Queues a verification that answers a registration of an address not
/// yet verified: using its link or code also sets the password chosen at
/// that registration. (Otherwise whoever registered the address first
/// would keep their password once the owner verifies it.)
pub fn queue_verification_for_registration(
    conn: &mut DbConnection,
    recipient: &str,
    user_id: i64,
    password_hash: &str,
    config: &Config,
) -> QueryResult<i64> {
    let kind = MailKind::VerifyEmail;
    let mail = NewMail {
        kind: kind.as_str(),
        recipient,
        user_id: Some(user_id),
        password_hash: Some(password_hash),
        ..unbound()
    };
    enqueue(conn, mail, kind, config)
}

/// A mail with nothing but its defaults: no account, password, facts or change.
fn unbound<'a>() -> NewMail<'a> {
    NewMail {
        kind: "",
        recipient: "",
        user_id: None,
        send_before: 0,
        password_hash: None,
        event: None,
        email_change_id: None,
        invitation_id: None,
    }
}

/// Queues `mail` of `kind`, due now, worth sending until its kind's deadline.
fn enqueue(conn: &mut DbConnection, mail: NewMail, kind: MailKind, config: &Config) -> QueryResult<i64> {
    let now = now();
    let mail = NewMail { send_before: now + kind.deliver_within(config).as_secs() as i64, ..mail };
    outbox::enqueue(conn, mail, config.settings.mail_from.email.domain(), now)
}

/// Queues a dead mail again (an administrator's retry), with a new
/// deadline as if it had just been queued.
pub fn requeue_dead(conn: &mut DbConnection, id: i64, config: &Config) -> QueryResult<bool> {
    let Some(row) = outbox::find(conn, id)? else {
        return Ok(false);
    };
    let Some(kind) = MailKind::parse(&row.kind) else {
        return Ok(false);
    };
    let now = now();
    outbox::revive_dead(conn, id, now + kind.deliver_within(config).as_secs() as i64, now)
}

/// A failed send's error in words for administrators: what happened, as
/// far as the transport's message tells it.
pub fn plain_error(raw: &str) -> String {
    let lower = raw.to_ascii_lowercase();
    if lower.contains("connection refused") || lower.contains("os error 111") {
        "The mail server could not be reached: it refused the connection. Check USHER_SMTP_URL and that the server runs.".into()
    } else if lower.contains("timed out") || lower.contains("timeout") {
        "The mail server did not answer in time.".into()
    } else if lower.contains("dns") || lower.contains("resolve") || lower.contains("lookup") {
        "The mail server's name could not be found. Check USHER_SMTP_URL.".into()
    } else if lower.contains("smtputf8") || lower.contains("non-ascii") {
        "The address needs a mail server that accepts international addresses (SMTPUTF8).".into()
    } else if lower.contains("certificate") || lower.contains("tls") {
        "A secure connection to the mail server could not be made.".into()
    } else if raw.trim_start().starts_with('5') || lower.contains("permanent") {
        format!("The mail server refused the message for good. It said: {raw}")
    } else if raw.trim_start().starts_with('4') {
        format!("The mail server asked to try later. It said: {raw}")
    } else {
        format!("Sending failed: {raw}")
    }
}

/// A call to action: a button in HTML, a line with the link in text.
pub struct Button {
    pub label: &'static str,
    pub link: String,
    /// How long it works, or similar, said next to the link.
    pub note: String,
}

/// The content of one email; one pair of templates lays out all of them.
pub struct EmailContent {
    pub subject: String,
    pub intro: Vec<String>,
    pub button: Option<Button>,
    pub code: Option<String>,
    pub outro: Vec<String>,
}

#[derive(Template)]
#[template(path = "emails/message.txt")]
struct TextPart<'a> {
    site_name: &'a str,
    support_email: Option<&'a str>,
    email: &'a EmailContent,
}

#[derive(Template)]
#[template(path = "emails/message.html")]
struct HtmlPart<'a> {
    site_name: &'a str,
    support_email: Option<&'a str>,
    email: &'a EmailContent,
}

/// A message ready for the transport, with its links for the log in
/// file mode, and the first secret minted for it.
pub struct Composed {
    pub message: Message,
    pub links: Vec<String>,
    pub minted_token_id: Option<i64>,
}

/// Content and the id of the first secret minted for it.
struct Minted {
    content: EmailContent,
    first_token_id: Option<i64>,
}

#[derive(Clone)]
pub struct Composer {
    pub config: Arc<Config>,
    pub codes: CodeHasher,
}

/// "3 recovery codes are left." and what to do when few are.
pub fn codes_left_in_words(left: i64) -> String {
    match left {
        0 => "No recovery codes are left: make a new set on your account page now.".into(),
        1 => "1 recovery code is left: make a new set on your account page soon.".into(),
        n if n <= 3 => format!("{n} recovery codes are left: make a new set on your account page soon."),
        n => format!("{n} recovery codes are left."),
    }
}

/// "24 hours", "15 minutes", "30 days": how long something lasts, in the
/// largest whole unit, for people to read (pages and mail).
pub fn lifetime(duration: Duration) -> String {
    let seconds = duration.as_secs();
    let (count, unit) = match seconds {
        s if s >= 86_400 && s % 86_400 == 0 && s > 86_400 => (s / 86_400, "day"),
        s if s >= 3600 && s % 3600 == 0 => (s / 3600, "hour"),
        s if s >= 60 && s % 60 == 0 => (s / 60, "minute"),
        s => (s, "second"),
    };
    if count == 1 { format!("1 {unit}") } else { format!("{count} {unit}s") }
}

impl Composer {
    /// Builds the message for an outbox row; `None` when it is no longer
    /// needed (the account is gone, already verified, or disabled).
    pub fn compose(&self, conn: &mut DbConnection, row: &OutboxRow) -> anyhow::Result<Option<Composed>> {
        let Some(kind) = MailKind::parse(&row.kind) else {
            anyhow::bail!("unknown mail kind {:?}", row.kind);
        };
        if let Some(user_id) = row.user_id
            && User::find(conn, user_id)?.is_some_and(|user| user.deleted_at.is_some())
        {
            // Queued while its account was being deleted.
            return Ok(None);
        }
        let minted = match kind {
            MailKind::VerifyEmail => self.verify_email(conn, row)?,
            MailKind::SignupAttempt => self.signup_attempt(conn, row)?,
            MailKind::PasswordReset => self.password_reset(conn, row)?,
            MailKind::PasswordChanged => Some(Minted { content: self.password_changed(row), first_token_id: None }),
            MailKind::AccountApproved => {
                let confirmed = match row.user_id {
                    Some(id) => User::find(conn, id)?.is_none_or(|user| user.email_verified_at.is_some()),
                    None => true,
                };
                Some(Minted { content: self.account_approved(confirmed), first_token_id: None })
            }
            MailKind::AccountRejected => Some(Minted { content: self.account_rejected(), first_token_id: None }),
            MailKind::EmailChangeConfirm => self.email_change_confirm(conn, row)?,
            MailKind::EmailChangeRequested => self.email_change_requested(conn, row)?,
            MailKind::EmailChanged => self.email_changed(conn, row)?,
            MailKind::NewSignIn => Some(Minted { content: self.new_sign_in(row), first_token_id: None }),
            MailKind::AccountDeleted => Some(Minted { content: self.account_deleted(row), first_token_id: None }),
            MailKind::Invitation => self.invitation(conn, row)?,
            MailKind::TwoFactorEnabled
            | MailKind::TwoFactorDisabled
            | MailKind::RecoveryCodesRenewed
            | MailKind::RecoveryCodeUsed
            | MailKind::TwoFactorLockout => {
                let left = match row.user_id {
                    Some(id) => crate::db::two_factor::codes_left(conn, id)?,
                    None => 0,
                };
                Some(Minted { content: self.second_factor_notice(kind, row, left), first_token_id: None })
            }
        };
        let Some(Minted { content, first_token_id }) = minted else {
            return Ok(None);
        };
        let mut links: Vec<String> = content.button.iter().map(|button| button.link.clone()).collect();
        links.extend(content.code.iter().map(|code| format!("code {code}")));
        let (site_name, support_email) =
            (&self.config.settings.site_name, self.config.settings.support_email.as_deref());
        let text = TextPart { site_name, support_email, email: &content }.render()?;
        let html = HtmlPart { site_name, support_email, email: &content }.render()?;
        let to: Mailbox = row.recipient.parse()?;
        let message = Message::builder()
            .from(self.config.settings.mail_from.clone())
            .to(to)
            .subject(content.subject)
            .message_id(Some(row.message_id.clone()))
            .multipart(MultiPart::alternative_plain_html(text, html))?;
        Ok(Some(Composed { message, links, minted_token_id: first_token_id }))
    }

    /// Mints a new link and code. Older ones stop working once this mail
    /// is sent, not before: a resend while mail is down keeps the last
    /// delivered link good.
    fn verify_email(&self, conn: &mut DbConnection, row: &OutboxRow) -> anyhow::Result<Option<Minted>> {
        let site = &self.config.settings.site_name;
        let settings = &self.config.settings;
        let token = PlainToken::generate();
        let code = VerificationCode::generate();
        let first_token_id = conn.write(|conn| -> QueryResult<Option<i64>> {
            let Some(user) = locked_recipient(conn, row)? else {
                return Ok(None);
            };
            if user.email_verified_at.is_some() {
                return Ok(None);
            }
            let now = now();
            let link = NewToken {
                user_id: user.id,
                purpose: Purpose::VerifyLink,
                hash: &token.hash(),
                password_hash: row.password_hash.as_deref(),
                expires_at: now + settings.verify_token_ttl.as_secs() as i64,
            };
            let link_id = email_tokens::insert(conn, link, now)?;
            let code = NewToken {
                user_id: user.id,
                purpose: Purpose::VerifyCode,
                hash: &self.codes.hash(user.id, &code),
                password_hash: row.password_hash.as_deref(),
                expires_at: now + settings.verify_code_ttl.as_secs() as i64,
            };
            email_tokens::insert(conn, code, now)?;
            Ok(Some(link_id))
        })?;
        let Some(first_token_id) = first_token_id else {
            return Ok(None);
        };
        let content = EmailContent {
            subject: format!("Confirm your email address for {site}"),
            intro: vec![format!("Confirm that this address is yours to finish creating your {site} account.")],
            button: Some(Button {
                label: "Confirm my email address",
                link: self.config.link(&format!("/verify?token={}", token.expose())),
                note: format!(
                    "The link works for {}, the code for {}.",
                    lifetime(settings.verify_token_ttl),
                    lifetime(settings.verify_code_ttl)
                ),
            }),
            code: Some(code.expose().to_owned()),
            outro: vec!["If you did not sign up, ignore this email; no account will be activated.".into()],
        };
        Ok(Some(Minted { content, first_token_id: Some(first_token_id) }))
    }

    fn signup_attempt(&self, conn: &mut DbConnection, row: &OutboxRow) -> anyhow::Result<Option<Minted>> {
        let site = &self.config.settings.site_name;
        let Some((reset, first_token_id)) = self.mint_reset_link(conn, row)? else {
            return Ok(None);
        };
        let content = EmailContent {
            subject: format!("Someone tried to sign up for {site} with your address"),
            intro: vec![
                format!(
                    "Someone just tried to create an account on {site} with your email address. \
                     You already have an account, so nothing was changed."
                ),
                format!(
                    "If it was you, sign in at {} — or, if you forgot your password, choose a new one below.",
                    self.config.link("/login")
                ),
            ],
            button: Some(reset),
            code: None,
            outro: vec!["If it was not you, ignore this email. Your account is safe.".into()],
        };
        Ok(Some(Minted { content, first_token_id: Some(first_token_id) }))
    }

    fn password_reset(&self, conn: &mut DbConnection, row: &OutboxRow) -> anyhow::Result<Option<Minted>> {
        let site = &self.config.settings.site_name;
        let Some((reset, first_token_id)) = self.mint_reset_link(conn, row)? else {
            return Ok(None);
        };
        let content = EmailContent {
            subject: format!("Reset your {site} password"),
            intro: vec!["Someone (hopefully you) asked to reset the password of your account.".into()],
            button: Some(reset),
            code: None,
            outro: vec!["If you did not ask for this, ignore this email; your password stays as it is.".into()],
        };
        Ok(Some(Minted { content, first_token_id: Some(first_token_id) }))
    }

    fn password_changed(&self, row: &OutboxRow) -> EmailContent {
        let site = &self.config.settings.site_name;
        let facts = row.event.as_deref().and_then(|json| serde_json::from_str::<EventFacts>(json).ok());
        let changed = match facts {
            Some(facts) => format!("The password of your {site} account was changed {}.", facts.describe()),
            None => format!("The password of your {site} account was just changed."),
        };
        EmailContent {
            subject: format!("Your {site} password was changed"),
            intro: vec![changed, "If this was you, there is nothing to do.".into()],
            button: Some(Button {
                label: "Reset my password",
                link: self.config.link("/password/forgot"),
                note: "If it was not you, reset your password now and check your account.".into(),
            }),
            code: None,
            outro: vec![],
        }
    }

    fn new_sign_in(&self, row: &OutboxRow) -> EmailContent {
        let site = &self.config.settings.site_name;
        let when = facts_of(row).map(|facts| format!(" {}", facts.describe())).unwrap_or_default();
        EmailContent {
            subject: format!("New sign-in to your {site} account"),
            intro: vec![
                format!(
                    "Someone signed in to your {site} account in a browser we do not recognise (a new device, \
                     a private window, or cleared cookies){when}."
                ),
                format!(
                    "If this was you, there is nothing to do. If not, choose a new password now: that signs out \
                     every browser. Where you are signed in is listed on your account page: {}",
                    self.config.link("/account")
                ),
            ],
            button: Some(Button {
                label: "Choose a new password",
                link: self.config.link("/password/forgot"),
                note: "Times are in UTC; the place is the IP address the browser came from.".into(),
            }),
            code: None,
            outro: vec![],
        }
    }

    /// A change to the account's second factor, and what to do if it was
    /// not the owner. `left`: recovery codes left now.
    fn second_factor_notice(&self, kind: MailKind, row: &OutboxRow, left: i64) -> EmailContent {
        let site = &self.config.settings.site_name;
        let when = facts_of(row).map(|facts| format!(" {}", facts.describe())).unwrap_or_default();
        let (subject, what) = match kind {
            MailKind::TwoFactorEnabled => (
                format!("Two-step sign-in is on for your {site} account"),
                format!(
                    "Two-step sign-in was turned on for your {site} account{when}: signing in now also needs a code from an authenticator app."
                ),
            ),
            MailKind::TwoFactorDisabled if row.event.is_none() => (
                format!("Two-step sign-in was reset on your {site} account"),
                format!(
                    "An administrator of {site} turned off two-step sign-in for your account, as asked when a device is lost. Your password alone signs in now; set it up again from your account page."
                ),
            ),
            MailKind::TwoFactorDisabled => (
                format!("Two-step sign-in is off for your {site} account"),
                format!(
                    "Two-step sign-in was turned off for your {site} account{when}. Your password alone signs in now."
                ),
            ),
            MailKind::TwoFactorLockout => (
                format!("Someone has your {site} password"),
                format!(
                    "Someone signed in to your {site} account with the right password{when}, then typed wrong two-step \
                     codes until no more were allowed. Two-step sign-in kept them out."
                ),
            ),
            MailKind::RecoveryCodesRenewed => (
                format!("New recovery codes for your {site} account"),
                format!("New recovery codes were made for your {site} account{when}. The earlier ones no longer work."),
            ),
            _ => (
                format!("A recovery code was used to sign in to your {site} account"),
                format!(
                    "A recovery code was used to sign in to your {site} account{when}. {}",
                    codes_left_in_words(left)
                ),
            ),
        };
        let ask = match &self.config.settings.support_email {
            Some(support) => format!("write to {support}"),
            None => format!("ask the administrators of {site}"),
        };
        let note = match kind {
            MailKind::TwoFactorLockout => "If it was not you, choose a new password now: whoever typed it knows \
                                            it, and only two-step sign-in stands in their way."
                .to_owned(),
            // Someone else now holds the key or the codes: a new password alone does not get the owner back in.
            MailKind::TwoFactorEnabled | MailKind::RecoveryCodesRenewed => format!(
                "If it was not you, someone signed in with your password and now holds the codes: choose a new \
                 password now, which signs out every browser, and {ask} to reset two-step sign-in."
            ),
            _ => "If it was not you, someone knows your password: choose a new one now, which signs out every \
                  browser, and check your account page."
                .to_owned(),
        };
        if kind == MailKind::TwoFactorDisabled && row.event.is_none() {
            // An administrator's reset: nothing the person did, so no "if this was you".
            return EmailContent {
                subject,
                intro: vec![what, format!("If you did not ask for this, {ask} at once.")],
                button: Some(Button {
                    label: "Set up two-step sign-in again",
                    link: self.config.link("/account/two-factor"),
                    note: "It takes a minute, with your authenticator app.".into(),
                }),
                code: None,
                outro: vec![],
            };
        }
        EmailContent {
            subject,
            intro: vec![
                what,
                match kind {
                    MailKind::TwoFactorLockout => "If this was you, sign in again once the wait is over.".into(),
                    _ => "If this was you, there is nothing to do.".into(),
                },
            ],
            button: Some(Button { label: "Choose a new password", link: self.config.link("/password/forgot"), note }),
            code: None,
            outro: vec![],
        }
    }

    /// By its owner when the row holds the facts of the deletion, else by
    /// an administrator (whose address and IP are not the person's to see).
    fn account_deleted(&self, row: &OutboxRow) -> EmailContent {
        let site = &self.config.settings.site_name;
        let (who, if_not_you) = match facts_of(row) {
            Some(facts) => (
                format!("Your {site} account was deleted {}, after its password was typed again.", facts.describe()),
                match &self.config.settings.support_email {
                    Some(support) => format!("If this was not you, someone knew your password: write to {support}."),
                    None => "If this was not you, someone knew your password.".to_owned(),
                },
            ),
            None => (format!("An administrator of {site} deleted your account."), String::new()),
        };
        let mut intro = vec![
            who,
            "Its address, password and sessions are gone. The site's event log keeps entries about the \
             account, without the address."
                .to_owned(),
        ];
        intro.extend((!if_not_you.is_empty()).then_some(if_not_you));
        EmailContent {
            subject: format!("Your {site} account was deleted"),
            intro,
            // Only where anyone may sign up: elsewhere it takes an invitation, or is closed.
            button: self.config.settings.registration.is_open().then(|| Button {
                label: "Sign up again",
                link: self.config.link("/register"),
                note: "You can sign up again with this address at any time, as a new account.".into(),
            }),
            code: None,
            outro: vec![],
        }
    }

    /// `confirmed`: whether the address is proven; if not, the mail says
    /// that is still to do rather than promise a sign-in.
    fn account_approved(&self, confirmed: bool) -> EmailContent {
        let site = &self.config.settings.site_name;
        let next_step = if confirmed {
            "You can sign in now.".to_owned()
        } else {
            "Confirm your email address with the link we sent earlier (or ask for a new one on the sign-in page); then you can sign in.".to_owned()
        };
        EmailContent {
            subject: format!("Your {site} account was approved"),
            intro: vec![format!("Good news: an administrator approved your {site} account. {next_step}")],
            button: Some(Button {
                label: "Sign in",
                link: self.config.link("/login"),
                note: "Sign in with the email address and password you chose.".into(),
            }),
            code: None,
            outro: vec![],
        }
    }

    fn account_rejected(&self) -> EmailContent {
        let site = &self.config.settings.site_name;
        EmailContent {
            subject: format!("Your {site} account was not approved"),
            intro: vec![format!(
                "An administrator of {site} did not approve your account, so you cannot sign in. \
                 If you think this is a mistake, {}.",
                match &self.config.settings.support_email {
                    Some(support) => format!("write to {support}"),
                    None => "reply to the person who told you about the site".to_owned(),
                }
            )],
            button: None,
            code: None,
            outro: vec![],
        }
    }

    /// Mints a reset link for an enabled account; older links stop
    /// working once this mail is sent.
    fn mint_reset_link(&self, conn: &mut DbConnection, row: &OutboxRow) -> anyhow::Result<Option<(Button, i64)>> {
        let ttl = self.config.settings.reset_token_ttl;
        let token = PlainToken::generate();
        let token_id = conn.write(|conn| -> QueryResult<Option<i64>> {
            let Some(user) = locked_recipient(conn, row)? else {
                return Ok(None);
            };
            if user.disabled_at.is_some() {
                return Ok(None);
            }
            let now = now();
            let reset = NewToken {
                user_id: user.id,
                purpose: Purpose::ResetLink,
                hash: &token.hash(),
                password_hash: None,
                expires_at: now + ttl.as_secs() as i64,
            };
            email_tokens::insert(conn, reset, now).map(Some)
        })?;
        Ok(token_id.map(|id| {
            let button = Button {
                label: "Choose a new password",
                link: self.config.link(&format!("/password/reset?token={}", token.expose())),
                note: format!("The link works once, for {}.", lifetime(ttl)),
            };
            (button, id)
        }))
    }
}

impl Composer {
    /// Mints the link that completes a pending change, if it is still
    /// pending and this mail goes to its new address.
    ///
    /// When the new address belongs to a verified account, it gets a note
    /// instead, and no link: the person who asked was answered as for a
    /// free address, so only the address's owner learns it is taken.
    fn email_change_confirm(&self, conn: &mut DbConnection, row: &OutboxRow) -> anyhow::Result<Option<Minted>> {
        let token = PlainToken::generate();
        let minted = conn.write(|conn| -> QueryResult<Option<bool>> {
            let Some(change) = locked_change_of(conn, row)? else { return Ok(None) };
            if change.state != email_changes::PENDING || change.new_email != row.recipient {
                return Ok(None);
            }
            let holder = User::find_by_email(conn, &change.new_email)?;
            if holder.is_some_and(|holder| holder.id != change.user_id && holder.email_verified_at.is_some()) {
                return Ok(Some(false));
            }
            Ok(email_changes::set_confirm_hash(conn, change.id, &token.hash())?.then_some(true))
        })?;
        let content = match minted {
            None => return Ok(None),
            Some(false) => self.email_change_taken(),
            Some(true) => self.email_change_link(&token),
        };
        Ok(Some(Minted { content, first_token_id: None }))
    }

    /// To an address that has an account when another account asked for it.
    fn email_change_taken(&self) -> EmailContent {
        let site = &self.config.settings.site_name;
        EmailContent {
            subject: format!("Someone tried to use your address on {site}"),
            intro: vec![
                format!(
                    "Someone asked to make this address the address of another {site} account. \
                     It is already the address of your account, so nothing was changed."
                ),
                format!(
                    "If you forgot your password, you can choose a new one at {}.",
                    self.config.link("/password/forgot")
                ),
            ],
            button: None,
            code: None,
            outro: vec!["There is nothing to do. Your account is safe.".into()],
        }
    }

    fn email_change_link(&self, token: &PlainToken) -> EmailContent {
        let site = &self.config.settings.site_name;
        EmailContent {
            subject: format!("Confirm your new email address for {site}"),
            intro: vec![format!(
                "Someone (hopefully you) asked to make this the address of their {site} account. \
                 Nothing changes until you confirm."
            )],
            button: Some(Button {
                label: "Confirm my new address",
                link: self.config.link(&format!("/account/email/confirm?token={}", token.expose())),
                note: format!("The link works once, for {}.", lifetime(self.config.settings.verify_token_ttl)),
            }),
            code: None,
            outro: vec!["If you did not ask for this, ignore this email; no account will use your address.".into()],
        }
    }

    /// Tells the current address that a change away from it was asked for.
    fn email_change_requested(&self, conn: &mut DbConnection, row: &OutboxRow) -> anyhow::Result<Option<Minted>> {
        let site = &self.config.settings.site_name;
        let Some(change) = change_of(conn, row)? else { return Ok(None) };
        let when = facts_of(row).map(|facts| format!(" {}", facts.describe())).unwrap_or_default();
        // Composed later than asked: say what became of the request meanwhile.
        let since = match change.state.as_str() {
            email_changes::PENDING => "It changes only once that address confirms.",
            email_changes::CANCELLED | email_changes::REPLACED => "That request has since been cancelled or replaced.",
            _ => "The change has since been confirmed from that address.",
        };
        let content = EmailContent {
            subject: format!("A change of your {site} address was requested"),
            intro: vec![
                format!(
                    "Someone signed in to your {site} account asked to change its address to {}{when}. {since}",
                    change.new_email
                ),
                "If this was you, there is nothing to do.".into(),
            ],
            button: Some(Button {
                label: "Review my account",
                link: self.config.link("/account"),
                note: "If it was not you, sign in, cancel the change and change your password.".into(),
            }),
            code: None,
            outro: vec![],
        };
        Ok(Some(Minted { content, first_token_id: None }))
    }

    /// Tells the old address the change is complete, with a link that undoes it.
    fn email_changed(&self, conn: &mut DbConnection, row: &OutboxRow) -> anyhow::Result<Option<Minted>> {
        let site = &self.config.settings.site_name;
        let token = PlainToken::generate();
        let expires_at = now() + REVERT_TTL_SECS;
        let minted = conn.write(|conn| -> QueryResult<Option<EmailChange>> {
            let Some(change) = locked_change_of(conn, row)? else { return Ok(None) };
            let ours = change.old_email == row.recipient;
            Ok((ours && email_changes::set_revert_hash(conn, change.id, &token.hash(), expires_at)?).then_some(change))
        })?;
        let Some(change) = minted else { return Ok(None) };
        let when = facts_of(row).map(|facts| format!(" {}", facts.describe())).unwrap_or_default();
        let content = EmailContent {
            subject: format!("Your {site} address was changed"),
            intro: vec![
                format!("The address of your {site} account was changed from this one to {}{when}.", change.new_email),
                "If this was you, there is nothing to do.".into(),
            ],
            button: Some(Button {
                label: "This was not me: undo the change",
                link: self.config.link(&format!("/account/email/revert?token={}", token.expose())),
                note: format!(
                    "The link works once, for {}. It gives the account this address back and signs everyone out.",
                    lifetime(Duration::from_secs(REVERT_TTL_SECS as u64))
                ),
            }),
            code: None,
            outro: vec![],
        };
        Ok(Some(Minted { content, first_token_id: None }))
    }
}

impl Composer {
    /// Mints the link of a pending invitation, if this is its newest mail
    /// (a re-send queues another, which carries the link instead).
    fn invitation(&self, conn: &mut DbConnection, row: &OutboxRow) -> anyhow::Result<Option<Minted>> {
        let Some(id) = row.invitation_id else { return Ok(None) };
        if !self.config.settings.registration.admits_invitations() {
            // Sign-up closed since it was queued: the link would lead nowhere.
            return Ok(None);
        }
        let token = PlainToken::generate();
        let minted = conn.write(|conn| -> QueryResult<Option<(Invitation, Option<String>)>> {
            // One link per invitation: composers of its mails (a re-send's, or
            // this row's again after a lost lease) take turns on its row, and
            // only the worker still holding this row's lease mints, so a link
            // already sent is never replaced by one that will not be.
            if !invitations::lock(conn, id)? {
                return Ok(None);
            }
            let (Some(owner), Some(until)) = (&row.lease_owner, row.lease_until) else { return Ok(None) };
            if !outbox::renew_lease(conn, row.id, owner, until)? {
                return Ok(None);
            }
            let Some(invitation) = invitations::find(conn, id)? else { return Ok(None) };
            if invitation.email != row.recipient || outbox::newer_for_invitation(conn, id, row.id)? {
                return Ok(None);
            }
            if !invitations::set_token_hash(conn, id, &token.hash(), now())? {
                return Ok(None);
            }
            let inviter = User::find(conn, invitation.invited_by)?.filter(|user| user.deleted_at.is_none());
            Ok(Some((invitation, inviter.map(|user| user.email))))
        })?;
        let Some((invitation, inviter)) = minted else { return Ok(None) };
        let site = &self.config.settings.site_name;
        let who = match inviter {
            Some(email) => format!("{email}, an administrator of {site},"),
            None => format!("An administrator of {site}"),
        };
        let groups = invitation.groups();
        let mut intro = vec![format!(
            "{who} invited you to create an account on {site} with this address. Choose a password and you are in: \
             the address counts as confirmed, and no further approval is needed."
        )];
        if !groups.is_empty() {
            intro.push(format!("Your account will be in these groups: {}.", groups.join(", ")));
        }
        let until = chrono::DateTime::from_timestamp(invitation.expires_at, 0)
            .map_or_else(String::new, |at| at.format(" (until %-d %B %Y at %H:%M UTC)").to_string());
        let left = Duration::from_secs(u64::try_from(invitation.expires_at - now()).unwrap_or(0));
        let content = EmailContent {
            subject: format!("You are invited to {site}"),
            intro,
            button: Some(Button {
                label: "Accept the invitation",
                link: self.config.link(&format!("/invite?token={}", token.expose())),
                note: format!("The link works once, for {}{until}.", lifetime(round_to_hours(left))),
            }),
            code: None,
            outro: vec!["If you do not want an account, ignore this email; none is made without you.".into()],
        };
        Ok(Some(Minted { content, first_token_id: None }))
    }
}

/// `left` to the nearest hour when it is more than one, so a mail composed
/// a few seconds after the invitation still says "7 days".
fn round_to_hours(left: Duration) -> Duration {
    let seconds = left.as_secs();
    if seconds < 3600 { left } else { Duration::from_secs((seconds + 1800) / 3600 * 3600) }
}

/// The change of address a mail is about, after locking its account (the
/// order every transition locks in), if both still exist.
fn locked_change_of(conn: &mut DbConnection, row: &OutboxRow) -> QueryResult<Option<EmailChange>> {
    match row.user_id {
        Some(user_id) if User::lock(conn, user_id)? => change_of(conn, row),
        _ => Ok(None),
    }
}

/// The change of address a mail is about, if it is still the account's.
fn change_of(conn: &mut DbConnection, row: &OutboxRow) -> QueryResult<Option<EmailChange>> {
    let Some(id) = row.email_change_id else { return Ok(None) };
    Ok(email_changes::find(conn, id)?.filter(|change| Some(change.user_id) == row.user_id))
}

/// The facts a notice reports, as stored with it.
fn facts_of(row: &OutboxRow) -> Option<EventFacts> {
    row.event.as_deref().and_then(|json| serde_json::from_str(json).ok())
}

/// The account a mail is about, locked, if it still exists under that address.
fn locked_recipient(conn: &mut DbConnection, row: &OutboxRow) -> QueryResult<Option<User>> {
    let Some(user_id) = row.user_id else {
        return Ok(None);
    };
    if !User::lock(conn, user_id)? {
        return Ok(None);
    }
    let Some(user) = User::find(conn, user_id)? else {
        return Ok(None);
    };
    Ok((user.email == row.recipient).then_some(user))
}

#[cfg(test)]
mod tests {
    use super::lifetime;
    use std::time::Duration;

    #[test]
    fn lifetimes_read_as_people_write_them() {
        let cases =
            [(86_400, "24 hours"), (900, "15 minutes"), (3600, "1 hour"), (7 * 86_400, "7 days"), (90, "90 seconds")];
        for (seconds, text) in cases {
            assert_eq!(lifetime(Duration::from_secs(seconds)), text);
        }
    }
}

//! The emails Usher sends. Secrets in them (link tokens, codes) are minted
//! only when the mail is composed for sending, so the outbox never holds one.

use std::sync::Arc;
use std::time::Duration;

use askama::Template;
use diesel::QueryResult;
use lettre::Message;
use lettre::message::{Mailbox, MultiPart};

use crate::config::Config;
use crate::db::email_tokens::{self, Purpose};
use crate::db::outbox::{self, NewMail, OutboxRow};
use crate::db::users::User;
use crate::db::{DbConnection, now};
use crate::domain::{CodeHasher, PlainToken, VerificationCode};
use crate::web::pages::SITE_NAME;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MailKind {
    /// A link and a code to prove the address.
    VerifyEmail,
    /// To a verified owner when someone registers with their address.
    SignupAttempt,
}

impl MailKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::SignupAttempt => "signup_attempt",
        }
    }

    fn parse(kind: &str) -> Option<Self> {
        [Self::VerifyEmail, Self::SignupAttempt]
            .into_iter()
            .find(|k| k.as_str() == kind)
    }

    /// After this a queued mail is no longer worth sending.
    fn deliver_within(self, config: &Config) -> Duration {
        match self {
            Self::VerifyEmail => config.settings.verify_token_ttl,
            Self::SignupAttempt => Duration::from_secs(24 * 3600),
        }
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
    let now = now();
    let mail = NewMail {
        kind: kind.as_str(),
        recipient,
        user_id,
        send_before: now + kind.deliver_within(config).as_secs() as i64,
    };
    outbox::enqueue(conn, mail, mail_domain(config), now)
}

fn mail_domain(config: &Config) -> &str {
    config.settings.mail_from.email.domain()
}

/// The rendered content of one email.
struct Parts {
    subject: String,
    text: String,
    html: String,
    links: Vec<String>,
}

/// A message ready for the transport, with its links for the log in
/// file mode.
pub struct Composed {
    pub message: Message,
    pub links: Vec<String>,
}

#[derive(Clone)]
pub struct Composer {
    pub config: Arc<Config>,
    pub codes: CodeHasher,
}

#[derive(Template)]
#[template(path = "emails/verify_email.txt")]
struct VerifyEmailText<'a> {
    site_name: &'a str,
    link: &'a str,
    code: &'a str,
    link_lifetime: String,
    code_lifetime: String,
}

#[derive(Template)]
#[template(path = "emails/verify_email.html")]
struct VerifyEmailHtml<'a> {
    site_name: &'a str,
    link: &'a str,
    code: &'a str,
    link_lifetime: String,
    code_lifetime: String,
}

#[derive(Template)]
#[template(path = "emails/signup_attempt.txt")]
struct SignupAttemptText<'a> {
    site_name: &'a str,
    login_link: &'a str,
    reset_link: &'a str,
}

#[derive(Template)]
#[template(path = "emails/signup_attempt.html")]
struct SignupAttemptHtml<'a> {
    site_name: &'a str,
    login_link: &'a str,
    reset_link: &'a str,
}

fn lifetime(duration: Duration) -> String {
    humantime::format_duration(duration).to_string()
}

impl Composer {
    /// Builds the message for an outbox row; `None` when it is no longer
    /// needed (the account is gone or already verified).
    pub fn compose(
        &self,
        conn: &mut DbConnection,
        row: &OutboxRow,
    ) -> anyhow::Result<Option<Composed>> {
        let Some(kind) = MailKind::parse(&row.kind) else {
            anyhow::bail!("unknown mail kind {:?}", row.kind);
        };
        let parts = match kind {
            MailKind::VerifyEmail => match self.verify_email(conn, row)? {
                Some(parts) => parts,
                None => return Ok(None),
            },
            MailKind::SignupAttempt => self.signup_attempt()?,
        };
        let to: Mailbox = row.recipient.parse()?;
        let message = Message::builder()
            .from(self.config.settings.mail_from.clone())
            .to(to)
            .subject(parts.subject)
            .message_id(Some(row.message_id.clone()))
            .multipart(MultiPart::alternative_plain_html(parts.text, parts.html))?;
        Ok(Some(Composed {
            message,
            links: parts.links,
        }))
    }

    /// Mints a new link and code (voiding the older ones) in one transaction.
    fn verify_email(
        &self,
        conn: &mut DbConnection,
        row: &OutboxRow,
    ) -> anyhow::Result<Option<Parts>> {
        let settings = &self.config.settings;
        let token = PlainToken::generate();
        let code = VerificationCode::generate();
        let minted = conn.write(|conn| -> QueryResult<bool> {
            let Some(user) = row
                .user_id
                .map(|id| User::find(conn, id))
                .transpose()?
                .flatten()
            else {
                return Ok(false);
            };
            if user.email_verified_at.is_some() {
                return Ok(false);
            }
            let now = now();
            email_tokens::void_all(
                conn,
                user.id,
                &[Purpose::VerifyLink, Purpose::VerifyCode],
                now,
            )?;
            let link_expiry = now + settings.verify_token_ttl.as_secs() as i64;
            email_tokens::insert(
                conn,
                user.id,
                Purpose::VerifyLink,
                &token.hash(),
                now,
                link_expiry,
            )?;
            let code_expiry = now + settings.verify_code_ttl.as_secs() as i64;
            email_tokens::insert(
                conn,
                user.id,
                Purpose::VerifyCode,
                &self.codes.hash(user.id, &code),
                now,
                code_expiry,
            )?;
            Ok(true)
        })?;
        if !minted {
            return Ok(None);
        }
        let link = self
            .config
            .link(&format!("/verify?token={}", token.expose()));
        let (link_lifetime, code_lifetime) = (
            lifetime(settings.verify_token_ttl),
            lifetime(settings.verify_code_ttl),
        );
        let text = VerifyEmailText {
            site_name: SITE_NAME,
            link: &link,
            code: code.expose(),
            link_lifetime: link_lifetime.clone(),
            code_lifetime: code_lifetime.clone(),
        }
        .render()?;
        let html = VerifyEmailHtml {
            site_name: SITE_NAME,
            link: &link,
            code: code.expose(),
            link_lifetime,
            code_lifetime,
        }
        .render()?;
        let subject = format!("Confirm your email address for {SITE_NAME}");
        let links = vec![link, format!("code {}", code.expose())];
        Ok(Some(Parts {
            subject,
            text,
            html,
            links,
        }))
    }

    fn signup_attempt(&self) -> anyhow::Result<Parts> {
        let login_link = self.config.link("/login");
        let reset_link = self.config.link("/password/forgot");
        let text = SignupAttemptText {
            site_name: SITE_NAME,
            login_link: &login_link,
            reset_link: &reset_link,
        }
        .render()?;
        let html = SignupAttemptHtml {
            site_name: SITE_NAME,
            login_link: &login_link,
            reset_link: &reset_link,
        }
        .render()?;
        let subject = format!("Someone tried to sign up for {SITE_NAME} with your address");
        Ok(Parts {
            subject,
            text,
            html,
            links: vec![login_link, reset_link],
        })
    }
}

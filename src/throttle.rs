//! Rate limits that hold across instances: attempts are rows in the
//! database, counted per bucket over a sliding window. Buckets are keyed by
//! the normalised address (whether or not it has an account) or by the
//! client's IP, so a limit never tells whether an address is registered.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use diesel::QueryResult;

use crate::db::{DbConnection, throttle_hits};

/// At most `max` attempts per `window`, written `10/15m`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    pub max: u32,
    pub window: Duration,
}

impl FromStr for Limit {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let (max, window) = raw.split_once('/').ok_or("expected attempts/duration, e.g. 10/15m")?;
        let max = max.trim().parse().map_err(|_| format!("{max:?} is not a number of attempts"))?;
        let window = humantime::parse_duration(window.trim()).map_err(|e| e.to_string())?;
        if window.is_zero() {
            return Err("the duration must be longer than zero".into());
        }
        Ok(Self { max, window })
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.max, humantime::format_duration(self.window))
    }
}

/// What is being counted, and for whom.
#[derive(Clone, Debug)]
pub enum Bucket {
    /// Failed sign-ins for an address.
    SignInAddress(String),
    /// Failed sign-ins from a client.
    SignInIp(String),
    /// Requests that send mail to an address (resend, forgot, registration).
    MailAddress(String),
    /// Verification codes typed for an address.
    CodeAddress(String),
    /// Sign-ups from a client.
    SignUpIp(String),
    /// Wrong second-factor codes for an account, by its id: a change of
    /// address cannot reset it, and it outlives each sign-in's challenge.
    SecondFactorAccount(i64),
}

impl Bucket {
    /// The bucket's name in `throttle_hits`.
    pub fn key(&self) -> String {
        match self {
            Self::SignInAddress(address) => format!("signin-address:{address}"),
            Self::SignInIp(ip) => format!("signin-ip:{ip}"),
            Self::MailAddress(address) => format!("mail-address:{address}"),
            Self::CodeAddress(address) => format!("code-address:{address}"),
            Self::SignUpIp(ip) => format!("signup-ip:{ip}"),
            Self::SecondFactorAccount(id) => format!("second-factor-account:{id}"),
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub sign_in_per_address: Limit,
    pub sign_in_per_ip: Limit,
    pub mail_per_address: Limit,
    pub codes_per_address: Limit,
    pub sign_ups_per_ip: Limit,
    pub second_factor_per_account: Limit,
}

/// The limits in force, or none when `USHER_THROTTLE=off`.
#[derive(Clone, Copy, Debug)]
pub struct Throttle {
    limits: Option<Limits>,
}

/// How long until the bucket allows another attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryAfter(pub Duration);

impl Throttle {
    pub fn new(enabled: bool, limits: Limits) -> Self {
        Self { limits: enabled.then_some(limits) }
    }

    fn limit(&self, bucket: &Bucket) -> Option<Limit> {
        let limits = self.limits?;
        Some(match bucket {
            Bucket::SignInAddress(_) => limits.sign_in_per_address,
            Bucket::SignInIp(_) => limits.sign_in_per_ip,
            Bucket::MailAddress(_) => limits.mail_per_address,
            Bucket::CodeAddress(_) => limits.codes_per_address,
            Bucket::SignUpIp(_) => limits.sign_ups_per_ip,
            Bucket::SecondFactorAccount(_) => limits.second_factor_per_account,
        })
    }

    /// `Err` with the wait if the bucket is full; counts nothing.
    fn check(&self, conn: &mut DbConnection, bucket: &Bucket, now: i64) -> QueryResult<Result<(), RetryAfter>> {
        let Some(limit) = self.limit(bucket) else {
            return Ok(Ok(()));
        };
        let window = limit.window.as_secs() as i64;
        let (count, oldest) = throttle_hits::count_since(conn, &bucket.key(), now - window)?;
        if count < i64::from(limit.max) {
            return Ok(Ok(()));
        }
        let wait = oldest.map_or(window, |oldest| oldest + window - now).max(1);
        Ok(Err(RetryAfter(Duration::from_secs(wait as u64))))
    }

    /// Counts an attempt if the bucket has room, before the attempt is
    /// made, so that parallel attempts cannot all slip under the limit.
    /// Must run in a write transaction (it holds the bucket until the end).
    /// Returns the hit, which `release` can take back (a sign-in that
    /// turns out to be right is no failure).
    pub fn take(
        &self,
        conn: &mut DbConnection,
        bucket: &Bucket,
        now: i64,
    ) -> QueryResult<Result<Option<i64>, RetryAfter>> {
        if self.limits.is_none() {
            return Ok(Ok(None));
        }
        let key = bucket.key();
        throttle_hits::lock_bucket(conn, &key)?;
        if let Err(wait) = self.check(conn, bucket, now)? {
            return Ok(Err(wait));
        }
        throttle_hits::insert(conn, &key, now).map(|id| Ok(Some(id)))
    }

    /// Takes back hits that `take` counted.
    pub fn release(&self, conn: &mut DbConnection, hits: &[i64]) -> QueryResult<()> {
        if !hits.is_empty() {
            throttle_hits::delete(conn, hits)?;
        }
        Ok(())
    }

    /// Forgets a bucket's attempts (a successful sign-in or reset clears
    /// the failures of its address).
    pub fn clear(&self, conn: &mut DbConnection, bucket: &Bucket) -> QueryResult<()> {
        if self.limits.is_some() {
            throttle_hits::clear(conn, &bucket.key())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_from_attempts_over_a_duration() {
        assert_eq!("10/15m".parse(), Ok(Limit { max: 10, window: Duration::from_secs(900) }));
        assert_eq!(" 5 / 1h ".parse(), Ok(Limit { max: 5, window: Duration::from_secs(3600) }));
        for bad in ["10", "ten/15m", "10/soon", "10/0s", "-1/1h"] {
            assert!(bad.parse::<Limit>().is_err(), "{bad}");
        }
    }
}

use std::path::PathBuf;
use std::time::Duration;

use lettre::address::Envelope;
use lettre::transport::smtp::{PoolConfig, SmtpTransport};
use lettre::{FileTransport, Transport as _};

const SMTP_TIMEOUT: Duration = Duration::from_secs(20);

/// Where mail goes: an SMTP server, or `.eml` files for a newcomer's first run.
pub enum Transport {
    Smtp(SmtpTransport),
    Files { transport: FileTransport, dir: PathBuf },
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Worth another try later (connection refused, 4xx reply, timeouts).
    #[error("temporary failure: {0}")]
    Temporary(String),
    /// Retrying will not help (5xx reply).
    #[error("permanent failure: {0}")]
    Permanent(String),
}

impl Transport {
    /// `smtp://host:port` is plain, `?tls=required` adds STARTTLS, `smtps://`
    /// is implicit TLS, `user:pass@` gives credentials. Up to `connections`
    /// idle connections are kept for reuse; the number open at once is
    /// bounded by how many threads send, so give it the number of senders.
    ///
    /// # Errors
    /// A URL lettre cannot read.
    pub fn smtp(url: &str, connections: u32) -> anyhow::Result<Self> {
        let transport = SmtpTransport::from_url(url)
            .map_err(|e| anyhow::anyhow!("USHER_SMTP_URL: {e}"))?
            .timeout(Some(SMTP_TIMEOUT))
            .pool_config(PoolConfig::new().max_size(connections.max(1)))
            .build();
        Ok(Self::Smtp(transport))
    }

    pub fn files(dir: PathBuf) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&dir)
            .map_err(|e| anyhow::anyhow!("USHER_MAIL_DIR: cannot create {}: {e}", dir.display()))?;
        Ok(Self::Files { transport: FileTransport::new(&dir), dir })
    }

    pub fn is_files(&self) -> bool {
        matches!(self, Self::Files { .. })
    }

    /// Sends a composed message as it was first composed, byte for byte.
    pub fn send_raw(&self, envelope: &Envelope, message: &[u8]) -> Result<(), SendError> {
        match self {
            Self::Smtp(smtp) => smtp.send_raw(envelope, message).map(|_| ()).map_err(|error| {
                if error.is_permanent() {
                    SendError::Permanent(error.to_string())
                } else {
                    SendError::Temporary(error.to_string())
                }
            }),
            Self::Files { transport, dir } => transport
                .send_raw(envelope, message)
                .map(|_| ())
                .map_err(|e| SendError::Temporary(format!("writing to {}: {e}", dir.display()))),
        }
    }
}

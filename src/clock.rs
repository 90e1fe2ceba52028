//! Usher's clock: every timestamp it stores or compares comes from `now()`.
//!
//! A `Clock` is the system's UTC time plus an offset that only tests move
//! (`advance`), so expiry is tested without sleeping. Each running Usher
//! has one, installed on the threads that serve it (HTTP workers, the mail
//! and cleanup threads) and entered by the database helper around every
//! blocking job, so several servers in one test process keep their own
//! time.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

thread_local! {
    static CURRENT: RefCell<Option<Clock>> = const { RefCell::new(None) };
}

/// The system's UTC time, moved forward by `advance`. Clones share the offset.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    /// Seconds added to the system time.
    offset: Arc<AtomicI64>,
}

impl Clock {
    /// Unix seconds (UTC) by this clock.
    pub fn now(&self) -> i64 {
        chrono::Utc::now().timestamp() + self.offset.load(Ordering::Relaxed)
    }

    /// Moves this clock (and its clones) forward, to the whole second.
    pub fn advance(&self, by: Duration) {
        let seconds = i64::try_from(by.as_secs()).unwrap_or(i64::MAX);
        self.offset.fetch_add(seconds, Ordering::Relaxed);
    }

    /// Makes this the clock of the current thread from now on.
    pub fn install(&self) {
        CURRENT.with(|current| *current.borrow_mut() = Some(self.clone()));
    }

    /// Makes this the clock of the current thread until the guard is
    /// dropped (for work on threads shared by several servers).
    pub fn enter(&self) -> Entered {
        let previous = CURRENT.with(|current| current.borrow_mut().replace(self.clone()));
        Entered { previous }
    }
}

/// Restores the thread's previous clock when dropped.
pub struct Entered {
    previous: Option<Clock>,
}

impl Drop for Entered {
    fn drop(&mut self) {
        let previous = self.previous.take();
        CURRENT.with(|current| *current.borrow_mut() = previous);
    }
}

/// Unix seconds (UTC) by the current thread's clock; the system's time on
/// a thread without one (the command-line tools).
pub fn now() -> i64 {
    CURRENT.with(|current| current.borrow().as_ref().map(Clock::now)).unwrap_or_else(|| chrono::Utc::now().timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_advanced_clock_is_seen_only_where_it_is_installed_or_entered() {
        let clock = Clock::default();
        clock.advance(Duration::from_secs(3600));
        let system = now();
        {
            let _entered = clock.enter();
            assert!(now() >= system + 3600);
        }
        assert!(now() < system + 3600, "back to the system's time");
        std::thread::spawn(move || {
            clock.install();
            assert!(now() >= system + 3600);
        })
        .join()
        .unwrap();
    }
}

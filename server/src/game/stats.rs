//! The game's own counters (the runtime counts frames and closes; these count what the game decided), and the
//! throttle that keeps a condition a client can trigger from flooding the log.
//!
//! [`GameStats`] is a cheap handle: the logic thread increments, anyone holding a clone (a test, a status line)
//! reads. Relaxed atomics: every counter is independent and only ever read for reporting, so no ordering with other
//! memory is needed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A shared handle to the game's counters; clones see the same numbers.
#[derive(Debug, Clone, Default)]
pub struct GameStats {
    counters: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    logins_refused: AtomicU64,
    chats_refused: AtomicU64,
    room_reentries: AtomicU64,
    listing_pages: AtomicU64,
    sends_failed: AtomicU64,
}

/// The game's counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GameStatsSnapshot {
    /// `C_LOGIN`s answered with `S_LOGIN { success: false }`.
    pub logins_refused: u64,
    /// `C_CHAT`s answered with `S_CHAT_REFUSED` (over the length limit).
    pub chats_refused: u64,
    /// `C_ENTER_ROOM`s for the room the player was already in, answered with the short acknowledgement.
    pub room_reentries: u64,
    /// `S_ENTER_ROOM` pages sent (a listing is one page or more).
    pub listing_pages: u64,
    /// Sends the game could not make: the session was closing, its queue was full, or (a bug) the packet did not
    /// encode. Each is also logged, at most once a second for the same kind.
    pub sends_failed: u64,
}

impl GameStats {
    /// The counters now.
    pub fn snapshot(&self) -> GameStatsSnapshot {
        let c = &self.counters;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        GameStatsSnapshot {
            logins_refused: load(&c.logins_refused),
            chats_refused: load(&c.chats_refused),
            room_reentries: load(&c.room_reentries),
            listing_pages: load(&c.listing_pages),
            sends_failed: load(&c.sends_failed),
        }
    }

    pub(crate) fn login_refused(&self) {
        self.counters.logins_refused.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn chat_refused(&self) {
        self.counters.chats_refused.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn room_reentry(&self) {
        self.counters.room_reentries.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn listing_page(&self) {
        self.counters.listing_pages.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn send_failed(&self) {
        self.counters.sends_failed.fetch_add(1, Ordering::Relaxed);
    }
}

/// Lets one log line through per period and counts the ones it held back, so that a line a client can cause does
/// not turn into one line per packet.
#[derive(Debug)]
pub(crate) struct Throttle {
    period: Duration,
    last: Option<Instant>,
    held_back: u64,
}

impl Throttle {
    pub(crate) const fn per(period: Duration) -> Self {
        Throttle { period, last: None, held_back: 0 }
    }

    /// `Some(lines held back since the last one let through)` if a line may be logged now.
    pub(crate) fn allow(&mut self, now: Instant) -> Option<u64> {
        if self.last.is_some_and(|last| now.duration_since(last) < self.period) {
            self.held_back += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.held_back))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_lets_one_line_through_per_period_and_counts_the_rest() {
        let mut throttle = Throttle::per(Duration::from_secs(1));
        let t0 = Instant::now();
        assert_eq!(throttle.allow(t0), Some(0));
        for i in 1..=999 {
            assert_eq!(throttle.allow(t0 + Duration::from_millis(i)), None);
        }
        assert_eq!(throttle.allow(t0 + Duration::from_secs(1)), Some(999));
        assert_eq!(throttle.allow(t0 + Duration::from_secs(3)), Some(0));
    }
}

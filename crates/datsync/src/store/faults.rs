//! Fault injection for crash tests: the store "crashes" at its Nth write. The plans
//! ([`FaultPlan`]) exist with the `test-support` feature only; without it every operation
//! proceeds.

#[cfg(feature = "test-support")]
use std::sync::{Arc, Mutex};

/// The fault plan of a store, if any (never one without the `test-support` feature).
#[derive(Debug, Clone, Default)]
pub(super) struct Faults {
    #[cfg(feature = "test-support")]
    plan: Option<Arc<FaultPlan>>,
}

#[cfg_attr(
    not(feature = "test-support"),
    allow(clippy::unused_self, reason = "without plans every operation proceeds")
)]
impl Faults {
    /// Faults that follow `plan` (`None`: none).
    #[cfg(feature = "test-support")]
    pub(super) fn planned(plan: Option<Arc<FaultPlan>>) -> Self {
        Self { plan }
    }

    /// What a write (a put or a delete) must do.
    pub(super) fn on_write(&self) -> Verdict {
        #[cfg(feature = "test-support")]
        if let Some(plan) = &self.plan {
            return plan.on_write();
        }
        Verdict::Proceed
    }

    /// What a read (a get, a head or a listing) must do.
    pub(super) fn on_read(&self) -> Verdict {
        #[cfg(feature = "test-support")]
        if let Some(plan) = &self.plan {
            return plan.on_read();
        }
        Verdict::Proceed
    }
}

/// When the injected crash happens relative to the write it hits.
#[cfg(feature = "test-support")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// The write does not happen (on a local store a torn temp file is left behind, as a
    /// crash in the middle of writing would).
    Before,
    /// The write happens, then the process "dies" before learning it succeeded.
    After,
}

/// A plan to crash at the `nth` write (1-based) of a store: puts and deletes count. After the
/// crash every operation fails, as if the process were gone; reopen the store with
/// [`super::Store::without_faults`] to look at what a restarted process would find.
#[cfg(feature = "test-support")]
#[derive(Debug)]
pub struct FaultPlan {
    nth: u64,
    point: CrashPoint,
    state: Mutex<FaultState>,
}

#[cfg(feature = "test-support")]
#[derive(Debug, Default)]
struct FaultState {
    writes: u64,
    crashed: bool,
}

/// What the store must do for one write under a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(
    not(feature = "test-support"),
    allow(
        dead_code,
        reason = "crashes are planned only with the test-support feature"
    )
)]
pub(super) enum Verdict {
    /// Go ahead.
    Proceed,
    /// Do not write; fail (the crash happens before).
    CrashBefore,
    /// Write, then fail.
    CrashAfter,
    /// The process is already dead.
    Dead,
}

#[cfg(feature = "test-support")]
impl FaultPlan {
    /// Crash at the `nth` write (1-based).
    pub fn crash_at(nth: u64, point: CrashPoint) -> Self {
        Self {
            nth,
            point,
            state: Mutex::new(FaultState::default()),
        }
    }

    /// A plan that never crashes but counts writes (to learn how many steps a scenario has).
    pub fn counting() -> Self {
        Self::crash_at(u64::MAX, CrashPoint::Before)
    }

    /// Writes seen so far.
    pub fn writes(&self) -> u64 {
        self.state.lock().map_or(0, |s| s.writes)
    }

    /// Whether the crash has happened.
    pub fn crashed(&self) -> bool {
        self.state.lock().is_ok_and(|s| s.crashed)
    }

    fn on_write(&self) -> Verdict {
        let Ok(mut state) = self.state.lock() else {
            return Verdict::Dead;
        };
        if state.crashed {
            return Verdict::Dead;
        }
        state.writes += 1;
        if state.writes < self.nth {
            return Verdict::Proceed;
        }
        state.crashed = true;
        match self.point {
            CrashPoint::Before => Verdict::CrashBefore,
            CrashPoint::After => Verdict::CrashAfter,
        }
    }

    fn on_read(&self) -> Verdict {
        if self.crashed() {
            Verdict::Dead
        } else {
            Verdict::Proceed
        }
    }
}

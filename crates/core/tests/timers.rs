//! Hosts fire a timer only if it is still the pending one of its kind.

use phalanx_core::consensus::{Timer, Timers};

#[test]
fn a_replaced_or_cancelled_timer_does_not_fire() {
    let mut t = Timers::default();
    let first = t.arm(Timer::Request);
    assert!(t.is_current(Timer::Request, first));
    let second = t.arm(Timer::Request);
    assert!(!t.is_current(Timer::Request, first), "setting a timer replaces the pending one");
    assert!(t.is_current(Timer::Request, second));
    // Other kinds are independent.
    let batch = t.arm(Timer::Batch);
    t.cancel(Timer::Request);
    assert!(!t.is_current(Timer::Request, second));
    assert!(t.is_current(Timer::Batch, batch));
    t.cancel_all();
    assert!(!t.is_current(Timer::Batch, batch), "a crash voids every timer");
}

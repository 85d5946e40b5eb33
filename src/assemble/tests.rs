use super::*;
use crate::config::types::HumanDuration;

fn config() -> AssemblerConfig {
    AssemblerConfig {
        idle_wait: HumanDuration::from_secs(10),
        wait_after_root: None,
        max_trace_age: HumanDuration::from_secs(60),
        max_traces: 3,
        max_spans_per_trace: 100,
        remember_released_traces: 2,
    }
}

fn id(n: u8) -> TraceId {
    [n; 16]
}

#[test]
fn a_trace_is_released_after_it_goes_quiet_for_idle_wait() {
    let t0 = Instant::now();
    let mut a = Assembler::new(config());
    a.add(t0, id(1), 1, 2, false);
    a.add(t0 + Duration::from_secs(5), id(1), 2, 3, false);
    assert!(
        a.release_due(t0 + Duration::from_secs(14)).is_empty(),
        "the second chunk restarted the wait"
    );
    assert_eq!(a.next_deadline(), Some(t0 + Duration::from_secs(15)));
    let released = a.release_due(t0 + Duration::from_secs(15));
    assert_eq!(
        released,
        vec![ReleasedTrace {
            trace_id: id(1),
            keys: vec![1, 2],
            spans: 5,
            reason: ReleaseReason::Idle
        }]
    );
    assert_eq!((a.traces_in_flight(), a.spans_in_flight()), (0, 0));
}

#[test]
fn wait_after_root_releases_earlier_than_idle_wait() {
    let t0 = Instant::now();
    let mut a = Assembler::new(AssemblerConfig {
        wait_after_root: Some(HumanDuration::from_secs(2)),
        ..config()
    });
    a.add(t0, id(1), 1, 1, false);
    a.add(t0 + Duration::from_secs(1), id(1), 2, 1, true);
    assert!(a.release_due(t0 + Duration::from_millis(2999)).is_empty());
    let released = a.release_due(t0 + Duration::from_secs(3));
    assert_eq!(released[0].reason, ReleaseReason::RootWait);
}

#[test]
fn max_trace_age_releases_a_trace_that_never_goes_quiet() {
    let t0 = Instant::now();
    let mut a = Assembler::new(config());
    for s in 0..=12 {
        a.add(t0 + Duration::from_secs(s * 5), id(1), s, 1, false);
        if s * 5 < 60 {
            assert!(a.release_due(t0 + Duration::from_secs(s * 5)).is_empty());
        }
    }
    let released = a.release_due(t0 + Duration::from_secs(60));
    assert_eq!(released.len(), 1);
    assert_eq!(released[0].reason, ReleaseReason::MaxAge);
}

#[test]
fn max_spans_per_trace_releases_at_once_and_later_spans_are_late() {
    let t0 = Instant::now();
    let mut a = Assembler::new(AssemblerConfig {
        max_spans_per_trace: 10,
        ..config()
    });
    a.add(t0, id(1), 1, 6, false);
    a.add(t0, id(1), 2, 6, false);
    let released = a.release_due(t0);
    assert_eq!(released[0].reason, ReleaseReason::MaxSpans);
    assert_eq!(a.placement(&id(1)), Placement::Late);
}

#[test]
fn released_ids_are_remembered_within_the_configured_bound() {
    let t0 = Instant::now();
    let mut a = Assembler::new(config());
    for n in 1..=3 {
        a.add(t0, id(n), u64::from(n), 1, false);
    }
    assert_eq!(a.free_trace_slots(), 0);
    a.release_due(t0 + Duration::from_secs(10));
    assert_eq!(a.free_trace_slots(), 3);
    assert_eq!(
        a.placement(&id(1)),
        Placement::Buffer,
        "oldest forgotten (bound 2)"
    );
    assert_eq!(a.placement(&id(3)), Placement::Late);
}

#[test]
fn release_all_empties_the_buffer_for_shutdown() {
    let t0 = Instant::now();
    let mut a = Assembler::new(config());
    a.add(t0, id(1), 1, 1, false);
    a.add(t0, id(2), 2, 4, false);
    let all = a.release_all();
    assert_eq!(all.len(), 2);
    assert!(all.iter().all(|t| t.reason == ReleaseReason::Shutdown));
    assert_eq!(a.next_deadline(), None);
    assert_eq!(a.spans_in_flight(), 0);
}

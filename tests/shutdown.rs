//! `service.shutdown_timeout` bounds the whole shutdown, even when a stage never returns.

mod common;

use common::*;
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::Duration;
use tracetopics::Sidecar;
use tracetopics::config::types::HumanDuration;
use tracetopics::pipeline::TraceHook;

/// Says when it got a trace, then blocks until the test lets it go (a plugin stuck in a loop).
struct StuckHook {
    entered: tokio::sync::mpsc::UnboundedSender<()>,
    release: Mutex<mpsc::Receiver<()>>,
}

impl TraceHook for StuckHook {
    fn on_trace(&mut self, _trace: &mut tracetopics::core::AssembledTrace) {
        let _ = self.entered.send(());
        let _ = self.release.lock().unwrap().recv();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_stage_does_not_hold_shutdown_past_its_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(SinkBehaviour::default()).await;
    let mut config = config(dir.path(), sink.addr);
    let shutdown_timeout = Duration::from_secs(2);
    config.service.shutdown_timeout = HumanDuration(shutdown_timeout);
    let (entered, mut hook_entered) = tokio::sync::mpsc::unbounded_channel();
    let (release, released) = mpsc::channel();
    let hook = StuckHook {
        entered,
        release: Mutex::new(released),
    };
    let sidecar = Sidecar::start_with_hook(config, Box::new(hook))
        .await
        .unwrap();
    let mut client = grpc_client(sidecar.addresses.grpc.unwrap()).await;
    client
        .export(request("svc", "s", vec![rich_span(1, 0)]))
        .await
        .unwrap();
    hook_entered.recv().await.expect("the hook got the trace");

    // Before: the shutdown waited for the engine forever. Generous against the 2 s configured,
    // well below the old fixed 10 s waits.
    let report = tokio::time::timeout(shutdown_timeout * 3, sidecar.shutdown())
        .await
        .expect("shutdown outlived service.shutdown_timeout");
    assert!(report.drained, "nothing was queued to drain");
    drop(release);
}

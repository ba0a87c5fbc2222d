//! The provisioning saga against its fake services: retries and timeouts that
//! end well, and failures that undo the VM and then the user.

use std::net::Ipv4Addr;
use std::time::Duration;

use sagaflow::{Outcome, Phase, RunOutcome, RunReport, Runner, SagaError, StepFailure};
use sagaflow_examples::provision::{
    Cloud, Directory, Machine, Network, ProvisionError, ProvisionSaga, Request,
};
use sagaflow_examples::travel::BookTripSaga;

async fn run(
    directory: &Directory,
    cloud: &Cloud,
    network: &Network,
) -> (Result<Machine, SagaError<ProvisionError>>, RunReport) {
    let saga = ProvisionSaga::new(directory, cloud, network, Request::new("grace", "small"));
    Runner::new().run_reported(saga).await
}

#[tokio::test(start_paused = true)]
async fn a_machine_is_provisioned_after_the_cloud_fails_twice_and_the_network_stalls_once() {
    let directory = Directory::new();
    let cloud = Cloud::new().failing_creates(2);
    let network = Network::with_addresses(4).stalling(1);
    let (result, report) = run(&directory, &cloud, &network).await;

    let machine = result.unwrap();
    assert_eq!(report.outcome(), RunOutcome::Committed);

    let create_vm = report.find("create_vm", Phase::Forward).unwrap();
    assert_eq!(create_vm.attempts(), 3);
    assert_eq!(create_vm.outcome(), Outcome::Succeeded);
    assert_eq!(
        create_vm.error(),
        Some("cloud API: 503 service unavailable")
    );
    assert_eq!(cloud.create_calls(), 3);

    let assign_ip = report.find("assign_ip", Phase::Forward).unwrap();
    assert_eq!(assign_ip.attempts(), 2);
    assert_eq!(assign_ip.error(), Some("timed out after 50ms"));
    assert_eq!(
        report
            .find("create_user", Phase::Forward)
            .unwrap()
            .attempts(),
        1
    );

    // What the fakes hold: one user, one VM, one address, and the audit line
    // of the inline step.
    assert_eq!(directory.users(), std::slice::from_ref(&machine.user));
    assert_eq!(
        directory.audit_log(),
        [format!("grace owns {} at {}", machine.vm.id, machine.ip)]
    );
    assert_eq!(machine.user.name, "grace");
    assert_eq!(cloud.vms(), std::slice::from_ref(&machine.vm));
    assert_eq!(machine.vm.owner, machine.user.uid);
    assert_eq!(machine.vm.size, "small");
    // The stalled call had assigned an address before it timed out; the retry
    // carried the same idempotency key and got that address, not a second one.
    assert_eq!(network.calls(), 2);
    assert_eq!(network.assigned(), [(machine.vm.id.clone(), machine.ip)]);
    assert_eq!(machine.ip, Ipv4Addr::new(10, 0, 0, 1));
    assert_eq!(network.free(), 3);
}

#[tokio::test(start_paused = true)]
async fn out_of_addresses_deletes_the_vm_then_removes_the_user() {
    let directory = Directory::new();
    let cloud = Cloud::new();
    let network = Network::exhausted();
    let (result, report) = run(&directory, &cloud, &network).await;
    let err = result.unwrap_err();

    assert_eq!(err.failed_step(), "assign_ip");
    assert_eq!(err.cause(), Some(&ProvisionError::OutOfAddresses));
    assert!(err.is_compensated());
    assert_eq!(err.undone(), ["create_vm", "create_user"]);
    assert_eq!(network.calls(), 3, "the first attempt and 2 retries");
    assert_eq!(
        report.find("assign_ip", Phase::Forward).unwrap().attempts(),
        3
    );

    let undo: Vec<_> = report.compensations().map(|r| r.function()).collect();
    assert_eq!(undo, ["delete_vm", "remove_user"]);

    assert!(cloud.vms().is_empty());
    let deleted = cloud.deleted();
    assert_eq!(deleted.len(), 1);
    assert!(directory.users().is_empty());
    let removed = directory.removed();
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].name, "grace");
    assert_eq!(deleted[0].owner, removed[0].uid);
}

#[tokio::test(start_paused = true)]
async fn a_vm_that_cannot_be_deleted_is_named_for_manual_repair_and_the_user_is_still_removed() {
    let directory = Directory::new();
    let cloud = Cloud::new().refusing_deletes();
    let network = Network::exhausted();
    let (result, report) = run(&directory, &cloud, &network).await;
    let err = result.unwrap_err();

    assert!(matches!(err, SagaError::CompensationFailed { .. }));
    assert!(!err.is_compensated());
    assert_eq!(err.failed_step(), "assign_ip");
    assert_eq!(err.undone(), ["create_user"]);

    let failed = err.failed_compensations();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].step(), "create_vm");
    assert_eq!(failed[0].compensation(), "delete_vm");
    assert_eq!(failed[0].error(), "vm-1 is locked by a running backup");
    assert_eq!(failed[0].attempts(), 4, "`compensate_retry(max = 3)`");
    assert_eq!(cloud.delete_calls(), 4);

    // The VM is still there for a person to delete; the user is gone.
    assert_eq!(cloud.vms().len(), 1);
    assert!(directory.users().is_empty());

    assert_eq!(report.outcome(), RunOutcome::CompensationFailed);
    let delete = report.find("create_vm", Phase::Compensation).unwrap();
    assert_eq!(delete.outcome(), Outcome::Failed);
    assert_eq!(delete.attempts(), 4);
    assert!(
        err.to_string().contains("could not undo `create_vm`"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_cloud_that_stays_down_removes_the_user_after_four_attempts() {
    let directory = Directory::new();
    let cloud = Cloud::new().failing_creates(100);
    let network = Network::with_addresses(4);
    let (result, _report) = run(&directory, &cloud, &network).await;
    let err = result.unwrap_err();

    assert_eq!(err.failed_step(), "create_vm");
    assert_eq!(err.undone(), ["create_user"]);
    assert_eq!(cloud.create_calls(), 4, "the first attempt and 3 retries");
    assert!(cloud.vms().is_empty());
    assert!(directory.users().is_empty());
    assert_eq!(network.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_network_that_keeps_stalling_fails_the_step_with_a_timeout() {
    let directory = Directory::new();
    let cloud = Cloud::new();
    let network = Network::with_addresses(4).stalling(10);
    let (result, _report) = run(&directory, &cloud, &network).await;
    let err = result.unwrap_err();

    assert_eq!(err.failed_step(), "assign_ip");
    assert!(matches!(
        err.failure(),
        StepFailure::TimedOut { after } if *after == Duration::from_millis(50)
    ));
    assert_eq!(err.cause(), None);
    assert_eq!(err.undone(), ["create_vm", "create_user"]);
    assert_eq!(network.calls(), 3);
    // A step that timed out produced no output, so it is not compensated: the
    // address the stalled calls assigned stays assigned (one, thanks to the
    // idempotency key), for the network's own garbage collection to reclaim.
    assert_eq!(network.assigned().len(), 1);
    assert_eq!(network.free(), 3);
}

#[test]
fn the_graph_shows_each_steps_timeout_and_retries() {
    let graph = ProvisionSaga::graph().to_string();
    assert_eq!(
        graph.lines().collect::<Vec<_>>(),
        [
            "saga provision",
            "1. create_user (compensate: remove_user, timeout 200ms)",
            "2. create_vm (compensate: delete_vm, retry 3 (backoff 20ms..50ms), timeout 500ms, \
             compensation retry 3 (backoff 10ms..50ms))",
            "3. assign_ip (compensate: release_ip, retry 2 (backoff 10ms..40ms), timeout 50ms)",
            "4. check_reachable (read-only, retry 2 (backoff 10ms..20ms), timeout 100ms)",
            "5. audit (read-only)",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_machine_that_never_answers_releases_its_address_then_deletes_the_vm_and_removes_the_user()
 {
    let directory = Directory::new();
    let cloud = Cloud::new();
    let network = Network::with_addresses(4).dropping_pings();
    let (result, report) = run(&directory, &cloud, &network).await;
    let err = result.unwrap_err();

    assert_eq!(err.failed_step(), "check_reachable");
    assert_eq!(
        err.cause(),
        Some(&ProvisionError::Unreachable(Ipv4Addr::new(10, 0, 0, 1)))
    );
    assert_eq!(err.undone(), ["assign_ip", "create_vm", "create_user"]);
    assert_eq!(network.pings(), 3, "the first attempt and 2 retries");
    let undo: Vec<_> = report.compensations().map(|r| r.function()).collect();
    assert_eq!(undo, ["release_ip", "delete_vm", "remove_user"]);

    // Nothing is left: the address is back in the pool.
    assert!(network.assigned().is_empty());
    assert_eq!(network.free(), 4);
    assert!(cloud.vms().is_empty());
    assert!(directory.users().is_empty());
}

/// The `cN` nodes of a DOT picture that no edge leads into.
fn compensations_nothing_leads_to(dot: &str) -> Vec<String> {
    let nodes = dot
        .lines()
        .filter_map(|l| l.trim().strip_prefix('c'))
        .filter_map(|rest| rest.split_once(" [label="))
        .map(|(n, _)| format!("c{n}"));
    nodes
        .filter(|c| {
            !dot.lines()
                .any(|l| l.contains(&format!(" -> {c} [style=dashed")))
        })
        .collect()
}

#[test]
fn every_compensation_of_the_examples_can_run() {
    // A compensation runs only when a later step fails: one declared on the last
    // step that has an effect is drawn with no edge into it, because it can never
    // run. `provision` had that until `check_reachable` followed `assign_ip`.
    for (name, graph) in [
        ("provision", ProvisionSaga::graph()),
        ("travel", BookTripSaga::graph()),
    ] {
        let dot = graph.to_dot();
        let drawn = dot.lines().filter(|l| l.trim().starts_with('c')).count();
        assert!(drawn >= 2, "{name}: no compensation node found in\n{dot}");
        assert_eq!(
            compensations_nothing_leads_to(&dot),
            Vec::<String>::new(),
            "{name}: a compensation that nothing leads to\n{dot}"
        );
    }
    // The check itself sees a compensation that nothing leads to.
    let last = "    s0 -> c0 [style=dotted, arrowhead=none];\n    c0 [label=\"undo\"];\n";
    assert_eq!(compensations_nothing_leads_to(last), ["c0"]);
}

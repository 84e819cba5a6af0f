//! A leader that loses its lease, against a real control plane of its own:
//! another holder takes the operator's Lease, and the leader stops (it says
//! so and exits 1, as client-go controllers do, for its Deployment to restart
//! it); its successor reports that it does not lead, changes nothing while
//! the other holder's lease lasts, and works again once it holds the lease.
#![allow(clippy::unwrap_used)]

mod cluster;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cluster::{BIN, ControlPlane, Operator, model_service};

/// `autoglm operator` leading `namespace` with a 3 s lease, its log in `log`.
fn operator(plane: &ControlPlane, namespace: &str, log: &std::path::Path) -> Operator {
    let metrics_port = cluster::free_port();
    let child = Command::new(BIN)
        .args(["operator", "--namespace", namespace, "--kubeconfig"])
        .arg(&plane.kubeconfig)
        .args(["--metrics-addr", &format!("127.0.0.1:{metrics_port}")])
        .args(["--lease-duration", "3"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    Operator {
        child,
        metrics_port,
    }
}

#[test]
fn a_leader_that_loses_its_lease_stops_and_its_successor_waits_for_it() {
    let plane = ControlPlane::with_crd();
    let ns = plane.namespace("lease-loss");
    let logs = tempfile::tempdir().unwrap();
    let holder = || {
        plane.get_json(&["lease", "autoglm-operator", "-n", &ns])["spec"]["holderIdentity"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let replicas = || {
        plane.get_json(&["deployment", "chat-1", "-n", &ns])["spec"]["replicas"]
            .as_u64()
            .unwrap()
    };
    let chat = |replicas: u32| {
        model_service(
            &ns,
            "chat",
            &format!(
                r#"{{model: smollm2, versions: [{{version: "1", weight: 100}}], replicas: {replicas}}}"#
            ),
        )
    };

    let first_log = logs.path().join("first.log");
    let mut first = operator(plane, &ns, &first_log);
    let first_id = format!("_{}", first.child.id());
    plane.wait_until("the first operator leads", Duration::from_secs(30), || {
        plane
            .kubectl_with(&["get", "lease", "autoglm-operator", "-n", &ns], "")
            .status
            .success()
            && holder().ends_with(&first_id)
    });
    plane.apply(&chat(1));
    plane.wait_until("chat-1 made", Duration::from_secs(30), || {
        plane
            .kubectl_with(&["get", "deployment", "chat-1", "-n", &ns], "")
            .status
            .success()
    });
    assert_eq!(first.metric("autoglm_operator_leader", ""), 1.0);

    // Another holder takes the Lease (and, renewing it no more, dies).
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ");
    plane.kubectl(&[
        "patch",
        "lease",
        "autoglm-operator",
        "-n",
        &ns,
        "--type",
        "merge",
        "-p",
        &format!(r#"{{"spec":{{"holderIdentity":"intruder","renewTime":"{now}"}}}}"#),
    ]);
    let taken = Instant::now();
    let status = loop {
        if let Some(status) = first.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            taken.elapsed() < Duration::from_secs(15),
            "the first operator still runs 15 s after losing its lease"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let said = std::fs::read_to_string(&first_log).unwrap();
    assert_eq!(status.code(), Some(1), "{said}");
    assert!(said.contains("lost the leader lease"), "{said}");

    // A change while the other holder's lease lasts is not made: the
    // successor does not lead and says so.
    plane.apply(&chat(3));
    let second_log = logs.path().join("second.log");
    let second = operator(plane, &ns, &second_log);
    let second_id = format!("_{}", second.child.id());
    let mut reported_not_leading = false;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // Replicas first, then the holder: a lease still the intruder's
        // after the read was the intruder's during it (it only moves on),
        // so nobody could have scaled. The other order raced a successor
        // that took the lease and scaled between the two reads.
        let scaled = replicas();
        if holder() != "intruder" {
            break;
        }
        assert_eq!(scaled, 1, "chat-1 scaled while another held the lease");
        if second.http_get("/metrics").is_some() {
            // Read again: the lease may have changed hands in between.
            let leading = second.metric("autoglm_operator_leader", "");
            reported_not_leading |= leading == 0.0 && holder() == "intruder";
        }
        assert!(
            Instant::now() < deadline,
            "the successor never took the lease"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let waited = taken.elapsed();
    assert!(
        waited >= Duration::from_secs(3),
        "the lease changed hands {waited:?} after it was taken, within its duration"
    );
    assert!(
        reported_not_leading,
        "the successor's leader gauge never read 0 while it waited"
    );
    assert!(holder().ends_with(&second_id), "{}", holder());
    assert!(
        std::fs::read_to_string(&second_log)
            .unwrap()
            .contains("waiting for the leader lease")
    );

    // Holding it, the successor makes the change.
    plane.wait_until("chat-1 scaled to 3", Duration::from_secs(30), || {
        replicas() == 3
    });
    assert_eq!(second.metric("autoglm_operator_leader", ""), 1.0);
}

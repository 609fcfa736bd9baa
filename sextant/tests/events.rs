//! Events written in one group are read in the other: events.k8s.io/v1 (what kube-rs's
//! `Recorder` writes) and core v1 (what `kubectl describe` and `kubectl get events` read).

mod support;

use support::Server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_one_resource_in_two_groups() {
    let s = Server::start(&[]);
    let http = s.http();
    let (base, admin) = (s.url(), s.admin_token());
    let new_style = r#"{"apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": "web.1", "namespace": "default"},
        "eventTime": "2026-11-23T10:00:00.000000Z", "reportingController": "sextant.dev/scheduler",
        "reportingInstance": "scheduler-1", "action": "Binding", "reason": "Scheduled", "type": "Normal",
        "regarding": {"kind": "Pod", "namespace": "default", "name": "web"},
        "note": "Successfully assigned default/web to edge-1"}"#;
    let resp = http
        .post(format!(
            "{base}/apis/events.k8s.io/v1/namespaces/default/events"
        ))
        .bearer_auth(&admin)
        .body(new_style)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let created: serde_json::Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(
        created["note"],
        "Successfully assigned default/web to edge-1"
    );

    // The same event, as core v1 shows it, selected by its object.
    let got = s.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=web",
        "-o",
        "jsonpath={.items[0].message}|{.items[0].reportingComponent}",
    ]);
    assert_eq!(
        got,
        "Successfully assigned default/web to edge-1|sextant.dev/scheduler"
    );

    // And a core event read through events.k8s.io.
    s.ok_stdin(&["apply", "-f", "-"], "apiVersion: v1\nkind: Event\nmetadata: {name: web.2, namespace: default}\ninvolvedObject: {kind: Pod, name: web, namespace: default}\nreason: Pulled\nmessage: module fetched\ntype: Normal\n");
    let resp = http
        .get(format!(
            "{base}/apis/events.k8s.io/v1/namespaces/default/events/web.2"
        ))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let ev: serde_json::Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(
        (
            ev["apiVersion"].as_str(),
            ev["note"].as_str(),
            ev["regarding"]["name"].as_str()
        ),
        (
            Some("events.k8s.io/v1"),
            Some("module fetched"),
            Some("web")
        )
    );
    s.stop();
}

//! Node credentials traded for the join token, and ServiceAccount tokens (TokenRequest).

mod support;

use support::Server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_and_service_accounts_get_their_own_tokens() {
    let s = Server::start(&[]);
    let http = s.http();
    let base = s.url();
    let join_token = std::fs::read_to_string(s.dir.path().join("node-token")).unwrap();
    let secret = join_token.trim().rsplit("::").next().unwrap().to_owned();

    // A node agent trades the join secret for a credential of its own.
    let refused = http
        .post(format!("{base}/sextant.dev/v1/node-credentials"))
        .bearer_auth("wrong")
        .body(r#"{"nodeName":"edge-1"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let bad_name = http
        .post(format!("{base}/sextant.dev/v1/node-credentials"))
        .bearer_auth(&secret)
        .body(r#"{"nodeName":"Edge_1"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(bad_name.status(), 400);
    let resp = http
        .post(format!("{base}/sextant.dev/v1/node-credentials"))
        .bearer_auth(&secret)
        .body(r#"{"nodeName":"edge-1"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let creds: serde_json::Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(creds["user"], "system:node:edge-1");
    let node_token = creds["token"].as_str().unwrap();
    let nodes = http
        .get(format!("{base}/api/v1/nodes"))
        .bearer_auth(node_token)
        .send()
        .await
        .unwrap();
    assert_eq!(nodes.status(), 200, "the node credential authenticates");

    // A ServiceAccount token through the TokenRequest subresource.
    let admin = s.admin_token();
    let sa = http
        .post(format!("{base}/api/v1/namespaces/default/serviceaccounts"))
        .bearer_auth(&admin)
        .body(r#"{"metadata":{"name":"robot"}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(sa.status(), 201);
    let req = r#"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenRequest","spec":{"expirationSeconds":3600}}"#;
    let tr = http
        .post(format!(
            "{base}/api/v1/namespaces/default/serviceaccounts/robot/token"
        ))
        .bearer_auth(&admin)
        .body(req)
        .send()
        .await
        .unwrap();
    assert_eq!(tr.status(), 201);
    let tr: serde_json::Value = serde_json::from_slice(&tr.bytes().await.unwrap()).unwrap();
    let sa_token = tr["status"]["token"].as_str().unwrap();
    assert!(
        tr["status"]["expirationTimestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    let cms = http
        .get(format!("{base}/api/v1/namespaces/default/configmaps"))
        .bearer_auth(sa_token)
        .send()
        .await
        .unwrap();
    assert_eq!(cms.status(), 200, "the ServiceAccount token authenticates");
    let missing = http
        .post(format!(
            "{base}/api/v1/namespaces/default/serviceaccounts/nobody/token"
        ))
        .bearer_auth(&admin)
        .body(req)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    // A made-up token is still refused.
    let forged = http
        .get(format!("{base}/api/v1/nodes"))
        .bearer_auth("0".repeat(64))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    s.stop();
}

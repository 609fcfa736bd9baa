//! Bad input gets a Kubernetes `Status` with the right code, and the server keeps serving.

mod support;

use support::Server;

struct Case {
    name: &'static str,
    content_type: &'static str,
    url: &'static str,
    body: Vec<u8>,
    code: u16,
    /// A phrase the message must contain, so the client knows what to fix.
    says: &'static str,
}

fn cm(body: &str) -> Vec<u8> {
    body.as_bytes().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_clear_errors_and_lose_nothing() {
    let s = Server::start(&[]);
    let http = s.http();
    let token = s.admin_token();
    let base = s.url();
    let cms = "/api/v1/namespaces/default/configmaps";
    // A billion-laughs YAML: nine levels of nine-fold aliases.
    let mut bomb = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for (prev, cur) in "abcdefgh".chars().zip("bcdefghi".chars()) {
        bomb.push_str(&format!(
            "{cur}: &{cur} [{}]\n",
            vec![format!("*{prev}"); 9].join(",")
        ));
    }
    let cases = [
        Case {
            name: "bad JSON",
            content_type: "application/json",
            url: cms,
            body: cm("{\"metadata\": "),
            code: 400,
            says: "not valid JSON",
        },
        Case {
            name: "bad YAML",
            content_type: "application/yaml",
            url: cms,
            body: cm("metadata: [unclosed"),
            code: 400,
            says: "not valid YAML",
        },
        Case {
            name: "alias bomb",
            content_type: "application/yaml",
            url: cms,
            body: bomb.into_bytes(),
            code: 400,
            says: "YAML",
        },
        Case {
            name: "4 MiB body",
            content_type: "application/json",
            url: cms,
            body: vec![b' '; 4 * 1024 * 1024],
            code: 413,
            says: "too large",
        },
        Case {
            name: "wrong apiVersion",
            content_type: "application/json",
            url: cms,
            body: cm(
                r#"{"apiVersion": "apps/v1", "kind": "ConfigMap", "metadata": {"name": "x"}}"#,
            ),
            code: 400,
            says: "does not match the expected API version",
        },
        Case {
            name: "invalid name",
            content_type: "application/json",
            url: cms,
            body: cm(
                r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Not_Valid"}}"#,
            ),
            code: 422,
            says: "RFC 1123",
        },
        Case {
            name: "unknown field, Strict",
            content_type: "application/json",
            url: "/api/v1/namespaces/default/configmaps?fieldValidation=Strict",
            body: cm(
                r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "dta": {}}"#,
            ),
            code: 400,
            says: "unknown field \"dta\"",
        },
        Case {
            name: "unknown kind",
            content_type: "application/json",
            url: "/api/v1/namespaces/default/widgets",
            body: cm(r#"{"apiVersion": "v1", "kind": "Widget", "metadata": {"name": "x"}}"#),
            code: 404,
            says: "widgets",
        },
        Case {
            name: "garbled protobuf body",
            content_type: "application/vnd.kubernetes.protobuf",
            url: cms,
            body: b"k8s\0junk".to_vec(),
            code: 400,
            says: "protobuf request body cannot be decoded",
        },
        Case {
            name: "unknown media type",
            content_type: "application/cbor",
            url: cms,
            body: b"\xa0".to_vec(),
            code: 415,
            says: "accepted media types",
        },
        Case {
            name: "missing namespace",
            content_type: "application/json",
            url: "/api/v1/namespaces/nowhere/configmaps",
            body: cm(r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}"#),
            code: 404,
            says: "namespaces \"nowhere\" not found",
        },
    ];
    for c in cases {
        let resp = http
            .post(format!("{base}{}", c.url))
            .bearer_auth(&token)
            .header("content-type", c.content_type)
            .body(c.body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), c.code, "{}", c.name);
        let status: serde_json::Value = serde_json::from_slice(&resp.bytes().await.unwrap())
            .unwrap_or_else(|e| panic!("{}: the body is not a Status: {e}", c.name));
        assert_eq!(status["kind"], "Status", "{}", c.name);
        assert_eq!(status["code"], c.code, "{}", c.name);
        let message = status["message"].as_str().unwrap_or_default();
        assert!(message.contains(c.says), "{}: {message}", c.name);
    }
    // Nothing was stored, and the server still serves.
    let names = s.ok(&["get", "cm", "-n", "default", "-o", "name"]);
    assert!(names.trim().is_empty(), "{names}");
    s.ok(&[
        "create",
        "namespace",
        "still-serving",
        "--dry-run=client",
        "-o",
        "yaml",
    ]);
    s.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok, namespace: default}\n",
    );
    s.stop();
}

//! Reading pods the way a user does (`kubectl get pod`), and plain HTTP to pod and Service
//! addresses on loopback.

use std::time::Duration;

use serde_json::Value;

use super::{Server, eventually};

pub fn pod(s: &Server, name: &str) -> Value {
    serde_json::from_str(&s.ok(&["get", "pod", name, "-o", "json"])).unwrap()
}

/// The STATUS column of `kubectl get pod` (Running, Completed, OOMKilled, CrashLoopBackOff…).
pub fn status_column(s: &Server, name: &str) -> String {
    let out = s.ok(&["get", "pod", name, "--no-headers"]);
    out.split_whitespace().nth(2).unwrap_or_default().to_owned()
}

pub fn wait_status(s: &Server, name: &str, want: &str, secs: u64) {
    eventually(secs, &format!("pod {name} to show {want}"), || {
        (status_column(s, name) == want).then_some(())
    });
}

/// A plain HTTP GET: status, the `x-pod-name` header (which replica answered), body.
pub fn http_get(url: &str) -> Option<(u16, Option<String>, String)> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let resp = client.get(url).send().ok()?;
    let code = resp.status().as_u16();
    let pod = resp
        .headers()
        .get("x-pod-name")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Some((code, pod, resp.text().ok()?))
}

//! The endpoint served for real: TLS with a throwaway CA on 127.0.0.1, logs written by
//! [`crate::logs::LogWriter`], read back with an HTTPS client holding a CA-signed certificate.

use std::path::Path;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_util::sync::CancellationToken;

use crate::logs::{self, LogWriter, Stream};

pub(crate) struct TestPki {
    pub ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl TestPki {
    pub fn new() -> TestPki {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "test-ca");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_pem = params.self_signed(&key).unwrap().pem();
        TestPki {
            ca_pem,
            issuer: Issuer::new(params, key),
        }
    }

    /// (cert, key) PEM for `cn`, usable for `usage`, covering 127.0.0.1.
    pub fn issue(&self, cn: &str, usage: ExtendedKeyUsagePurpose) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.subject_alt_names = vec![SanType::IpAddress([127, 0, 0, 1].into())];
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    pub fn client(&self, identity: Option<(String, String)>) -> reqwest::Client {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
        let tls = match identity {
            Some((cert, key)) => builder
                .with_client_auth_cert(
                    CertificateDer::pem_slice_iter(cert.as_bytes())
                        .collect::<Result<_, _>>()
                        .unwrap(),
                    PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
                )
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .build()
            .unwrap()
    }
}

struct Running {
    url: String,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

async fn start(pki: &TestPki, data_dir: &Path) -> Running {
    let (cert, key) = pki.issue("node-a", ExtendedKeyUsagePurpose::ServerAuth);
    let tls = super::tls_config(&pki.ca_pem, &cert, &key).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "https://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    );
    let stop = CancellationToken::new();
    let task = tokio::spawn(super::serve(
        listener,
        tls,
        data_dir.to_owned(),
        stop.clone(),
    ));
    Running { url, stop, task }
}

fn write(path: &Path, text: &[u8]) -> LogWriter {
    let w = LogWriter::create(path).unwrap();
    w.write(Stream::Stdout, text);
    w
}

#[tokio::test]
async fn serves_logs_tail_timestamps_previous_and_follow() {
    let dir = tempfile::tempdir().unwrap();
    let pods = dir.path().join("pods");
    // An older incarnation of the pod (same name, other uid) must not be picked.
    write(
        &logs::path(&pods.join("default_web_old"), "app", 0),
        b"stale\n",
    );
    std::thread::sleep(Duration::from_millis(20));
    let pod_dir = pods.join("default_web_0c6f1a2b-uid");
    write(&logs::path(&pod_dir, "app", 0), b"a\nb\nc\n");
    let current = write(&logs::path(&pod_dir, "app", 1), b"x\n");
    current.write(Stream::Stderr, b"y");
    current.flush(); // a partial entry…
    current.write(Stream::Stdout, b"z\n");
    write(&logs::path(&pod_dir, "single", 0), b"only\n");

    let pki = TestPki::new();
    let server = start(&pki, dir.path()).await;
    let client = pki.client(Some(pki.issue(
        "system:sextant:apiserver-kubelet-client",
        ExtendedKeyUsagePurpose::ClientAuth,
    )));
    let get = |q: &str| {
        let client = client.clone();
        let url = format!("{}/containerLogs/default/web/{q}", server.url);
        async move {
            let r = client.get(url).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };

    let health = client.get(format!("{}/healthz", server.url)).send().await;
    assert_eq!(health.unwrap().text().await.unwrap(), "ok");

    // …joined with the entry that follows it (whatever stream).
    assert_eq!(get("app").await, (200, "x\nyz\n".into()));
    assert_eq!(get("app?tailLines=1").await, (200, "yz\n".into()));
    assert_eq!(get("app?previous=true").await, (200, "a\nb\nc\n".into()));
    assert_eq!(
        get("app?previous=true&limitBytes=3").await,
        (200, "a\nb".into())
    );
    let (code, text) = get("app?timestamps=true&tailLines=1").await;
    assert_eq!(code, 200);
    let (time, line) = text.split_once(' ').unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(time).is_ok(), "{text}");
    assert_eq!(line, "yz\n");
    assert_eq!(
        get("single?previous=true").await,
        (
            404,
            "previous terminated container \"single\" in pod \"web\" not found".into()
        )
    );
    assert_eq!(
        get("nope").await,
        (
            404,
            "container \"nope\" in pod \"web\" is waiting to start".into()
        )
    );
    assert_eq!(get("app?tailLines=x").await.0, 400);

    let metrics = client.get(format!("{}/metrics", server.url)).send().await;
    let metrics = metrics.unwrap().text().await.unwrap();
    assert!(
        metrics.contains("wasm_kubelet_pod_directories 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("process_resident_memory_bytes "),
        "{metrics}"
    );

    // Follow: the tail, then what is appended after the client connected.
    let mut follow = client
        .get(format!(
            "{}/containerLogs/default/web/app?follow=true&tailLines=1",
            server.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(follow.status(), 200);
    assert_eq!(follow.chunk().await.unwrap().unwrap(), "yz\n");
    current.write(Stream::Stdout, b"later\n");
    let next = tokio::time::timeout(Duration::from_secs(5), follow.chunk()).await;
    assert_eq!(next.unwrap().unwrap().unwrap(), "later\n");

    // A new run ends the old run's follow stream.
    write(&logs::path(&pod_dir, "app", 2), b"again\n");
    let end = tokio::time::timeout(Duration::from_secs(5), follow.chunk()).await;
    assert!(end.unwrap().unwrap().is_none());

    // Shutdown ends open follow streams and the server itself.
    let mut follow = client
        .get(format!(
            "{}/containerLogs/default/web/app?follow=1",
            server.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(follow.chunk().await.unwrap().unwrap(), "again\n");
    server.stop.cancel();
    let end = tokio::time::timeout(Duration::from_secs(5), follow.chunk()).await;
    assert!(end.unwrap().unwrap().is_none());
    tokio::time::timeout(Duration::from_secs(10), server.task)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn refuses_clients_without_a_ca_signed_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new();
    let server = start(&pki, dir.path()).await;

    let anonymous = pki.client(None);
    let refused = anonymous
        .get(format!("{}/healthz", server.url))
        .send()
        .await;
    assert!(refused.is_err(), "{refused:?}");

    // A certificate from another CA is refused as well.
    let other = TestPki::new();
    let stranger = pki.client(Some(other.issue("x", ExtendedKeyUsagePurpose::ClientAuth)));
    let refused = stranger.get(format!("{}/healthz", server.url)).send().await;
    assert!(refused.is_err(), "{refused:?}");

    server.stop.cancel();
    server.task.await.unwrap();
}

//! Bodies built with k8s-pb's own prost types, as kubectl (Go) would send them, must decode to
//! the JSON Kubernetes would have been sent.

use std::collections::BTreeMap;

use k8s_pb::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_pb::api::core::v1::{
    ConfigMap, Container, ContainerPort, PodSpec, PodTemplateSpec, ResourceRequirements, Secret,
    Service, ServicePort, ServiceSpec,
};
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use prost::Message;
use serde_json::json;
use sextant_kpb::{ProtoError, decode_k8s_protobuf};

/// Wraps an encoded object the way client-go does: magic, then runtime.Unknown.
fn envelope(api_version: &str, kind: &str, object: &impl Message) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(object.encode_to_vec()),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut out = b"k8s\0".to_vec();
    out.extend(unknown.encode_to_vec());
    out
}

fn s(v: &str) -> Option<String> {
    Some(v.to_owned())
}

/// ObjectMeta as Go's gogo marshaller writes it: empty non-pointer strings and a zero
/// creationTimestamp are still on the wire.
fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: s(name),
        generate_name: s(""),
        namespace: s(""),
        uid: s(""),
        resource_version: s(""),
        generation: Some(0),
        creation_timestamp: Some(Time::default()),
        ..Default::default()
    }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn configmap() {
    let cm = ConfigMap {
        metadata: Some(meta("x")),
        data: labels(&[("a", "b"), ("empty", "")]),
        binary_data: [("bin".to_owned(), vec![0u8, 1, 2])].into(),
        immutable: None,
    };
    let got = decode_k8s_protobuf(&envelope("v1", "ConfigMap", &cm)).unwrap();
    assert_eq!(
        got,
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "x", "generation": 0, "creationTimestamp": null},
            "data": {"a": "b", "empty": ""},
            "binaryData": {"bin": "AAEC"},
        })
    );
}

#[test]
fn secret_bytes_are_base64() {
    let secret = Secret {
        metadata: Some(ObjectMeta {
            name: s("s"),
            ..Default::default()
        }),
        data: [("k".to_owned(), b"v".to_vec())].into(),
        r#type: s("Opaque"),
        ..Default::default()
    };
    let got = decode_k8s_protobuf(&envelope("v1", "Secret", &secret)).unwrap();
    assert_eq!(
        got,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "dg=="}, "type": "Opaque"})
    );
}

#[test]
fn deployment_with_containers_ports_and_quantities() {
    let container = Container {
        name: s("nginx"),
        image: s("nginx"),
        args: vec!["-g".into(), "daemon off;".into()],
        ports: vec![ContainerPort {
            container_port: Some(80),
            protocol: s("TCP"),
            host_port: Some(0),
            ..Default::default()
        }],
        resources: Some(ResourceRequirements {
            limits: [("cpu".to_owned(), Quantity { string: s("500m") })].into(),
            requests: [("memory".to_owned(), Quantity { string: s("64Mi") })].into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let d = Deployment {
        metadata: Some(ObjectMeta {
            name: s("web"),
            labels: labels(&[("app", "web")]),
            ..Default::default()
        }),
        spec: Some(DeploymentSpec {
            replicas: Some(0),
            selector: Some(LabelSelector {
                match_labels: labels(&[("app", "web")]),
                ..Default::default()
            }),
            template: Some(PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: labels(&[("app", "web")]),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    host_ipc: Some(true),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }),
        status: None,
    };
    let got = decode_k8s_protobuf(&envelope("apps/v1", "Deployment", &d)).unwrap();
    assert_eq!(
        got,
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "hostIPC": true,
                        "containers": [{
                            "name": "nginx", "image": "nginx", "args": ["-g", "daemon off;"],
                            "ports": [{"containerPort": 80, "protocol": "TCP", "hostPort": 0}],
                            "resources": {"limits": {"cpu": "500m"}, "requests": {"memory": "64Mi"}},
                        }],
                    },
                },
            },
        })
    );
}

#[test]
fn service_int_or_string() {
    let port = |name: &str, target: IntOrString| ServicePort {
        name: s(name),
        port: Some(80),
        target_port: Some(target),
        protocol: s("TCP"),
        ..Default::default()
    };
    let svc = Service {
        metadata: Some(ObjectMeta {
            name: s("web"),
            ..Default::default()
        }),
        spec: Some(ServiceSpec {
            ports: vec![
                port(
                    "a",
                    IntOrString {
                        r#type: Some(0),
                        int_val: Some(8080),
                        str_val: s(""),
                    },
                ),
                port(
                    "b",
                    IntOrString {
                        r#type: Some(1),
                        int_val: Some(0),
                        str_val: s("http"),
                    },
                ),
            ],
            selector: labels(&[("app", "web")]),
            cluster_ip: s("10.0.0.1"),
            ..Default::default()
        }),
        status: None,
    };
    let got = decode_k8s_protobuf(&envelope("v1", "Service", &svc)).unwrap();
    assert_eq!(
        got["spec"],
        json!({
            "ports": [
                {"name": "a", "port": 80, "targetPort": 8080, "protocol": "TCP"},
                {"name": "b", "port": 80, "targetPort": "http", "protocol": "TCP"},
            ],
            "selector": {"app": "web"},
            "clusterIP": "10.0.0.1",
        })
    );
}

#[test]
fn times_durations_and_raw_extensions() {
    use k8s_pb::api::apps::v1::ControllerRevision;
    use k8s_pb::apimachinery::pkg::runtime::RawExtension;
    let rev = ControllerRevision {
        metadata: Some(ObjectMeta {
            name: s("r"),
            creation_timestamp: Some(Time {
                seconds: Some(1_795_428_000),
                nanos: Some(0),
            }),
            ..Default::default()
        }),
        data: Some(RawExtension {
            raw: Some(br#"{"spec":{"x":1}}"#.to_vec()),
        }),
        revision: Some(3),
    };
    let got = decode_k8s_protobuf(&envelope("apps/v1", "ControllerRevision", &rev)).unwrap();
    assert_eq!(
        got,
        json!({
            "apiVersion": "apps/v1", "kind": "ControllerRevision",
            "metadata": {"name": "r", "creationTimestamp": "2026-11-23T10:00:00Z"},
            "data": {"spec": {"x": 1}},
            "revision": 3,
        })
    );
}

#[test]
fn token_request_is_found_without_a_resource_impl() {
    use k8s_pb::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    let tr = TokenRequest {
        metadata: None,
        spec: Some(TokenRequestSpec {
            audiences: vec!["api".into()],
            expiration_seconds: Some(3600),
            ..Default::default()
        }),
        status: None,
    };
    let got =
        decode_k8s_protobuf(&envelope("authentication.k8s.io/v1", "TokenRequest", &tr)).unwrap();
    assert_eq!(
        got,
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"audiences": ["api"], "expirationSeconds": 3600}})
    );
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    assert!(matches!(
        decode_k8s_protobuf(b"{}"),
        Err(ProtoError::NoMagic)
    ));
    assert!(decode_k8s_protobuf(b"k8s\0\x0a\xff").is_err());
    let unknown_kind = envelope("example.com/v1", "Widget", &ConfigMap::default());
    let err = decode_k8s_protobuf(&unknown_kind).unwrap_err();
    assert!(err.to_string().contains("Widget"), "{err}");
    // A ConfigMap whose `data` entry is truncated.
    let mut bad = b"k8s\0".to_vec();
    let raw = vec![0x12u8, 0x05, 0x0a, 0x09, b'a'];
    bad.extend(
        Unknown {
            type_meta: Some(TypeMeta {
                api_version: s("v1"),
                kind: s("ConfigMap"),
            }),
            raw: Some(raw),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    let err = decode_k8s_protobuf(&bad).unwrap_err();
    assert!(
        err.to_string()
            .contains("k8s.io.api.core.v1.ConfigMap.data"),
        "{err}"
    );
}

#[test]
fn deep_nesting_is_refused_not_a_stack_overflow() {
    use k8s_pb::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
        CustomResourceDefinition, CustomResourceDefinitionSpec, CustomResourceDefinitionVersion,
        CustomResourceValidation, JsonSchemaProps,
    };
    let crd = |depth: usize| {
        let mut props = JsonSchemaProps {
            r#type: s("object"),
            ..Default::default()
        };
        for _ in 0..depth {
            props = JsonSchemaProps {
                not: Some(Box::new(props)),
                ..Default::default()
            };
        }
        CustomResourceDefinition {
            spec: Some(CustomResourceDefinitionSpec {
                versions: vec![CustomResourceDefinitionVersion {
                    name: s("v1"),
                    schema: Some(CustomResourceValidation {
                        open_apiv3_schema: Some(props),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
    };
    let ok = decode_k8s_protobuf(&envelope(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        &crd(3),
    ))
    .unwrap();
    assert_eq!(
        ok["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["not"]["not"]["not"]["type"],
        "object"
    );
    let err = decode_k8s_protobuf(&envelope(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        &crd(200),
    ))
    .unwrap_err();
    assert!(matches!(err, ProtoError::TooDeep(_)), "{err}");
}

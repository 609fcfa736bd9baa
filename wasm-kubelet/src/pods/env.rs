//! A container's environment and argv, resolved as Kubernetes' kubelet resolves them.
//!
//! Order and precedence follow the kubelet: `envFrom` sources first (in order, later ones
//! overriding earlier ones), then `env` entries, each overriding anything before it. A literal
//! `value` may refer to variables defined before it with `$(VAR)`; `$$` is an escaped `$`, and
//! references to undefined variables stay as written. Values from `valueFrom` are taken as
//! they are, never expanded. Service link variables (`KUBERNETES_SERVICE_HOST`, …) are not
//! injected: wasm containers reach services through the host, not through cluster DNS.
//!
//! [`resolve`] fetches the ConfigMaps and Secrets the container refers to (once each), then
//! hands them to [`resolve_from`], the pure core, which tests drive without an API server.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, ResourceFieldSelector, Secret};
use sextant_api::quantity::Milli;

/// Why a container's environment could not be built. Kubernetes reports these as the
/// container's `CreateContainerConfigError` waiting reason; the messages say what to fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "configmap \"{name}\" not found in namespace {namespace}: create it, or mark the reference `optional: true`"
    )]
    ConfigMapNotFound { namespace: String, name: String },
    #[error(
        "secret \"{name}\" not found in namespace {namespace}: create it, or mark the reference `optional: true`"
    )]
    SecretNotFound { namespace: String, name: String },
    #[error(
        "couldn't find key {key} in ConfigMap {namespace}/{name}: add the key, or mark the reference `optional: true`"
    )]
    ConfigMapKeyNotFound {
        namespace: String,
        name: String,
        key: String,
    },
    #[error(
        "couldn't find key {key} in Secret {namespace}/{name}: add the key, or mark the reference `optional: true`"
    )]
    SecretKeyNotFound {
        namespace: String,
        name: String,
        key: String,
    },
    #[error(
        "fieldRef {path:?} is not supported; use metadata.name, metadata.namespace, metadata.uid, \
         metadata.labels['KEY'], metadata.annotations['KEY'], spec.nodeName, \
         spec.serviceAccountName, status.podIP, status.podIPs or status.hostIP"
    )]
    UnsupportedField { path: String },
    #[error(
        "resourceFieldRef {resource:?} is not supported; use limits.cpu, limits.memory, \
         limits.ephemeral-storage, requests.cpu, requests.memory or requests.ephemeral-storage"
    )]
    UnsupportedResource { resource: String },
    #[error("resourceFieldRef names container {0:?}, which is not in this pod")]
    UnknownContainer(String),
    #[error("invalid quantity {value:?} in {what}: fix the pod spec")]
    Quantity { what: String, value: String },
    #[error("env var {0:?} has neither a value nor a supported valueFrom source")]
    EmptySource(String),
    #[error(transparent)]
    Api(#[from] super::sources::FetchError),
}

/// ConfigMaps and Secrets already fetched, by name; a name that is absent does not exist.
/// Secret values are decoded to UTF-8 (lossily), as they end up in a process's environment.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub config_maps: BTreeMap<String, BTreeMap<String, String>>,
    pub secrets: BTreeMap<String, BTreeMap<String, String>>,
}

impl Sources {
    /// Records a ConfigMap's `data` (the kubelet ignores `binaryData` for env).
    pub fn add_config_map(&mut self, cm: &ConfigMap) {
        let name = cm.metadata.name.clone().unwrap_or_default();
        self.config_maps
            .insert(name, cm.data.clone().unwrap_or_default());
    }

    /// Records a Secret's `data`, plus `stringData` in case the API server kept it unmerged.
    pub fn add_secret(&mut self, secret: &Secret) {
        let name = secret.metadata.name.clone().unwrap_or_default();
        let mut map: BTreeMap<String, String> = secret
            .data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned()))
            .collect();
        for (k, v) in secret.string_data.iter().flatten() {
            map.insert(k.clone(), v.clone());
        }
        self.secrets.insert(name, map);
    }
}

/// The environment of `container` in `pod`, in definition order, each name once.
///
/// Fetches the ConfigMaps and Secrets it names from the pod's namespace through `client`.
pub async fn resolve(
    client: &kube::Client,
    pod: &Pod,
    container: &Container,
    pod_ip: &str,
    node_name: &str,
) -> Result<Vec<(String, String)>, Error> {
    let namespace = namespace_of(pod);
    let (cm_names, secret_names) = referenced_sources(container);
    let (cms, secrets) = super::sources::fetch(client, &namespace, cm_names, secret_names).await?;
    let mut sources = Sources::default();
    cms.iter().for_each(|cm| sources.add_config_map(cm));
    secrets.iter().for_each(|s| sources.add_secret(s));
    resolve_from(pod, container, pod_ip, node_name, &sources)
}

/// The names of the ConfigMaps and Secrets `container`'s env refers to.
pub fn referenced_sources(container: &Container) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut cms = BTreeSet::new();
    let mut secrets = BTreeSet::new();
    for from in container.env_from.iter().flatten() {
        if let Some(r) = &from.config_map_ref {
            cms.insert(r.name.clone());
        }
        if let Some(r) = &from.secret_ref {
            secrets.insert(r.name.clone());
        }
    }
    for var in container.env.iter().flatten() {
        let Some(source) = &var.value_from else {
            continue;
        };
        if let Some(r) = &source.config_map_key_ref {
            cms.insert(r.name.clone());
        }
        if let Some(r) = &source.secret_key_ref {
            secrets.insert(r.name.clone());
        }
    }
    (cms, secrets)
}

/// The pure core of [`resolve`]: the environment from already-fetched `sources`.
pub fn resolve_from(
    pod: &Pod,
    container: &Container,
    pod_ip: &str,
    node_name: &str,
    sources: &Sources,
) -> Result<Vec<(String, String)>, Error> {
    let namespace = namespace_of(pod);
    let mut env = Env::default();

    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.as_deref().unwrap_or("");
        let (kind, name, optional, data) = if let Some(r) = &from.config_map_ref {
            let data = sources.config_maps.get(&r.name);
            ("ConfigMap", &r.name, r.optional.unwrap_or(false), data)
        } else if let Some(r) = &from.secret_ref {
            let data = sources.secrets.get(&r.name);
            ("Secret", &r.name, r.optional.unwrap_or(false), data)
        } else {
            continue;
        };
        let Some(data) = data else {
            if optional {
                continue;
            }
            return Err(not_found(kind, &namespace, name));
        };
        let mut skipped = Vec::new();
        for (key, value) in data {
            let var = format!("{prefix}{key}");
            if is_env_var_name(&var) {
                env.set(var, value.clone());
            } else {
                skipped.push(var);
            }
        }
        if !skipped.is_empty() {
            tracing::warn!(
                pod = %pod.metadata.name.as_deref().unwrap_or(""),
                container = %container.name,
                "keys {skipped:?} from the envFrom {kind} {namespace}/{name} were skipped since \
                 they are not valid environment variable names"
            );
        }
    }

    for var in container.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (_, Some(source)) => {
                if let Some(r) = &source.config_map_key_ref {
                    let optional = r.optional.unwrap_or(false);
                    match sources.config_maps.get(&r.name) {
                        None if optional => continue,
                        None => return Err(not_found("ConfigMap", &namespace, &r.name)),
                        Some(data) => match data.get(&r.key) {
                            Some(v) => v.clone(),
                            None if optional => continue,
                            None => {
                                return Err(Error::ConfigMapKeyNotFound {
                                    namespace,
                                    name: r.name.clone(),
                                    key: r.key.clone(),
                                });
                            }
                        },
                    }
                } else if let Some(r) = &source.secret_key_ref {
                    let optional = r.optional.unwrap_or(false);
                    match sources.secrets.get(&r.name) {
                        None if optional => continue,
                        None => return Err(not_found("Secret", &namespace, &r.name)),
                        Some(data) => match data.get(&r.key) {
                            Some(v) => v.clone(),
                            None if optional => continue,
                            None => {
                                return Err(Error::SecretKeyNotFound {
                                    namespace,
                                    name: r.name.clone(),
                                    key: r.key.clone(),
                                });
                            }
                        },
                    }
                } else if let Some(f) = &source.field_ref {
                    field_value(pod, &f.field_path, pod_ip, node_name)?
                } else if let Some(r) = &source.resource_field_ref {
                    resource_value(pod, Some(&container.name), r)?
                } else {
                    return Err(Error::EmptySource(var.name.clone()));
                }
            }
            (Some(value), None) => expand(value, &env.vars),
            (None, None) => String::new(),
        };
        env.set(var.name.clone(), value);
    }
    Ok(env.vars)
}

/// Expands `$(VAR)` references in `s` from `env` (the last definition of a name wins), as
/// Kubernetes expands `command`, `args` and env values: `$$` is a literal `$`, a reference
/// to an undefined variable or an unclosed `$(` stays as written.
pub fn expand(s: &str, env: &[(String, String)]) -> String {
    let lookup = |name: &str| {
        env.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(close) => {
                    let name = &inner[..close];
                    match lookup(name) {
                        Some(v) => out.push_str(v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &inner[close + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = inner;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The module's argv, with `$(VAR)` references expanded from the container's `env`.
///
/// A wasm module is its own program, so `command` is read the way a container runtime reads
/// it, as the process's full argv: `command[0]` becomes argv[0] (what the program sees as
/// its name) and the rest of `command`, then `args`, follow. Without `command` the module has
/// no name of its own, so argv[0] is the container's name and `args` follow. This keeps
/// manifests written for OCI containers (`command: [app, --flag]`) meaning the same thing.
pub fn argv(container: &Container, env: &[(String, String)]) -> Vec<String> {
    let command = container.command.as_deref().unwrap_or_default();
    let args = container.args.as_deref().unwrap_or_default();
    let mut argv = Vec::with_capacity(1 + command.len() + args.len());
    if command.is_empty() {
        argv.push(container.name.clone());
    }
    argv.extend(command.iter().chain(args).map(|a| expand(a, env)));
    argv
}

/// The value of a downward-API `fieldPath` usable in env.
pub fn field_value(pod: &Pod, path: &str, pod_ip: &str, node_name: &str) -> Result<String, Error> {
    let meta = &pod.metadata;
    let status = pod.status.as_ref();
    let spec = pod.spec.as_ref();
    if let Some(key) = subscript(path, "metadata.labels") {
        return Ok(meta
            .labels
            .as_ref()
            .and_then(|m| m.get(key))
            .cloned()
            .unwrap_or_default());
    }
    if let Some(key) = subscript(path, "metadata.annotations") {
        return Ok(meta
            .annotations
            .as_ref()
            .and_then(|m| m.get(key))
            .cloned()
            .unwrap_or_default());
    }
    let value = match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => namespace_of(pod),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.nodeName" => {
            let assigned = spec.and_then(|s| s.node_name.clone()).unwrap_or_default();
            if assigned.is_empty() {
                node_name.to_owned()
            } else {
                assigned
            }
        }
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.podIP" => pod_ip.to_owned(),
        // One IP per pod on wasm nodes: the list is that IP, comma separated as Kubernetes does.
        "status.podIPs" => pod_ip.to_owned(),
        "status.hostIP" => status.and_then(|s| s.host_ip.clone()).unwrap_or_default(),
        "status.hostIPs" => status
            .and_then(|s| s.host_ips.as_ref())
            .map(|ips| {
                ips.iter()
                    .map(|ip| ip.ip.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default(),
        _ => {
            return Err(Error::UnsupportedField {
                path: path.to_owned(),
            });
        }
    };
    Ok(value)
}

/// `metadata.labels['key']` → `key` (for `prefix` = `metadata.labels`).
pub(crate) fn subscript<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    let inner = path.strip_prefix(prefix)?.strip_prefix("['")?;
    inner.strip_suffix("']")
}

/// The value of a `resourceFieldRef`, divided by its divisor and rounded up as the kubelet
/// does. An unset limit stands for the node's capacity (this machine's cores and memory); an
/// unset request falls back to the limit as the API server's defaulting would, else 0.
/// `default_container` is the container the reference belongs to (env) when it names none.
pub fn resource_value(
    pod: &Pod,
    default_container: Option<&str>,
    selector: &ResourceFieldSelector,
) -> Result<String, Error> {
    let container_name = selector
        .container_name
        .as_deref()
        .filter(|n| !n.is_empty())
        .or(default_container)
        .unwrap_or_default();
    let spec = pod.spec.as_ref();
    let container = spec
        .into_iter()
        .flat_map(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
        })
        .find(|c| c.name == container_name)
        .ok_or_else(|| Error::UnknownContainer(container_name.to_owned()))?;
    let (section, resource) =
        selector
            .resource
            .split_once('.')
            .ok_or_else(|| Error::UnsupportedResource {
                resource: selector.resource.clone(),
            })?;
    if !matches!(resource, "cpu" | "memory" | "ephemeral-storage")
        || !matches!(section, "limits" | "requests")
    {
        return Err(Error::UnsupportedResource {
            resource: selector.resource.clone(),
        });
    }
    let resources = container.resources.as_ref();
    let get = |section: &str| {
        resources
            .and_then(|r| match section {
                "limits" => r.limits.as_ref(),
                _ => r.requests.as_ref(),
            })
            .and_then(|m| m.get(resource))
            .map(|q| parse_quantity(&q.0, &selector.resource))
    };
    let value = match section {
        "limits" => get("limits").unwrap_or_else(|| Ok(node_capacity(resource)))?,
        _ => get("requests")
            .or_else(|| get("limits"))
            .unwrap_or(Ok(Milli(0)))?,
    };
    let divisor = match &selector.divisor {
        Some(q) => parse_quantity(&q.0, "divisor")?,
        None => Milli(1000),
    };
    if divisor.0 <= 0 {
        return Err(Error::Quantity {
            what: "divisor".to_owned(),
            value: selector
                .divisor
                .as_ref()
                .map(|q| q.0.clone())
                .unwrap_or_default(),
        });
    }
    // CPU is compared in millicores, bytes in whole bytes (both rounded up), as the kubelet's
    // MilliValue()/Value() do.
    let (value, divisor) = if resource == "cpu" {
        (value.0, divisor.0)
    } else {
        (ceil_div(value.0, 1000), ceil_div(divisor.0, 1000))
    };
    Ok(ceil_div(value, divisor.max(1)).to_string())
}

fn parse_quantity(text: &str, what: &str) -> Result<Milli, Error> {
    Milli::parse(text).map_err(|_| Error::Quantity {
        what: what.to_owned(),
        value: text.to_owned(),
    })
}

fn ceil_div(a: i128, b: i128) -> i128 {
    let q = a / b;
    if a % b != 0 && (a > 0) == (b > 0) {
        q + 1
    } else {
        q
    }
}

/// This machine's capacity for `resource`, in thousandths, standing in for node allocatable.
fn node_capacity(resource: &str) -> Milli {
    match resource {
        "cpu" => {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            Milli(cores as i128 * 1000)
        }
        "memory" => {
            let bytes = std::fs::read_to_string("/proc/meminfo")
                .ok()
                .and_then(|text| {
                    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
                    let kib: i128 = line.split_whitespace().nth(1)?.parse().ok()?;
                    Some(kib * 1024)
                })
                .unwrap_or(0);
            Milli(bytes * 1000)
        }
        _ => Milli(0),
    }
}

fn not_found(kind: &str, namespace: &str, name: &str) -> Error {
    let (namespace, name) = (namespace.to_owned(), name.to_owned());
    if kind == "Secret" {
        Error::SecretNotFound { namespace, name }
    } else {
        Error::ConfigMapNotFound { namespace, name }
    }
}

pub(crate) fn namespace_of(pod: &Pod) -> String {
    pod.metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_owned())
}

/// Kubernetes' rule for env var names (v1.33): letters, digits, `_`, `-`, `.`, not starting
/// with a digit.
pub fn is_env_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    match chars.next() {
        Some(first) if ok(first) && !first.is_ascii_digit() => chars.all(ok),
        _ => false,
    }
}

/// Variables in definition order; setting a name again replaces its value in place.
#[derive(Default)]
struct Env {
    vars: Vec<(String, String)>,
}

impl Env {
    fn set(&mut self, name: String, value: String) {
        match self.vars.iter_mut().find(|(k, _)| *k == name) {
            Some(slot) => slot.1 = value,
            None => self.vars.push((name, value)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ConfigMapEnvSource, ConfigMapKeySelector, EnvFromSource, EnvVar, EnvVarSource,
        ObjectFieldSelector, PodSpec, ResourceRequirements, SecretEnvSource, SecretKeySelector,
    };
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod(container: Container) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("shop".into()),
                uid: Some("u-1".into()),
                labels: Some([("app".to_owned(), "web".to_owned())].into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![container],
                node_name: Some("edge-1".into()),
                service_account_name: Some("sa".into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn value(name: &str, v: &str) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: Some(v.into()),
            value_from: None,
        }
    }

    fn from(name: &str, source: EnvVarSource) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: None,
            value_from: Some(source),
        }
    }

    fn sources() -> Sources {
        let mut s = Sources::default();
        s.config_maps.insert(
            "cfg".into(),
            [
                ("MODE".to_owned(), "fast".to_owned()),
                ("bad key".to_owned(), "x".to_owned()),
                ("LEVEL".to_owned(), "3".to_owned()),
            ]
            .into(),
        );
        s.secrets.insert(
            "creds".into(),
            [("TOKEN".to_owned(), "s3cret".to_owned())].into(),
        );
        s
    }

    fn run(c: Container) -> Result<Vec<(String, String)>, Error> {
        resolve_from(&pod(c.clone()), &c, "127.1.0.5", "edge-1", &sources())
    }

    fn get<'a>(env: &'a [(String, String)], k: &str) -> Option<&'a str> {
        env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }

    #[test]
    fn expansion_follows_kubernetes_rules() {
        let env = vec![
            ("A".to_owned(), "1".to_owned()),
            ("B".to_owned(), "two".to_owned()),
        ];
        assert_eq!(expand("$(A)-$(B)", &env), "1-two");
        assert_eq!(expand("$$(A)", &env), "$(A)");
        assert_eq!(expand("$(MISSING)", &env), "$(MISSING)");
        assert_eq!(expand("$(A", &env), "$(A");
        assert_eq!(expand("cost $5 $", &env), "cost $5 $");
        assert_eq!(expand("é$(A)é", &env), "é1é");
        assert_eq!(expand("$$$(A)", &env), "$1");
    }

    #[test]
    fn env_from_then_env_with_expansion_and_precedence() {
        let c = Container {
            name: "app".into(),
            env_from: Some(vec![
                EnvFromSource {
                    config_map_ref: Some(ConfigMapEnvSource {
                        name: "cfg".into(),
                        optional: None,
                    }),
                    prefix: Some("CFG_".into()),
                    secret_ref: None,
                },
                EnvFromSource {
                    config_map_ref: None,
                    prefix: None,
                    secret_ref: Some(SecretEnvSource {
                        name: "creds".into(),
                        optional: None,
                    }),
                },
            ]),
            env: Some(vec![
                value("CFG_MODE", "slow"),
                value("URL", "http://$(POD_IP):80/$(TOKEN)/$(LATER)"),
                from(
                    "POD_IP",
                    EnvVarSource {
                        field_ref: Some(ObjectFieldSelector {
                            api_version: None,
                            field_path: "status.podIP".into(),
                        }),
                        ..Default::default()
                    },
                ),
                value("URL2", "$(POD_IP)"),
                value("LATER", "x"),
            ]),
            ..Default::default()
        };
        let env = run(c).unwrap();
        assert_eq!(get(&env, "CFG_MODE"), Some("slow"), "env overrides envFrom");
        assert_eq!(get(&env, "CFG_LEVEL"), Some("3"));
        assert_eq!(get(&env, "CFG_bad key"), None, "invalid names skipped");
        assert_eq!(get(&env, "TOKEN"), Some("s3cret"));
        assert_eq!(
            get(&env, "URL"),
            Some("http://$(POD_IP):80/s3cret/$(LATER)")
        );
        assert_eq!(get(&env, "URL2"), Some("127.1.0.5"));
    }

    #[test]
    fn key_refs_missing_and_optional() {
        let key = |name: &str, key: &str, optional| EnvVarSource {
            config_map_key_ref: Some(ConfigMapKeySelector {
                key: key.into(),
                name: name.into(),
                optional,
            }),
            ..Default::default()
        };
        let c = |src| Container {
            name: "app".into(),
            env: Some(vec![from("V", src)]),
            ..Default::default()
        };
        let env = run(c(key("cfg", "MODE", None))).unwrap();
        assert_eq!(get(&env, "V"), Some("fast"));
        assert!(run(c(key("cfg", "NOPE", Some(true)))).unwrap().is_empty());
        assert!(run(c(key("gone", "NOPE", Some(true)))).unwrap().is_empty());
        let err = run(c(key("cfg", "NOPE", None))).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("couldn't find key NOPE in ConfigMap shop/cfg"),
            "{err}"
        );
        let err = run(c(key("gone", "K", None))).unwrap_err();
        assert!(matches!(err, Error::ConfigMapNotFound { .. }), "{err}");

        let secret = EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                key: "MISSING".into(),
                name: "creds".into(),
                optional: Some(false),
            }),
            ..Default::default()
        };
        let err = run(c(secret)).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("couldn't find key MISSING in Secret shop/creds"),
            "{err}"
        );
    }

    #[test]
    fn field_refs() {
        let field = |path: &str| EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                api_version: None,
                field_path: path.into(),
            }),
            ..Default::default()
        };
        let c = Container {
            name: "app".into(),
            env: Some(vec![
                from("N", field("metadata.name")),
                from("NS", field("metadata.namespace")),
                from("UID", field("metadata.uid")),
                from("APP", field("metadata.labels['app']")),
                from("NODE", field("spec.nodeName")),
                from("SA", field("spec.serviceAccountName")),
                from("IPS", field("status.podIPs")),
            ]),
            ..Default::default()
        };
        let env = run(c).unwrap();
        let got: Vec<&str> = env.iter().map(|(_, v)| v.as_str()).collect();
        assert_eq!(
            got,
            ["web", "shop", "u-1", "web", "edge-1", "sa", "127.1.0.5"]
        );
        let bad = Container {
            name: "app".into(),
            env: Some(vec![from("X", field("spec.hostname"))]),
            ..Default::default()
        };
        assert!(matches!(run(bad), Err(Error::UnsupportedField { .. })));
    }

    #[test]
    fn resource_refs_with_divisors() {
        let res = |resource: &str, divisor: Option<&str>| EnvVarSource {
            resource_field_ref: Some(ResourceFieldSelector {
                container_name: None,
                divisor: divisor.map(|d| Quantity(d.into())),
                resource: resource.into(),
            }),
            ..Default::default()
        };
        let c = Container {
            name: "app".into(),
            resources: Some(ResourceRequirements {
                limits: Some(
                    [
                        ("cpu".to_owned(), Quantity("250m".into())),
                        ("memory".to_owned(), Quantity("64Mi".into())),
                    ]
                    .into(),
                ),
                ..Default::default()
            }),
            env: Some(vec![
                from("CPU", res("limits.cpu", None)),
                from("CPU_M", res("limits.cpu", Some("1m"))),
                from("MEM", res("limits.memory", None)),
                from("MEM_MI", res("limits.memory", Some("1Mi"))),
                from("REQ_MEM_MI", res("requests.memory", Some("1Mi"))),
            ]),
            ..Default::default()
        };
        let env = run(c).unwrap();
        assert_eq!(get(&env, "CPU"), Some("1"), "rounded up");
        assert_eq!(get(&env, "CPU_M"), Some("250"));
        assert_eq!(get(&env, "MEM"), Some("67108864"));
        assert_eq!(get(&env, "MEM_MI"), Some("64"));
        assert_eq!(
            get(&env, "REQ_MEM_MI"),
            Some("64"),
            "request defaults to limit"
        );
    }

    #[test]
    fn argv_from_command_and_args() {
        let env = vec![("WHO".to_owned(), "world".to_owned())];
        let mut c = Container {
            name: "hello".into(),
            args: Some(vec!["--greet".into(), "$(WHO)".into()]),
            ..Default::default()
        };
        assert_eq!(argv(&c, &env), ["hello", "--greet", "world"]);
        c.command = Some(vec!["app".into(), "-v".into()]);
        assert_eq!(argv(&c, &env), ["app", "-v", "--greet", "world"]);
        c.args = None;
        c.command = None;
        assert_eq!(argv(&c, &env), ["hello"]);
    }

    #[test]
    fn env_var_names() {
        assert!(is_env_var_name("A_b.c-1"));
        assert!(is_env_var_name("_x"));
        assert!(!is_env_var_name("1A"));
        assert!(!is_env_var_name("a b"));
        assert!(!is_env_var_name(""));
    }
}

//! A pod's volumes, materialised as host directories that containers get as preopens.
//!
//! Layout: `POD_DIR/volumes/<kind>/<volume-name>/` with kind `empty-dir`, `configmap`,
//! `secret`, `downward-api` or `projected`; a `hostPath` volume is the host directory itself
//! and nothing of it lives under the pod's directory, so [`remove`] can never reach it.
//!
//! What differs from Kubernetes, and why:
//! - a wasm module can only be given directories, so a `hostPath` (or a `subPath`) that is a
//!   file is refused with an error rather than mounted;
//! - `emptyDir.medium: Memory` is an ordinary directory and `sizeLimit` is not enforced: the
//!   node has no tmpfs or quota of its own to give a wasm module;
//! - `defaultMode` and items' `mode` are ignored: WASI has no file modes, the guest sees
//!   every projected file read-only;
//! - persistent and network volumes (PVC, NFS, CSI, …) are refused with an error that says so.
//!
//! ConfigMap, Secret, downward API and projected contents are written the way the kubelet's
//! atomic writer does, so a reader never sees a half-written update: the files go into a
//! fresh `..<timestamp>` directory, the `..data` symlink is swapped to it with one rename,
//! and each top-level name is a symlink through `..data`. Because the preopen is the volume
//! directory itself, a running container sees [`refresh`]ed contents (except through a
//! `subPath`, which pins one snapshot, as in Kubernetes).

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::{
    ConfigMap, Container, DownwardAPIVolumeFile, KeyToPath, Pod, Secret, Volume,
};

use super::env;
use crate::wasm::Mount;

/// Why a pod's volumes could not be prepared or mounted; shown in `FailedMount` events and
/// `CreateContainerConfigError` messages.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "volume {volume:?}: volume type {kind} is not supported on wasm nodes; use emptyDir, hostPath, configMap, secret, downwardAPI or projected"
    )]
    Unsupported { volume: String, kind: String },
    #[error(
        "hostPath volume {volume:?}: {path} is a file; wasm containers can mount directories only"
    )]
    HostPathFile { volume: String, path: PathBuf },
    #[error(
        "hostPath volume {volume:?}: type {kind} is a file type; wasm containers can mount directories only"
    )]
    HostPathFileType { volume: String, kind: String },
    #[error(
        "hostPath volume {volume:?}: {path} does not exist; create it, or set `type: DirectoryOrCreate`"
    )]
    HostPathMissing { volume: String, path: PathBuf },
    #[error("hostPath volume {volume:?}: unknown type {kind:?}")]
    HostPathType { volume: String, kind: String },
    #[error(
        "configmap \"{name}\" not found in namespace {namespace}: create it, or mark the volume `optional: true`"
    )]
    ConfigMapNotFound { namespace: String, name: String },
    #[error(
        "secret \"{name}\" not found in namespace {namespace}: create it, or mark the volume `optional: true`"
    )]
    SecretNotFound { namespace: String, name: String },
    #[error(
        "volume {volume:?}: {kind} {namespace}/{name} has no key {key:?}; add it, or mark the volume `optional: true`"
    )]
    KeyNotFound {
        volume: String,
        kind: &'static str,
        namespace: String,
        name: String,
        key: String,
    },
    #[error("volume {volume:?}: secret volume without secretName")]
    NoSecretName { volume: String },
    #[error(
        "volume {volume:?}: item path {path:?} must be relative, without `..` elements, and not start with `..`"
    )]
    BadItemPath { volume: String, path: String },
    #[error("volume {volume:?}: {source}")]
    Field {
        volume: String,
        #[source]
        source: env::Error,
    },
    #[error(
        "container {container:?} mounts volume {volume:?}, which the pod does not define; add it to spec.volumes"
    )]
    UnknownVolume { container: String, volume: String },
    #[error(
        "container {container:?}: subPath {sub_path:?} of volume {volume:?} must be a relative path that stays inside the volume"
    )]
    BadSubPath {
        container: String,
        volume: String,
        sub_path: String,
    },
    #[error(
        "container {container:?}: subPath {sub_path:?} of volume {volume:?} is a file; wasm containers can mount directories only"
    )]
    SubPathFile {
        container: String,
        volume: String,
        sub_path: String,
    },
    #[error(transparent)]
    Api(#[from] super::sources::FetchError),
    #[error("volume {volume:?}: {path}: {source}")]
    Io {
        volume: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The contents of ConfigMaps and Secrets already fetched, by name, as bytes; an absent name
/// does not exist.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub config_maps: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    pub secrets: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
}

impl Sources {
    /// Records a ConfigMap's `data` and `binaryData`.
    pub fn add_config_map(&mut self, cm: &ConfigMap) {
        let mut map: BTreeMap<String, Vec<u8>> = cm
            .data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
            .collect();
        for (k, v) in cm.binary_data.iter().flatten() {
            map.insert(k.clone(), v.0.clone());
        }
        self.config_maps
            .insert(cm.metadata.name.clone().unwrap_or_default(), map);
    }

    /// Records a Secret's `data`, plus `stringData` in case the API server kept it unmerged.
    pub fn add_secret(&mut self, secret: &Secret) {
        let mut map: BTreeMap<String, Vec<u8>> = secret
            .data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect();
        for (k, v) in secret.string_data.iter().flatten() {
            map.insert(k.clone(), v.clone().into_bytes());
        }
        self.secrets
            .insert(secret.metadata.name.clone().unwrap_or_default(), map);
    }
}

/// What kind of volume a name stands for; decides the default read-only-ness of its mounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    EmptyDir,
    HostPath,
    ConfigMap,
    Secret,
    DownwardApi,
    Projected,
}

impl Kind {
    /// The directory name under `POD_DIR/volumes/`.
    fn dir_name(self) -> &'static str {
        match self {
            Kind::EmptyDir => "empty-dir",
            Kind::HostPath => "host-path",
            Kind::ConfigMap => "configmap",
            Kind::Secret => "secret",
            Kind::DownwardApi => "downward-api",
            Kind::Projected => "projected",
        }
    }

    /// Kubernetes mounts these read-only whatever the volumeMount says.
    fn always_read_only(self) -> bool {
        !matches!(self, Kind::EmptyDir | Kind::HostPath)
    }
}

/// A pod's prepared volumes, by name.
#[derive(Debug, Clone, Default)]
pub struct Volumes {
    volumes: BTreeMap<String, (Kind, PathBuf)>,
}

impl Volumes {
    /// The host directory and kind of volume `name`.
    pub fn get(&self, name: &str) -> Option<(Kind, &Path)> {
        self.volumes.get(name).map(|(k, p)| (*k, p.as_path()))
    }

    /// The preopens for `c`'s `volumeMounts`. A mount with `subPathExpr` needs the
    /// container's env: use [`Volumes::mounts_for_env`] for those.
    pub fn mounts_for(&self, c: &Container) -> Result<Vec<Mount>, Error> {
        self.mounts_for_env(c, &[])
    }

    /// The preopens for `c`'s `volumeMounts`, expanding `subPathExpr` from `env`.
    ///
    /// A `subPath` is created when missing (as the kubelet does), and must resolve, after
    /// following symlinks, inside its volume: a container could otherwise plant a symlink in
    /// an emptyDir that points the next container's preopen anywhere on the host.
    pub fn mounts_for_env(
        &self,
        c: &Container,
        env: &[(String, String)],
    ) -> Result<Vec<Mount>, Error> {
        let mut mounts = Vec::new();
        for m in c.volume_mounts.iter().flatten() {
            let Some((kind, dir)) = self.volumes.get(&m.name) else {
                return Err(Error::UnknownVolume {
                    container: c.name.clone(),
                    volume: m.name.clone(),
                });
            };
            let sub_path = match (&m.sub_path, &m.sub_path_expr) {
                (Some(p), _) if !p.is_empty() => p.clone(),
                (_, Some(expr)) if !expr.is_empty() => env::expand(expr, env),
                _ => String::new(),
            };
            let bad = || Error::BadSubPath {
                container: c.name.clone(),
                volume: m.name.clone(),
                sub_path: sub_path.clone(),
            };
            let host = if sub_path.is_empty() {
                dir.clone()
            } else {
                if sub_path.contains("$(") || !is_relative_inside(&sub_path) {
                    return Err(bad());
                }
                let joined = dir.join(&sub_path);
                let io_err = |source| Error::Io {
                    volume: m.name.clone(),
                    path: joined.clone(),
                    source,
                };
                if std::fs::symlink_metadata(&joined).is_err() {
                    std::fs::create_dir_all(&joined).map_err(io_err)?;
                }
                let real = joined.canonicalize().map_err(io_err)?;
                let root = dir.canonicalize().map_err(|source| Error::Io {
                    volume: m.name.clone(),
                    path: dir.clone(),
                    source,
                })?;
                if !real.starts_with(&root) {
                    return Err(bad());
                }
                if !real.is_dir() {
                    return Err(Error::SubPathFile {
                        container: c.name.clone(),
                        volume: m.name.clone(),
                        sub_path,
                    });
                }
                real
            };
            mounts.push(Mount {
                host,
                guest: m.mount_path.clone(),
                read_only: m.read_only.unwrap_or(false) || kind.always_read_only(),
            });
        }
        Ok(mounts)
    }
}

/// Materialises `pod`'s volumes under `pod_dir/volumes/`, fetching the ConfigMaps and
/// Secrets they name from the pod's namespace. Idempotent: an agent restart calls it again
/// for a pod it adopts, and emptyDir contents survive it.
pub async fn prepare(client: &kube::Client, pod: &Pod, pod_dir: &Path) -> Result<Volumes, Error> {
    let sources = fetch(client, pod).await?;
    let (pod, pod_dir) = (pod.clone(), pod_dir.to_owned());
    tokio::task::spawn_blocking(move || prepare_from(&pod, &pod_dir, &sources))
        .await
        .unwrap_or_else(|join| std::panic::resume_unwind(join.into_panic()))
}

/// Rewrites the ConfigMap, Secret and downward API volumes whose contents changed, as
/// Kubernetes updates mounted ConfigMaps. Unchanged volumes are not touched; a source that
/// became unavailable leaves the old contents in place (and returns the error).
pub async fn refresh(client: &kube::Client, pod: &Pod, pod_dir: &Path) -> Result<(), Error> {
    prepare(client, pod, pod_dir).await.map(drop)
}

/// Deletes the pod's materialised volumes. Never follows symlinks and never touches
/// hostPath volumes, which live outside `pod_dir`.
pub async fn remove(pod_dir: &Path) {
    let dir = pod_dir.join("volumes");
    let result = tokio::task::spawn_blocking(move || match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err((dir, e)),
        _ => Ok(()),
    })
    .await;
    if let Ok(Err((dir, e))) = result {
        tracing::warn!(dir = %dir.display(), "couldn't remove a pod's volumes: {e}");
    }
}

/// Fetches the ConfigMaps and Secrets `pod`'s volumes name.
async fn fetch(client: &kube::Client, pod: &Pod) -> Result<Sources, Error> {
    let namespace = env::namespace_of(pod);
    let mut cm_names = BTreeSet::new();
    let mut secret_names = BTreeSet::new();
    for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        if let Some(cm) = &v.config_map {
            cm_names.insert(cm.name.clone());
        }
        if let Some(name) = v.secret.as_ref().and_then(|s| s.secret_name.clone()) {
            secret_names.insert(name);
        }
        for p in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            if let Some(cm) = &p.config_map {
                cm_names.insert(cm.name.clone());
            }
            if let Some(s) = &p.secret {
                secret_names.insert(s.name.clone());
            }
        }
    }
    let (cms, secrets) = super::sources::fetch(client, &namespace, cm_names, secret_names).await?;
    let mut sources = Sources::default();
    cms.iter().for_each(|cm| sources.add_config_map(cm));
    secrets.iter().for_each(|s| sources.add_secret(s));
    Ok(sources)
}

/// The core of [`prepare`], with ConfigMaps and Secrets already fetched. Every volume is
/// checked and its contents computed before anything is written, so a bad volume leaves the
/// others as they were.
pub fn prepare_from(pod: &Pod, pod_dir: &Path, sources: &Sources) -> Result<Volumes, Error> {
    let root = pod_dir.join("volumes");
    let mut plan = Vec::new();
    for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        plan.push(plan_volume(pod, v, &root, sources)?);
    }
    let mut volumes = Volumes::default();
    for (name, kind, dir, payload) in plan {
        let io_err = |path: &Path| {
            let (volume, path) = (name.clone(), path.to_owned());
            move |source| Error::Io {
                volume,
                path,
                source,
            }
        };
        match payload {
            Some(payload) => {
                write_atomic(&dir, &payload).map_err(io_err(&dir))?;
            }
            None if kind == Kind::EmptyDir => {
                std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
            }
            None => {}
        }
        volumes.volumes.insert(name, (kind, dir));
    }
    Ok(volumes)
}

type Payload = BTreeMap<String, Vec<u8>>;

/// A volume's kind, directory and (for projected kinds) file contents, checked.
fn plan_volume(
    pod: &Pod,
    v: &Volume,
    root: &Path,
    sources: &Sources,
) -> Result<(String, Kind, PathBuf, Option<Payload>), Error> {
    let name = v.name.clone();
    let namespace = env::namespace_of(pod);
    let dir_for = |kind: Kind| root.join(kind.dir_name()).join(&v.name);
    if let Some(hp) = &v.host_path {
        let path = PathBuf::from(&hp.path);
        check_host_path(&name, &path, hp.type_.as_deref().unwrap_or(""))?;
        return Ok((name, Kind::HostPath, path, None));
    }
    if let Some(cm) = &v.config_map {
        let mut payload = Payload::new();
        project_keys(
            &mut payload,
            &name,
            "ConfigMap",
            &namespace,
            &cm.name,
            sources.config_maps.get(&cm.name),
            cm.items.as_deref(),
            cm.optional.unwrap_or(false),
        )?;
        return Ok((
            name,
            Kind::ConfigMap,
            dir_for(Kind::ConfigMap),
            Some(payload),
        ));
    }
    if let Some(s) = &v.secret {
        let secret_name = s.secret_name.clone().ok_or_else(|| Error::NoSecretName {
            volume: name.clone(),
        })?;
        let mut payload = Payload::new();
        project_keys(
            &mut payload,
            &name,
            "Secret",
            &namespace,
            &secret_name,
            sources.secrets.get(&secret_name),
            s.items.as_deref(),
            s.optional.unwrap_or(false),
        )?;
        return Ok((name, Kind::Secret, dir_for(Kind::Secret), Some(payload)));
    }
    if let Some(d) = &v.downward_api {
        let mut payload = Payload::new();
        project_fields(
            &mut payload,
            pod,
            &name,
            d.items.as_deref().unwrap_or_default(),
        )?;
        return Ok((
            name,
            Kind::DownwardApi,
            dir_for(Kind::DownwardApi),
            Some(payload),
        ));
    }
    if let Some(p) = &v.projected {
        let mut payload = Payload::new();
        for source in p.sources.iter().flatten() {
            if let Some(cm) = &source.config_map {
                project_keys(
                    &mut payload,
                    &name,
                    "ConfigMap",
                    &namespace,
                    &cm.name,
                    sources.config_maps.get(&cm.name),
                    cm.items.as_deref(),
                    cm.optional.unwrap_or(false),
                )?;
            } else if let Some(s) = &source.secret {
                project_keys(
                    &mut payload,
                    &name,
                    "Secret",
                    &namespace,
                    &s.name,
                    sources.secrets.get(&s.name),
                    s.items.as_deref(),
                    s.optional.unwrap_or(false),
                )?;
            } else if let Some(d) = &source.downward_api {
                project_fields(
                    &mut payload,
                    pod,
                    &name,
                    d.items.as_deref().unwrap_or_default(),
                )?;
            } else {
                let kind = if source.service_account_token.is_some() {
                    "projected serviceAccountToken"
                } else if source.cluster_trust_bundle.is_some() {
                    "projected clusterTrustBundle"
                } else {
                    "projected (unknown source)"
                };
                return Err(Error::Unsupported {
                    volume: name,
                    kind: kind.to_owned(),
                });
            }
        }
        return Ok((
            name,
            Kind::Projected,
            dir_for(Kind::Projected),
            Some(payload),
        ));
    }
    if v.empty_dir.is_some() || unsupported_kind(v).is_none() {
        // A volume with no source at all is an emptyDir, as the API server defaults it.
        return Ok((name, Kind::EmptyDir, dir_for(Kind::EmptyDir), None));
    }
    Err(Error::Unsupported {
        volume: name,
        kind: unsupported_kind(v).unwrap_or("unknown").to_owned(),
    })
}

/// Checks a hostPath against its `type`, creating it for `DirectoryOrCreate`.
fn check_host_path(volume: &str, path: &Path, kind: &str) -> Result<(), Error> {
    let io_err = |source| Error::Io {
        volume: volume.to_owned(),
        path: path.to_owned(),
        source,
    };
    match kind {
        "" | "Directory" | "DirectoryOrCreate" => {}
        "File" | "FileOrCreate" | "Socket" | "CharDevice" | "BlockDevice" => {
            return Err(Error::HostPathFileType {
                volume: volume.to_owned(),
                kind: kind.to_owned(),
            });
        }
        _ => {
            return Err(Error::HostPathType {
                volume: volume.to_owned(),
                kind: kind.to_owned(),
            });
        }
    }
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(Error::HostPathFile {
            volume: volume.to_owned(),
            path: path.to_owned(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if kind == "DirectoryOrCreate" {
                std::fs::create_dir_all(path).map_err(io_err)
            } else {
                Err(Error::HostPathMissing {
                    volume: volume.to_owned(),
                    path: path.to_owned(),
                })
            }
        }
        Err(e) => Err(io_err(e)),
    }
}

/// Adds a ConfigMap's or Secret's keys (all, or `items`) to `payload`.
#[allow(
    clippy::too_many_arguments,
    reason = "one call shape for four source kinds"
)]
fn project_keys(
    payload: &mut Payload,
    volume: &str,
    kind: &'static str,
    namespace: &str,
    name: &str,
    data: Option<&BTreeMap<String, Vec<u8>>>,
    items: Option<&[KeyToPath]>,
    optional: bool,
) -> Result<(), Error> {
    let Some(data) = data else {
        if optional {
            return Ok(());
        }
        let (namespace, name) = (namespace.to_owned(), name.to_owned());
        return Err(if kind == "Secret" {
            Error::SecretNotFound { namespace, name }
        } else {
            Error::ConfigMapNotFound { namespace, name }
        });
    };
    match items {
        None | Some([]) => {
            for (key, value) in data {
                add_file(payload, volume, key, value.clone())?;
            }
        }
        Some(items) => {
            for item in items {
                match data.get(&item.key) {
                    Some(value) => add_file(payload, volume, &item.path, value.clone())?,
                    None if optional => {}
                    None => {
                        return Err(Error::KeyNotFound {
                            volume: volume.to_owned(),
                            kind,
                            namespace: namespace.to_owned(),
                            name: name.to_owned(),
                            key: item.key.clone(),
                        });
                    }
                }
            }
        }
    }
    Ok(())
}

/// Adds downward API files to `payload`.
fn project_fields(
    payload: &mut Payload,
    pod: &Pod,
    volume: &str,
    items: &[DownwardAPIVolumeFile],
) -> Result<(), Error> {
    let field_err = |source| Error::Field {
        volume: volume.to_owned(),
        source,
    };
    for item in items {
        let value = if let Some(f) = &item.field_ref {
            match f.field_path.as_str() {
                "metadata.labels" => format_map(pod.metadata.labels.as_ref()),
                "metadata.annotations" => format_map(pod.metadata.annotations.as_ref()),
                path => {
                    let pod_ip = pod
                        .status
                        .as_ref()
                        .and_then(|s| s.pod_ip.clone())
                        .unwrap_or_default();
                    let node = pod
                        .spec
                        .as_ref()
                        .and_then(|s| s.node_name.clone())
                        .unwrap_or_default();
                    env::field_value(pod, path, &pod_ip, &node).map_err(field_err)?
                }
            }
        } else if let Some(r) = &item.resource_field_ref {
            env::resource_value(pod, None, r).map_err(field_err)?
        } else {
            String::new()
        };
        add_file(payload, volume, &item.path, value.into_bytes())?;
    }
    Ok(())
}

/// `key="value"` lines in key order, values quoted as Go's `%q` does, as the kubelet writes
/// labels and annotations files.
fn format_map(map: Option<&BTreeMap<String, String>>) -> String {
    map.into_iter()
        .flatten()
        .map(|(k, v)| {
            let mut quoted = String::with_capacity(v.len() + 2);
            quoted.push('"');
            for c in v.chars() {
                match c {
                    '"' => quoted.push_str("\\\""),
                    '\\' => quoted.push_str("\\\\"),
                    '\n' => quoted.push_str("\\n"),
                    '\t' => quoted.push_str("\\t"),
                    '\r' => quoted.push_str("\\r"),
                    c if c.is_control() => quoted.push_str(&format!("\\x{:02x}", c as u32)),
                    c => quoted.push(c),
                }
            }
            quoted.push('"');
            format!("{k}={quoted}")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn add_file(payload: &mut Payload, volume: &str, path: &str, value: Vec<u8>) -> Result<(), Error> {
    if !is_relative_inside(path) || path.starts_with("..") {
        return Err(Error::BadItemPath {
            volume: volume.to_owned(),
            path: path.to_owned(),
        });
    }
    payload.insert(path.to_owned(), value);
    Ok(())
}

/// A non-empty relative path with no `..`, root or prefix component.
fn is_relative_inside(path: &str) -> bool {
    !path.is_empty()
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// The name of a volume source this node cannot provide, if `v` has one.
fn unsupported_kind(v: &Volume) -> Option<&'static str> {
    let kinds: [(bool, &'static str); 24] = [
        (v.persistent_volume_claim.is_some(), "persistentVolumeClaim"),
        (v.nfs.is_some(), "nfs"),
        (v.csi.is_some(), "csi"),
        (v.ephemeral.is_some(), "ephemeral"),
        (v.image.is_some(), "image"),
        (v.iscsi.is_some(), "iscsi"),
        (v.git_repo.is_some(), "gitRepo"),
        (v.aws_elastic_block_store.is_some(), "awsElasticBlockStore"),
        (v.azure_disk.is_some(), "azureDisk"),
        (v.azure_file.is_some(), "azureFile"),
        (v.cephfs.is_some(), "cephfs"),
        (v.cinder.is_some(), "cinder"),
        (v.fc.is_some(), "fc"),
        (v.flex_volume.is_some(), "flexVolume"),
        (v.flocker.is_some(), "flocker"),
        (v.gce_persistent_disk.is_some(), "gcePersistentDisk"),
        (v.glusterfs.is_some(), "glusterfs"),
        (v.photon_persistent_disk.is_some(), "photonPersistentDisk"),
        (v.portworx_volume.is_some(), "portworxVolume"),
        (v.quobyte.is_some(), "quobyte"),
        (v.rbd.is_some(), "rbd"),
        (v.scale_io.is_some(), "scaleIO"),
        (v.storageos.is_some(), "storageos"),
        (v.vsphere_volume.is_some(), "vsphereVolume"),
    ];
    kinds.into_iter().find(|(set, _)| *set).map(|(_, k)| k)
}

const DATA_LINK: &str = "..data";

/// Writes `payload` into `dir` like the kubelet's atomic writer: files in a fresh
/// `..<timestamp>` directory, `..data` swapped to it by one rename, top-level names as
/// symlinks through `..data`. Does nothing when the contents are already `payload`.
fn write_atomic(dir: &Path, payload: &Payload) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let data_link = dir.join(DATA_LINK);
    let old = std::fs::read_link(&data_link).ok();
    if old.is_some() && read_tree(&data_link).ok().as_ref() == Some(payload) {
        return Ok(());
    }

    let stamp = chrono::Utc::now()
        .format("..%Y_%m_%d_%H_%M_%S.%f")
        .to_string();
    let mut fresh = dir.join(&stamp);
    let mut n = 0;
    while fresh.exists() {
        n += 1;
        fresh = dir.join(format!("{stamp}{n}"));
    }
    std::fs::create_dir(&fresh)?;
    for (path, bytes) in payload {
        let target = fresh.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&target, bytes)?;
    }

    let tmp_link = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp_link);
    let fresh_name = fresh.file_name().expect("a timestamped name");
    std::os::unix::fs::symlink(fresh_name, &tmp_link)?;
    std::fs::rename(&tmp_link, &data_link)?;

    let top: BTreeSet<String> = payload
        .keys()
        .filter_map(|p| Path::new(p).components().next())
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    for name in &top {
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(Path::new(DATA_LINK).join(name), &link)?;
        }
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("..") || top.contains(&name) {
            continue;
        }
        if entry.file_type()?.is_symlink() {
            std::fs::remove_file(entry.path())?;
        }
    }
    if let Some(old) = old {
        let old = dir.join(old);
        if old != fresh && old.starts_with(dir) {
            std::fs::remove_dir_all(old)?;
        }
    }
    Ok(())
}

/// Every file under `root` (following `root` itself if it is a symlink), by relative path.
fn read_tree(root: &Path) -> io::Result<Payload> {
    fn walk(root: &Path, rel: &Path, out: &mut Payload) -> io::Result<()> {
        for entry in std::fs::read_dir(root.join(rel))? {
            let entry = entry?;
            let rel = rel.join(entry.file_name());
            let kind = entry.file_type()?;
            if kind.is_dir() {
                walk(root, &rel, out)?;
            } else if kind.is_file() {
                out.insert(
                    rel.to_string_lossy().into_owned(),
                    std::fs::read(root.join(&rel))?,
                );
            }
        }
        Ok(())
    }
    let mut out = Payload::new();
    walk(root, Path::new(""), &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ConfigMapVolumeSource, DownwardAPIVolumeSource, EmptyDirVolumeSource, HostPathVolumeSource,
        NFSVolumeSource, ObjectFieldSelector, PodSpec, SecretVolumeSource, VolumeMount,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod(volumes: Vec<Volume>, containers: Vec<Container>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("shop".into()),
                uid: Some("u-1".into()),
                labels: Some(
                    [
                        ("app".to_owned(), "web".to_owned()),
                        ("tier".to_owned(), "a \"b\"".to_owned()),
                    ]
                    .into(),
                ),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers,
                volumes: Some(volumes),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn volume(name: &str) -> Volume {
        Volume {
            name: name.into(),
            ..Default::default()
        }
    }

    fn empty_dir(name: &str) -> Volume {
        Volume {
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..volume(name)
        }
    }

    fn config_map(name: &str, cm: &str, items: Option<Vec<KeyToPath>>) -> Volume {
        Volume {
            config_map: Some(ConfigMapVolumeSource {
                name: cm.into(),
                items,
                ..Default::default()
            }),
            ..volume(name)
        }
    }

    fn mount(name: &str, path: &str) -> VolumeMount {
        VolumeMount {
            name: name.into(),
            mount_path: path.into(),
            ..Default::default()
        }
    }

    fn container(name: &str, mounts: Vec<VolumeMount>) -> Container {
        Container {
            name: name.into(),
            volume_mounts: Some(mounts),
            ..Default::default()
        }
    }

    fn sources() -> Sources {
        let mut s = Sources::default();
        s.config_maps.insert(
            "cfg".into(),
            [
                ("app.toml".to_owned(), b"mode = 1".to_vec()),
                ("extra".to_owned(), b"x".to_vec()),
            ]
            .into(),
        );
        s.secrets.insert(
            "creds".into(),
            [("token".to_owned(), b"s3cret".to_vec())].into(),
        );
        s
    }

    #[test]
    fn empty_dir_is_shared_by_containers() {
        let tmp = tempfile::tempdir().unwrap();
        let a = container("a", vec![mount("scratch", "/data")]);
        let b = container(
            "b",
            vec![VolumeMount {
                read_only: Some(true),
                ..mount("scratch", "/in")
            }],
        );
        let p = pod(vec![empty_dir("scratch")], vec![a.clone(), b.clone()]);
        let vols = prepare_from(&p, tmp.path(), &sources()).unwrap();
        let ma = vols.mounts_for(&a).unwrap();
        let mb = vols.mounts_for(&b).unwrap();
        assert_eq!(ma[0].host, mb[0].host);
        assert_eq!(ma[0].host, tmp.path().join("volumes/empty-dir/scratch"));
        assert!(ma[0].host.is_dir());
        assert_eq!((ma[0].guest.as_str(), ma[0].read_only), ("/data", false));
        assert_eq!((mb[0].guest.as_str(), mb[0].read_only), ("/in", true));

        // Contents survive a second prepare (an agent restart adopting the pod).
        std::fs::write(ma[0].host.join("f"), b"kept").unwrap();
        prepare_from(&p, tmp.path(), &sources()).unwrap();
        assert_eq!(std::fs::read(mb[0].host.join("f")).unwrap(), b"kept");
    }

    #[test]
    fn config_map_items_are_read_only_and_update_atomically() {
        let tmp = tempfile::tempdir().unwrap();
        let items = vec![KeyToPath {
            key: "app.toml".into(),
            path: "conf/app.toml".into(),
            mode: None,
        }];
        let c = container("a", vec![mount("cfg", "/etc/app")]);
        let p = pod(vec![config_map("cfg", "cfg", Some(items))], vec![c.clone()]);
        let vols = prepare_from(&p, tmp.path(), &sources()).unwrap();
        let m = &vols.mounts_for(&c).unwrap()[0];
        assert!(m.read_only, "configMap volumes are always read-only");
        assert_eq!(
            std::fs::read_to_string(m.host.join("conf/app.toml")).unwrap(),
            "mode = 1"
        );
        assert!(!m.host.join("extra").exists(), "only the listed items");
        let before = std::fs::read_link(m.host.join("..data")).unwrap();

        // Unchanged contents: nothing rewritten.
        prepare_from(&p, tmp.path(), &sources()).unwrap();
        assert_eq!(std::fs::read_link(m.host.join("..data")).unwrap(), before);

        // Changed contents: the new snapshot replaces the old one.
        let mut changed = sources();
        changed
            .config_maps
            .get_mut("cfg")
            .unwrap()
            .insert("app.toml".into(), b"mode = 2".to_vec());
        prepare_from(&p, tmp.path(), &changed).unwrap();
        assert_eq!(
            std::fs::read_to_string(m.host.join("conf/app.toml")).unwrap(),
            "mode = 2"
        );
        assert_ne!(std::fs::read_link(m.host.join("..data")).unwrap(), before);
        assert!(!m.host.join(&before).exists(), "old snapshot removed");

        // A missing key is an error unless optional.
        let bad = vec![KeyToPath {
            key: "nope".into(),
            path: "nope".into(),
            mode: None,
        }];
        let p = pod(vec![config_map("cfg", "cfg", Some(bad))], vec![]);
        let err = prepare_from(&p, tmp.path(), &sources()).unwrap_err();
        assert!(err.to_string().contains("has no key \"nope\""), "{err}");
    }

    #[test]
    fn secrets_and_downward_api() {
        let tmp = tempfile::tempdir().unwrap();
        let field = |path: &str, field: &str| DownwardAPIVolumeFile {
            path: path.into(),
            field_ref: Some(ObjectFieldSelector {
                api_version: None,
                field_path: field.into(),
            }),
            ..Default::default()
        };
        let vols = vec![
            Volume {
                secret: Some(SecretVolumeSource {
                    secret_name: Some("creds".into()),
                    ..Default::default()
                }),
                ..volume("creds")
            },
            Volume {
                downward_api: Some(DownwardAPIVolumeSource {
                    items: Some(vec![
                        field("name", "metadata.name"),
                        field("labels", "metadata.labels"),
                    ]),
                    ..Default::default()
                }),
                ..volume("info")
            },
        ];
        let c = container("a", vec![mount("creds", "/s"), mount("info", "/info")]);
        let vols = prepare_from(&pod(vols, vec![c.clone()]), tmp.path(), &sources()).unwrap();
        let m = vols.mounts_for(&c).unwrap();
        assert_eq!(std::fs::read(m[0].host.join("token")).unwrap(), b"s3cret");
        assert_eq!(
            std::fs::read_to_string(m[1].host.join("name")).unwrap(),
            "web"
        );
        assert_eq!(
            std::fs::read_to_string(m[1].host.join("labels")).unwrap(),
            "app=\"web\"\ntier=\"a \\\"b\\\"\""
        );
        assert!(m.iter().all(|m| m.read_only));

        let missing = Volume {
            secret: Some(SecretVolumeSource {
                secret_name: Some("gone".into()),
                ..Default::default()
            }),
            ..volume("x")
        };
        let err = prepare_from(&pod(vec![missing], vec![]), tmp.path(), &sources()).unwrap_err();
        assert!(matches!(err, Error::SecretNotFound { .. }), "{err}");
    }

    #[test]
    fn sub_path_must_stay_inside() {
        let tmp = tempfile::tempdir().unwrap();
        let with_sub = |sub: &str| {
            container(
                "a",
                vec![VolumeMount {
                    sub_path: Some(sub.into()),
                    ..mount("scratch", "/d")
                }],
            )
        };
        let p = pod(vec![empty_dir("scratch")], vec![]);
        let vols = prepare_from(&p, tmp.path(), &sources()).unwrap();
        let dir = tmp.path().join("volumes/empty-dir/scratch");

        let m = vols.mounts_for(&with_sub("logs/app")).unwrap();
        assert!(m[0].host.ends_with("scratch/logs/app") && m[0].host.is_dir());

        for bad in ["../..", "/etc", "a/../../x"] {
            let err = vols.mounts_for(&with_sub(bad)).unwrap_err();
            assert!(matches!(err, Error::BadSubPath { .. }), "{bad}: {err}");
        }
        // A symlink planted by a container must not lead a later mount out of the volume.
        std::os::unix::fs::symlink("/", dir.join("escape")).unwrap();
        let err = vols.mounts_for(&with_sub("escape")).unwrap_err();
        assert!(matches!(err, Error::BadSubPath { .. }), "{err}");
        // Files cannot be preopened.
        std::fs::write(dir.join("file"), b"x").unwrap();
        let err = vols.mounts_for(&with_sub("file")).unwrap_err();
        assert!(matches!(err, Error::SubPathFile { .. }), "{err}");

        let unknown = container("a", vec![mount("nope", "/x")]);
        assert!(matches!(
            vols.mounts_for(&unknown),
            Err(Error::UnknownVolume { .. })
        ));
    }

    #[test]
    fn host_paths() {
        let tmp = tempfile::tempdir().unwrap();
        let host = |name: &str, path: &Path, kind: Option<&str>| Volume {
            host_path: Some(HostPathVolumeSource {
                path: path.to_string_lossy().into_owned(),
                type_: kind.map(str::to_owned),
            }),
            ..volume(name)
        };
        let file = tmp.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let err = prepare_from(
            &pod(vec![host("f", &file, None)], vec![]),
            tmp.path(),
            &sources(),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("wasm containers can mount directories only"),
            "{err}"
        );
        let err = prepare_from(
            &pod(vec![host("f", &file, Some("File"))], vec![]),
            tmp.path(),
            &sources(),
        )
        .unwrap_err();
        assert!(matches!(err, Error::HostPathFileType { .. }), "{err}");

        let missing = tmp.path().join("made/here");
        let err = prepare_from(
            &pod(vec![host("d", &missing, Some("Directory"))], vec![]),
            tmp.path(),
            &sources(),
        )
        .unwrap_err();
        assert!(matches!(err, Error::HostPathMissing { .. }), "{err}");

        let c = container(
            "a",
            vec![VolumeMount {
                read_only: Some(true),
                ..mount("d", "/host")
            }],
        );
        let p = pod(vec![host("d", &missing, Some("DirectoryOrCreate"))], vec![]);
        let vols = prepare_from(&p, tmp.path(), &sources()).unwrap();
        assert!(missing.is_dir());
        let m = vols.mounts_for(&c).unwrap();
        assert_eq!(
            (m[0].host.as_path(), m[0].read_only),
            (missing.as_path(), true)
        );
    }

    #[tokio::test]
    async fn unsupported_types_and_remove() {
        let tmp = tempfile::tempdir().unwrap();
        let nfs = Volume {
            nfs: Some(NFSVolumeSource {
                path: "/x".into(),
                server: "nas".into(),
                read_only: None,
            }),
            ..volume("share")
        };
        let err = prepare_from(&pod(vec![nfs], vec![]), tmp.path(), &sources()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "volume \"share\": volume type nfs is not supported on wasm nodes; use emptyDir, \
             hostPath, configMap, secret, downwardAPI or projected"
        );

        // remove() deletes the pod's volumes but never what a hostPath points to.
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep"), b"x").unwrap();
        let pod_dir = tmp.path().join("pod");
        let p = pod(
            vec![
                empty_dir("scratch"),
                config_map("cfg", "cfg", None),
                Volume {
                    host_path: Some(HostPathVolumeSource {
                        path: outside.to_string_lossy().into_owned(),
                        type_: None,
                    }),
                    ..volume("h")
                },
            ],
            vec![],
        );
        prepare_from(&p, &pod_dir, &sources()).unwrap();
        std::os::unix::fs::symlink(&outside, pod_dir.join("volumes/empty-dir/scratch/link"))
            .unwrap();
        remove(&pod_dir).await;
        assert!(!pod_dir.join("volumes").exists());
        assert!(outside.join("keep").exists());
    }
}

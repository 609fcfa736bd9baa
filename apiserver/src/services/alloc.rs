//! Allocation against the store: one record per cluster IP and per node port held, added
//! and removed in the Service's own transaction (see the module doc in `mod.rs`).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::Ipv4Addr;

use serde_json::{Value, json};
use sextant_api::FieldError;
use sextant_store::{ListRequest, Op, Precondition, StoreError};

use super::range;
use super::spec::{self, Held};
use crate::error::{ApiError, ApiResult};
use crate::objects;
use crate::state::ApiState;

/// Where the records live: Kubernetes' own names for the two ranges
/// (`/registry/ranges/serviceips`), one key per value under them. `ranges` has no dot, so
/// no API group (hence no custom resource) can ever be stored there.
pub(crate) const IP_PREFIX: &str = "/registry/ranges/serviceips/";
pub(crate) const PORT_PREFIX: &str = "/registry/ranges/servicenodeports/";

pub(crate) fn ip_key(ip: Ipv4Addr) -> String {
    format!("{IP_PREFIX}{ip}")
}

pub(crate) fn port_key(port: u16) -> String {
    format!("{PORT_PREFIX}{port}")
}

/// The records for what `held` names.
pub(crate) fn keys(held: &Held) -> Vec<String> {
    held.ip
        .map(ip_key)
        .into_iter()
        .chain(held.ports.iter().map(|p| port_key(*p)))
        .collect()
}

/// A record's value: the Service that holds it.
pub(crate) fn record(svc: &Value) -> Vec<u8> {
    let meta = objects::meta(svc);
    serde_json::to_vec(&json!({
        "namespace": meta.get("namespace"),
        "name": meta.get("name"),
        "uid": meta.get("uid"),
    }))
    .expect("JSON encodes")
}

/// The uid of the Service a record names.
pub(crate) fn record_uid(value: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(value).ok()?;
    v["uid"].as_str().map(str::to_owned)
}

fn uid(svc: &Value) -> String {
    objects::meta_str(svc, "uid").unwrap_or_default().to_owned()
}

/// The records one write adds and removes, to go in the Service's own transaction.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    ops: Vec<Op>,
    /// Records of values picked at random: a concurrent writer taking one first means
    /// plan again.
    random: BTreeSet<String>,
    /// Records of values the client asked for, with the error to answer if a concurrent
    /// writer takes one first.
    requested: Vec<(String, FieldError)>,
    /// Every record this plan adds, so that one write never picks a value twice.
    added: HashSet<String>,
    service: String,
}

impl Plan {
    pub(crate) fn ops(&self) -> impl Iterator<Item = Op> + '_ {
        self.ops.iter().cloned()
    }

    /// What a failed transaction means for the allocations. `None`: a value picked at
    /// random was taken by a concurrent writer; plan again. Otherwise the error to answer,
    /// `other` mapping the errors that are not about the records.
    pub(crate) fn explain(
        &self,
        e: StoreError,
        other: impl FnOnce(StoreError) -> ApiError,
    ) -> Option<ApiError> {
        let key = match &e {
            StoreError::AlreadyExists { key }
            | StoreError::NotFound { key }
            | StoreError::Conflict { key, .. } => key.clone(),
            _ => return Some(other(e)),
        };
        if self.random.contains(&key) {
            return None;
        }
        if let Some((_, err)) = self.requested.iter().find(|(k, _)| *k == key) {
            return Some(invalid(&self.service, vec![err.clone()]));
        }
        if key.starts_with(IP_PREFIX) || key.starts_with(PORT_PREFIX) {
            // A record released or moved under this write: the Service itself changed.
            return Some(ApiError::Conflict {
                group: String::new(),
                kind_plural: "services".into(),
                name: self.service.clone(),
                detail: "the object has been modified; please apply your changes to the latest version and try again".into(),
            });
        }
        Some(other(e))
    }

    /// Takes `key` for a value the client asked for: free, or already this Service's.
    async fn request(
        &mut self,
        state: &ApiState,
        svc: &Value,
        key: String,
        err: FieldError,
        errs: &mut Vec<FieldError>,
    ) -> ApiResult<()> {
        if self.added.contains(&key) {
            return Ok(());
        }
        match state.store.get(&key).await? {
            Some(kv) if record_uid(&kv.value) == Some(uid(svc)) => {}
            Some(_) => errs.push(err),
            None => {
                self.add(svc, key.clone());
                self.requested.push((key, err));
            }
        }
        Ok(())
    }

    fn add(&mut self, svc: &Value, key: String) {
        self.ops.push(Op::Put {
            key: key.clone(),
            value: record(svc),
            precondition: Precondition::Absent,
        });
        self.added.insert(key);
    }

    /// Frees `key` if this Service holds it (a record another Service holds, or none, is
    /// left as it is: a Service is never kept from changing or going by a missing record).
    async fn release(&mut self, state: &ApiState, svc: &Value, key: String) -> ApiResult<()> {
        if let Some(kv) = state.store.get(&key).await?
            && record_uid(&kv.value) == Some(uid(svc))
        {
            self.ops.push(Op::Delete {
                key,
                precondition: Precondition::Revision(kv.mod_revision),
            });
        }
        Ok(())
    }
}

/// The indices of the values recorded under `prefix`: listed once per write, when its
/// first value is picked at random.
struct Taken {
    prefix: &'static str,
    listed: Option<HashSet<u64>>,
}

impl Taken {
    fn new(prefix: &'static str) -> Taken {
        Taken {
            prefix,
            listed: None,
        }
    }

    async fn get(
        &mut self,
        state: &ApiState,
        index_of: impl Fn(&str) -> Option<u64>,
    ) -> ApiResult<&mut HashSet<u64>> {
        if self.listed.is_none() {
            let listed = state
                .store
                .list(ListRequest {
                    prefix: self.prefix.to_owned(),
                    ..Default::default()
                })
                .await?;
            let set = listed
                .items
                .iter()
                .filter_map(|kv| index_of(kv.key.strip_prefix(self.prefix)?))
                .collect();
            self.listed = Some(set);
        }
        Ok(self.listed.as_mut().expect("just listed"))
    }
}

fn random_below(n: u64) -> u64 {
    rand::Rng::gen_range(&mut rand::thread_rng(), 0..n)
}

fn invalid(name: &str, errors: Vec<FieldError>) -> ApiError {
    ApiError::Invalid(sextant_api::Error::Invalid {
        group: String::new(),
        kind: "Service".into(),
        name: name.into(),
        errors,
    })
}

/// Allocates for a Service being created (`old` is `None`) or updated: fills in `svc`'s
/// cluster IP, IP families and node ports, checks the values the client asked for, and
/// returns the records to add and remove in the same transaction. Writes nothing, so a
/// dry run allocates nothing. An update must have gone through `prepare_update` first.
pub(crate) async fn plan(
    state: &ApiState,
    old: Option<&Value>,
    svc: &mut Value,
) -> ApiResult<Plan> {
    let name = objects::name(svc).unwrap_or_default().to_owned();
    spec::drop_zero_ports(svc);
    if old.is_none() {
        spec::normalize_create(svc);
    }
    let errs = spec::validate(old, svc);
    if !errs.is_empty() {
        return Err(invalid(&name, errs));
    }
    let ranges = state.services;
    let before = old.map(spec::held).unwrap_or_default();
    let mut plan = Plan {
        service: name.clone(),
        ..Plan::default()
    };
    let mut errs = Vec::new();
    let (mut ips, mut node_ports) = (Taken::new(IP_PREFIX), Taken::new(PORT_PREFIX));

    if spec::needs_cluster_ip(svc) {
        let requested = spec::cluster_ip(svc).to_owned();
        match requested.as_str() {
            spec::NONE => {}
            "" => {
                let ip = pick_ip(state, &mut plan, &mut ips, svc).await?;
                let s = spec::spec_mut(svc);
                s.insert("clusterIP".into(), json!(ip.to_string()));
                s.insert("clusterIPs".into(), json!([ip.to_string()]));
            }
            _ if old.is_some_and(|o| spec::primary_ip(o) == requested) => {}
            _ => {
                let failed = |detail: &str| {
                    FieldError::invalid_json(
                        "spec.clusterIPs",
                        &spec::cluster_ips(svc),
                        &format!("failed to allocate IP {requested}: {detail}"),
                    )
                };
                match requested.parse::<Ipv4Addr>() {
                    Ok(ip) if ranges.cluster_ip.contains(ip) => {
                        let err = failed("provided IP is already allocated");
                        plan.request(state, svc, ip_key(ip), err, &mut errs)
                            .await?;
                    }
                    _ => errs.push(failed(&format!(
                        "the provided IP ({requested}) is not in the valid range. The range of valid IPs is {}",
                        ranges.cluster_ip
                    ))),
                }
            }
        }
        let s = spec::spec_mut(svc);
        if s.get("ipFamilies")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty)
        {
            s.insert("ipFamilies".into(), json!(["IPv4"]));
        }
        if s.get("ipFamilyPolicy").is_none_or(Value::is_null) {
            s.insert("ipFamilyPolicy".into(), json!("SingleStack"));
        }
    }

    let out_of_range = |field: &str, port: i64| {
        FieldError::invalid_json(
            field,
            &port,
            &format!(
                "provided port is not in the valid range. The range of valid ports is {}",
                ranges.node_ports
            ),
        )
    };
    let allocated = |field: &str, port: i64| {
        FieldError::invalid_json(field, &port, "provided port is already allocated")
    };
    if spec::needs_node_ports(svc) {
        // Ports with the same number share one node port (TCP and UDP 53, say), as in
        // Kubernetes.
        let mut by_port: BTreeMap<i64, i64> = BTreeMap::new();
        let wanted: Vec<(usize, i64, i64)> = spec::ports(svc)
            .iter()
            .enumerate()
            .map(|(i, p)| (i, p["port"].as_i64().unwrap_or(0), spec::node_port(p)))
            .collect();
        for &(i, port, np) in wanted.iter().filter(|w| w.2 != 0) {
            by_port.entry(port).or_insert(np);
            let field = format!("spec.ports[{i}].nodePort");
            match u16::try_from(np) {
                Ok(p) if before.ports.contains(&p) => {}
                Ok(p) if ranges.node_ports.contains(np) => {
                    plan.request(state, svc, port_key(p), allocated(&field, np), &mut errs)
                        .await?;
                }
                _ => errs.push(out_of_range(&field, np)),
            }
        }
        if spec::allocates_node_ports(svc) {
            for &(i, port, _) in wanted.iter().filter(|w| w.2 == 0) {
                let np = match by_port.get(&port) {
                    Some(np) => *np,
                    None => {
                        let np =
                            i64::from(pick_port(state, &mut plan, &mut node_ports, svc).await?);
                        by_port.insert(port, np);
                        np
                    }
                };
                spec::ports_mut(svc)[i]["nodePort"] = json!(np);
            }
        }
    }
    if spec::needs_health_check_port(svc) {
        let field = "spec.healthCheckNodePort";
        match spec::health_check_port(svc) {
            0 => {
                let p = pick_port(state, &mut plan, &mut node_ports, svc).await?;
                spec::spec_mut(svc).insert("healthCheckNodePort".into(), json!(p));
            }
            np => match u16::try_from(np) {
                Ok(p) if before.ports.contains(&p) => {}
                Ok(p) if ranges.node_ports.contains(np) => {
                    plan.request(state, svc, port_key(p), allocated(field, np), &mut errs)
                        .await?;
                }
                _ => errs.push(out_of_range(field, np)),
            },
        }
    }
    if !errs.is_empty() {
        return Err(invalid(&name, errs));
    }
    let after = spec::held(svc);
    for key in keys(&before) {
        if !keys(&after).contains(&key) {
            plan.release(state, svc, key).await?;
        }
    }
    Ok(plan)
}

/// The records a deleted Service frees.
pub(crate) async fn release(state: &ApiState, svc: &Value) -> ApiResult<Plan> {
    let mut plan = Plan {
        service: objects::name(svc).unwrap_or_default().to_owned(),
        ..Plan::default()
    };
    for key in keys(&spec::held(svc)) {
        plan.release(state, svc, key).await?;
    }
    Ok(plan)
}

async fn pick_ip(
    state: &ApiState,
    plan: &mut Plan,
    taken: &mut Taken,
    svc: &Value,
) -> ApiResult<Ipv4Addr> {
    let r = state.services.cluster_ip;
    let listed = taken.get(state, |s| r.index_of(s.parse().ok()?)).await?;
    let index = range::pick(
        r.size(),
        r.static_band(),
        |i| listed.contains(&i) || plan.added.contains(&ip_key(r.nth(i))),
        random_below,
    )
    .ok_or_else(|| {
        ApiError::Internal(format!(
            "failed to allocate a serviceIP: range is full; widen --service-cluster-ip-range (now {r}) or delete Services that are no longer used"
        ))
    })?;
    let ip = r.nth(index);
    plan.add(svc, ip_key(ip));
    plan.random.insert(ip_key(ip));
    Ok(ip)
}

async fn pick_port(
    state: &ApiState,
    plan: &mut Plan,
    taken: &mut Taken,
    svc: &Value,
) -> ApiResult<u16> {
    let r = state.services.node_ports;
    let listed = taken.get(state, |s| r.index_of(s.parse().ok()?)).await?;
    let index = range::pick(
        r.size(),
        r.static_band(),
        |i| listed.contains(&i) || plan.added.contains(&port_key(r.nth(i))),
        random_below,
    )
    .ok_or_else(|| {
        ApiError::Internal(format!(
            "failed to allocate a nodePort: range is full; widen --service-node-port-range (now {r}) or delete NodePort Services that are no longer used"
        ))
    })?;
    let port = r.nth(index);
    plan.add(svc, port_key(port));
    plan.random.insert(port_key(port));
    Ok(port)
}

//! What a Service's spec says about the addresses and ports it holds, and Kubernetes' rules
//! for those fields before anything is allocated: what an update keeps when the client
//! leaves it out, what a type change drops, and what is invalid.
//!
//! Pure functions over the JSON object; `alloc.rs` meets the store.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use serde_json::{Map, Value, json};
use sextant_api::{FieldError, Reason};

/// `clusterIP: None`: a headless Service, with no virtual IP.
pub(crate) const NONE: &str = "None";

pub(crate) fn type_of(svc: &Value) -> &str {
    svc.pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
}

/// Every type but ExternalName has a cluster IP (or is headless).
pub(crate) fn needs_cluster_ip(svc: &Value) -> bool {
    type_of(svc) != "ExternalName"
}

pub(crate) fn needs_node_ports(svc: &Value) -> bool {
    matches!(type_of(svc), "NodePort" | "LoadBalancer")
}

/// Whether ports sent without a `nodePort` get one (a LoadBalancer may opt out).
pub(crate) fn allocates_node_ports(svc: &Value) -> bool {
    match type_of(svc) {
        "NodePort" => true,
        "LoadBalancer" => svc.pointer("/spec/allocateLoadBalancerNodePorts") != Some(&json!(false)),
        _ => false,
    }
}

/// A LoadBalancer that keeps traffic on the receiving node gets a health-check port.
pub(crate) fn needs_health_check_port(svc: &Value) -> bool {
    type_of(svc) == "LoadBalancer"
        && svc
            .pointer("/spec/externalTrafficPolicy")
            .and_then(Value::as_str)
            == Some("Local")
}

pub(crate) fn cluster_ip(svc: &Value) -> &str {
    svc.pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .unwrap_or("")
}

pub(crate) fn cluster_ips(svc: &Value) -> Vec<String> {
    strings(svc.pointer("/spec/clusterIPs"))
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|s| s.as_str().unwrap_or_default().to_owned())
        .collect()
}

pub(crate) fn ports(svc: &Value) -> &[Value] {
    svc.pointer("/spec/ports")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

pub(crate) fn ports_mut(svc: &mut Value) -> &mut [Value] {
    match svc.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
        Some(ports) => ports.as_mut_slice(),
        None => &mut [],
    }
}

/// The first of `clusterIPs`; Services stored before allocation may name `clusterIP` alone.
pub(crate) fn primary_ip(svc: &Value) -> String {
    match cluster_ips(svc).first() {
        Some(ip) => ip.clone(),
        None => cluster_ip(svc).to_owned(),
    }
}

/// A port's `nodePort`, 0 when unset.
pub(crate) fn node_port(port: &Value) -> i64 {
    port.get("nodePort").and_then(Value::as_i64).unwrap_or(0)
}

pub(crate) fn health_check_port(svc: &Value) -> i64 {
    svc.pointer("/spec/healthCheckNodePort")
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

pub(crate) fn spec_mut(svc: &mut Value) -> &mut Map<String, Value> {
    if !svc.get("spec").is_some_and(Value::is_object) {
        svc["spec"] = json!({});
    }
    svc["spec"].as_object_mut().expect("just made an object")
}

/// Unset: absent, null, an empty string or an empty list.
fn unset(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(_) => false,
    }
}

/// The cluster IP and node ports a Service holds: what its allocation records are for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Held {
    pub ip: Option<Ipv4Addr>,
    pub ports: BTreeSet<u16>,
}

pub(crate) fn held(svc: &Value) -> Held {
    let ip = if needs_cluster_ip(svc) {
        primary_ip(svc).parse().ok()
    } else {
        None
    };
    let mut ports = BTreeSet::new();
    if needs_node_ports(svc) {
        ports.extend(ports_of(svc).filter_map(|p| u16::try_from(p).ok()));
    }
    if needs_health_check_port(svc)
        && let Ok(p @ 1..) = u16::try_from(health_check_port(svc))
    {
        ports.insert(p);
    }
    Held { ip, ports }
}

/// The ports' node ports that are set, in order.
fn ports_of(svc: &Value) -> impl Iterator<Item = i64> + '_ {
    ports(svc).iter().map(node_port).filter(|p| *p != 0)
}

/// A zero `nodePort` or `healthCheckNodePort` means unset, and Kubernetes never shows one
/// (typed clients such as `kubectl create service clusterip` send zeros).
pub(crate) fn drop_zero_ports(svc: &mut Value) {
    for p in ports_mut(svc) {
        if node_port(p) == 0
            && let Some(p) = p.as_object_mut()
        {
            p.remove("nodePort");
        }
    }
    if health_check_port(svc) == 0
        && let Some(spec) = svc.get_mut("spec").and_then(Value::as_object_mut)
    {
        spec.remove("healthCheckNodePort");
    }
}

/// A new Service that names `clusterIP` only (an older client) names `clusterIPs` too.
pub(crate) fn normalize_create(svc: &mut Value) {
    let ip = cluster_ip(svc).to_owned();
    if !ip.is_empty() && cluster_ips(svc).is_empty() {
        spec_mut(svc).insert("clusterIPs".into(), json!([ip]));
    }
}

/// Before an update is validated, as Kubernetes' Service storage does: fills in what the
/// server allocated and the client left out (`patchAllocatedValues`: a `kubectl replace` of
/// a manifest without `clusterIP` or `nodePort` keeps them), drops what a type change no
/// longer uses when the client left it as it was (`dropTypeDependentFields`), and lines
/// `clusterIPs` up with `clusterIP` (`normalizeClusterIPs`).
pub(crate) fn prepare_update(old: &Value, new: &mut Value) {
    keep_allocated(old, new);
    drop_type_dependent(old, new);
    normalize_update(old, new);
}

fn keep_allocated(old: &Value, new: &mut Value) {
    if needs_cluster_ip(old) && needs_cluster_ip(new) {
        let old_spec = old.get("spec").cloned().unwrap_or(json!({}));
        let spec = spec_mut(new);
        for field in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
            if unset(spec.get(field)) && !unset(old_spec.get(field)) {
                spec.insert(field.into(), old_spec[field].clone());
            }
        }
    }
    if needs_node_ports(old) && needs_node_ports(new) {
        // Matched by port name, as Kubernetes does; a node port the new ports already use
        // elsewhere is not handed to a second port.
        let old_ports: BTreeSet<i64> = ports_of(old).collect();
        let used: BTreeSet<i64> = ports_of(new).filter(|p| old_ports.contains(p)).collect();
        let by_name: BTreeMap<&str, i64> = ports(old)
            .iter()
            .map(|p| (p["name"].as_str().unwrap_or(""), node_port(p)))
            .collect();
        for p in ports_mut(new) {
            if node_port(p) == 0
                && let Some(&kept) = by_name.get(p["name"].as_str().unwrap_or(""))
                && kept != 0
                && !used.contains(&kept)
            {
                p["nodePort"] = json!(kept);
            }
        }
    }
    if needs_health_check_port(old) && needs_health_check_port(new) && health_check_port(new) == 0 {
        let kept = health_check_port(old);
        if kept != 0 {
            spec_mut(new).insert("healthCheckNodePort".into(), json!(kept));
        }
    }
}

fn drop_type_dependent(old: &Value, new: &mut Value) {
    let same = |field: &str, new: &Value| {
        let at = format!("/spec/{field}");
        old.pointer(&at) == new.pointer(&at)
    };
    if needs_cluster_ip(old) && !needs_cluster_ip(new) {
        let same_ips = cluster_ips(old) == cluster_ips(new);
        let same_families = same("ipFamilies", new);
        let same_policy = same("ipFamilyPolicy", new);
        let spec = spec_mut(new);
        if same_ips {
            spec.remove("clusterIP");
            spec.remove("clusterIPs");
        }
        if same_families {
            spec.remove("ipFamilies");
        }
        if same_policy {
            spec.remove("ipFamilyPolicy");
        }
    }
    if needs_node_ports(old) && !needs_node_ports(new) {
        let sorted = |svc: &Value| {
            let mut v: Vec<i64> = ports_of(svc).collect();
            v.sort_unstable();
            v
        };
        if sorted(old) == sorted(new) {
            for p in ports_mut(new) {
                if let Some(p) = p.as_object_mut() {
                    p.remove("nodePort");
                }
            }
        }
    }
    if needs_health_check_port(old)
        && !needs_health_check_port(new)
        && health_check_port(old) == health_check_port(new)
    {
        spec_mut(new).remove("healthCheckNodePort");
    }
}

fn normalize_update(old: &Value, new: &mut Value) {
    let (old_ip, new_ip) = (cluster_ip(old).to_owned(), cluster_ip(new).to_owned());
    let (old_ips, new_ips) = (cluster_ips(old), cluster_ips(new));
    // An older client that names only `clusterIP`, and left it as it was.
    if !old_ips.is_empty() && new_ips.is_empty() && old_ip == new_ip {
        spec_mut(new).insert("clusterIPs".into(), json!(old_ips));
    }
    // `clusterIP` changed and `clusterIPs` did not: the client meant both.
    if old_ip != new_ip && old_ips == new_ips {
        if new_ip.is_empty() {
            spec_mut(new).remove("clusterIPs");
        } else {
            spec_mut(new).insert("clusterIPs".into(), json!([new_ip]));
        }
    }
}

/// Kubernetes' rules for the fields this module manages (the parts of `ValidateService` and
/// `ValidateServiceUpdate` about cluster IPs, IP families and node ports). Ranges and
/// allocation are checked later, against the store.
pub(crate) fn validate(old: Option<&Value>, svc: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let (ip, ips, ty) = (cluster_ip(svc), cluster_ips(svc), type_of(svc));
    if ip.is_empty() && !ips.is_empty() {
        errs.push(FieldError::invalid_json(
            "spec.clusterIPs",
            &ips,
            "must be empty when `clusterIP` is not specified",
        ));
    } else if ips.first().is_some_and(|first| first != ip) {
        errs.push(FieldError::invalid_json(
            "spec.clusterIPs",
            &ips,
            "first value must match `clusterIP`",
        ));
    }
    if ips.len() > 1 {
        errs.push(FieldError::invalid_json(
            "spec.clusterIPs",
            &ips,
            "this cluster is not configured for dual-stack services: name one address",
        ));
    }
    for (i, v) in ips.iter().enumerate() {
        if (v != NONE || i > 0) && v.parse::<IpAddr>().is_err() {
            errs.push(FieldError::invalid(
                &format!("spec.clusterIPs[{i}]"),
                v,
                "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            ));
        }
    }
    let headless = ip == NONE;
    let families = strings(svc.pointer("/spec/ipFamilies"));
    let policy = svc.pointer("/spec/ipFamilyPolicy").and_then(Value::as_str);
    match ty {
        "ExternalName" => {
            let forbidden = |field: &str| {
                FieldError::forbidden(
                    &format!("spec.{field}"),
                    "may not be set for ExternalName services",
                )
            };
            if !ip.is_empty() || !ips.is_empty() {
                errs.push(forbidden("clusterIPs"));
            }
            if !families.is_empty() {
                errs.push(forbidden("ipFamilies"));
            }
            if policy.is_some() {
                errs.push(forbidden("ipFamilyPolicy"));
            }
        }
        "NodePort" | "LoadBalancer" if headless => errs.push(FieldError::invalid(
            "spec.clusterIPs[0]",
            NONE,
            &format!("may not be set to 'None' for {ty} services"),
        )),
        _ => {}
    }
    for (i, family) in families.iter().enumerate() {
        let field = format!("spec.ipFamilies[{i}]");
        match family.as_str() {
            "IPv4" => {}
            "IPv6" => errs.push(FieldError::invalid(
                &field,
                family,
                "not configured on this cluster",
            )),
            other => errs.push(FieldError::not_supported(&field, other, &["IPv4", "IPv6"])),
        }
    }
    match policy {
        None | Some("SingleStack" | "PreferDualStack") => {}
        Some(p @ "RequireDualStack") => errs.push(FieldError::invalid(
            "spec.ipFamilyPolicy",
            p,
            "this cluster is not configured for dual-stack services",
        )),
        Some(other) => errs.push(FieldError::not_supported(
            "spec.ipFamilyPolicy",
            other,
            &["SingleStack", "PreferDualStack", "RequireDualStack"],
        )),
    }
    let mut seen = BTreeSet::new();
    for (i, p) in ports(svc).iter().enumerate() {
        let np = node_port(p);
        let field = format!("spec.ports[{i}].nodePort");
        if np == 0 {
            continue;
        }
        if !needs_node_ports(svc) {
            errs.push(FieldError::forbidden(
                &field,
                &format!("may not be used when `type` is '{ty}'"),
            ));
        } else if !seen.insert((np, p["protocol"].as_str().unwrap_or("TCP"))) {
            errs.push(FieldError {
                field,
                reason: Reason::Duplicate,
                message: format!("Duplicate value: {np}"),
            });
        }
    }
    let hc = health_check_port(svc);
    if hc != 0 && !needs_health_check_port(svc) {
        errs.push(FieldError::invalid_json(
            "spec.healthCheckNodePort",
            &hc,
            "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
        ));
    }
    if let Some(old) = old {
        errs.extend(immutable_cluster_ip(old, svc));
    }
    errs
}

/// A cluster IP, once set, stays, unless the type changes to or from ExternalName.
fn immutable_cluster_ip(old: &Value, new: &Value) -> Vec<FieldError> {
    if !needs_cluster_ip(old) || !needs_cluster_ip(new) {
        return Vec::new();
    }
    let (was, is) = (primary_ip(old), primary_ip(new));
    let ips = cluster_ips(new);
    if was.is_empty() || was == is {
        return Vec::new();
    }
    if is.is_empty() {
        return vec![FieldError::invalid_json(
            "spec.clusterIPs[0]",
            &ips,
            "primary clusterIP can not be unset",
        )];
    }
    let mut errs = Vec::new();
    if cluster_ip(new) != cluster_ip(old) {
        errs.push(FieldError::invalid(
            "spec.clusterIP",
            cluster_ip(new),
            "field is immutable",
        ));
    }
    errs.push(FieldError::invalid_json(
        "spec.clusterIPs[0]",
        &ips,
        "may not change once set",
    ));
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(spec: Value) -> Value {
        json!({"metadata": {"name": "web"}, "spec": spec})
    }

    fn messages(errs: &[FieldError]) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn what_a_service_holds_follows_its_type() {
        let node_port = svc(json!({"type": "NodePort", "clusterIP": "127.96.0.9",
            "ports": [{"port": 80, "nodePort": 30080}, {"port": 81}]}));
        assert_eq!(
            held(&node_port),
            Held {
                ip: Some(Ipv4Addr::new(127, 96, 0, 9)),
                ports: BTreeSet::from([30080])
            }
        );
        let headless = svc(json!({"clusterIP": "None", "clusterIPs": ["None"]}));
        assert_eq!(held(&headless), Held::default());
        let lb = svc(
            json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local",
            "healthCheckNodePort": 31000, "clusterIPs": ["127.96.0.3"]}),
        );
        assert_eq!(
            held(&lb),
            Held {
                ip: Some(Ipv4Addr::new(127, 96, 0, 3)),
                ports: BTreeSet::from([31000])
            }
        );
        let external = svc(json!({"type": "ExternalName", "clusterIP": "127.96.0.9"}));
        assert_eq!(held(&external), Held::default());
    }

    #[test]
    fn zero_node_ports_are_unset() {
        let mut s = svc(json!({"healthCheckNodePort": 0, "ports": [{"port": 80, "nodePort": 0}]}));
        drop_zero_ports(&mut s);
        assert_eq!(s["spec"], json!({"ports": [{"port": 80}]}));
    }

    #[test]
    fn updates_keep_what_the_client_left_out() {
        let old = svc(
            json!({"type": "NodePort", "clusterIP": "127.96.0.9", "clusterIPs": ["127.96.0.9"],
            "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
            "ports": [{"name": "a", "port": 80, "nodePort": 30080}, {"name": "b", "port": 81, "nodePort": 30081}]}),
        );
        let mut new = svc(json!({"type": "NodePort", "clusterIP": "",
            "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 82, "nodePort": 30090}, {"name": "c", "port": 83}]}));
        prepare_update(&old, &mut new);
        assert_eq!(new["spec"]["clusterIP"], "127.96.0.9");
        assert_eq!(new["spec"]["clusterIPs"], json!(["127.96.0.9"]));
        assert_eq!(new["spec"]["ipFamilyPolicy"], "SingleStack");
        let kept: Vec<i64> = ports(&new).iter().map(node_port).collect();
        assert_eq!(kept, [30080, 30090, 0], "by name; a new port gets none yet");
        assert!(validate(Some(&old), &new).is_empty());
    }

    #[test]
    fn type_changes_drop_what_no_longer_applies() {
        let old = svc(
            json!({"type": "NodePort", "clusterIP": "127.96.0.9", "clusterIPs": ["127.96.0.9"],
            "ports": [{"port": 80, "nodePort": 30080}]}),
        );
        // A patch that changes only the type leaves the node ports as they were: dropped.
        let mut to_cluster_ip = old.clone();
        to_cluster_ip["spec"]["type"] = json!("ClusterIP");
        prepare_update(&old, &mut to_cluster_ip);
        assert_eq!(ports(&to_cluster_ip)[0], json!({"port": 80}));
        assert!(validate(Some(&old), &to_cluster_ip).is_empty());
        // Changing a node port while going to ClusterIP is an error, not a silent drop.
        let mut changed = old.clone();
        changed["spec"]["type"] = json!("ClusterIP");
        changed["spec"]["ports"][0]["nodePort"] = json!(30081);
        prepare_update(&old, &mut changed);
        assert_eq!(
            messages(&validate(Some(&old), &changed)),
            ["spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"]
        );
        let mut external = old.clone();
        external["spec"]["type"] = json!("ExternalName");
        external["spec"]["externalName"] = json!("example.com");
        prepare_update(&old, &mut external);
        assert!(external["spec"].get("clusterIP").is_none());
        assert!(validate(Some(&old), &external).is_empty());
    }

    #[test]
    fn cluster_ips_are_immutable_once_set() {
        let old = svc(json!({"clusterIP": "127.96.0.9", "clusterIPs": ["127.96.0.9"]}));
        let mut moved = svc(json!({"clusterIP": "127.96.0.10", "clusterIPs": ["127.96.0.9"]}));
        prepare_update(&old, &mut moved);
        assert_eq!(
            messages(&validate(Some(&old), &moved)),
            [
                "spec.clusterIP: Invalid value: \"127.96.0.10\": field is immutable",
                "spec.clusterIPs[0]: Invalid value: [\"127.96.0.10\"]: may not change once set"
            ]
        );
        let mut headless = svc(json!({"clusterIP": "None", "clusterIPs": ["None"]}));
        prepare_update(&old, &mut headless);
        assert!(!validate(Some(&old), &headless).is_empty());
        // From ExternalName, any address may be asked for.
        let external = svc(json!({"type": "ExternalName", "externalName": "example.com"}));
        let mut back = svc(json!({"clusterIP": "127.96.0.77"}));
        prepare_update(&external, &mut back);
        assert_eq!(back["spec"]["clusterIPs"], json!(["127.96.0.77"]));
        assert!(validate(Some(&external), &back).is_empty());
    }

    #[test]
    fn invalid_combinations_are_refused_in_kubernetes_words() {
        let cases = [
            (
                json!({"type": "ExternalName", "externalName": "a.example", "clusterIP": "127.96.0.5"}),
                "spec.clusterIPs: Forbidden: may not be set for ExternalName services",
            ),
            (
                json!({"ports": [{"port": 80, "nodePort": 30080}]}),
                "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'",
            ),
            (
                json!({"type": "NodePort", "clusterIP": "None", "clusterIPs": ["None"]}),
                "spec.clusterIPs[0]: Invalid value: \"None\": may not be set to 'None' for NodePort services",
            ),
            (
                json!({"clusterIP": "banana", "clusterIPs": ["banana"]}),
                "spec.clusterIPs[0]: Invalid value: \"banana\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            ),
            (
                json!({"clusterIPs": ["127.96.0.5"]}),
                "spec.clusterIPs: Invalid value: [\"127.96.0.5\"]: must be empty when `clusterIP` is not specified",
            ),
            (
                json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}, {"port": 81, "nodePort": 30080}]}),
                "spec.ports[1].nodePort: Duplicate value: 30080",
            ),
            (
                json!({"ipFamilies": ["IPv6"]}),
                "spec.ipFamilies[0]: Invalid value: \"IPv6\": not configured on this cluster",
            ),
        ];
        for (spec, want) in cases {
            let mut s = svc(spec);
            normalize_create(&mut s);
            assert_eq!(messages(&validate(None, &s)), [want]);
        }
        // The same node port on TCP and UDP is one port, as in Kubernetes.
        let dns = svc(json!({"type": "NodePort", "ports": [
            {"port": 53, "protocol": "UDP", "nodePort": 30053}, {"port": 53, "protocol": "TCP", "nodePort": 30053}]}));
        assert!(validate(None, &dns).is_empty());
    }
}

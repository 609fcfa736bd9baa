//! The node's Lease in `kube-node-lease`: the cheap heartbeat the node-lifecycle
//! controller watches (a renewal is a few hundred bytes, a status post a few kilobytes).

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};

use super::{Error, FIELD_MANAGER, NodeSpec};

/// Where kubelets keep their Leases, one per node, named after it.
pub const NAMESPACE: &str = "kube-node-lease";

/// The Lease as this node holds it at `now`. With the Node's `uid`, the Node owns the Lease
/// (as kubelet does), so deleting the Node lets the garbage collector take the Lease too.
pub fn build(spec: &NodeSpec, node_uid: Option<&str>, now: Timestamp) -> Lease {
    let seconds = i32::try_from(spec.lease_duration.as_secs().max(1)).unwrap_or(i32::MAX);
    Lease {
        metadata: ObjectMeta {
            name: Some(spec.name.clone()),
            namespace: Some(NAMESPACE.into()),
            owner_references: node_uid.map(|uid| {
                vec![OwnerReference {
                    api_version: "v1".into(),
                    kind: "Node".into(),
                    name: spec.name.clone(),
                    uid: uid.into(),
                    ..OwnerReference::default()
                }]
            }),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(spec.name.clone()),
            lease_duration_seconds: Some(seconds),
            renew_time: Some(MicroTime(now)),
            ..LeaseSpec::default()
        }),
    }
}

/// Renews the Lease, creating it when it is missing (first start, or deleted with its Node).
pub async fn renew(api: &Api<Lease>, spec: &NodeSpec, node_uid: Option<&str>) -> Result<(), Error> {
    let now = Timestamp::now();
    let lease = build(spec, node_uid, now);
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    match api.patch(&spec.name, &params, &Patch::Merge(&lease)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => {
            let mut lease = lease;
            if let Some(spec) = lease.spec.as_mut() {
                spec.acquire_time = Some(MicroTime(now));
            }
            let params = PostParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..PostParams::default()
            };
            match api.create(&params, &lease).await {
                Ok(_) => Ok(()),
                // Lost a race with another writer of the same name: the next renewal patches.
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
                Err(e) => Err(e.into()),
            }
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_lease_names_its_holder_duration_renewal_and_owner() {
        let mut spec = NodeSpec::new("n1", IpAddr::V4(Ipv4Addr::LOCALHOST), 10250);
        spec.lease_duration = Duration::from_secs(40);
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let json = serde_json::to_value(build(&spec, Some("uid-1"), now)).unwrap();
        assert_eq!(json["metadata"]["name"], "n1");
        assert_eq!(json["metadata"]["namespace"], "kube-node-lease");
        assert_eq!(json["spec"]["holderIdentity"], "n1");
        assert_eq!(json["spec"]["leaseDurationSeconds"], 40);
        assert!(
            json["spec"]["renewTime"]
                .as_str()
                .unwrap()
                .starts_with("2027-01-15T08:00:00"),
            "{json}"
        );
        let owner = &json["metadata"]["ownerReferences"][0];
        assert_eq!(
            (&owner["kind"], &owner["name"], &owner["uid"]),
            (&"Node".into(), &"n1".into(), &"uid-1".into())
        );
        let unowned = serde_json::to_value(build(&spec, None, now)).unwrap();
        assert!(unowned["metadata"].get("ownerReferences").is_none());
    }
}

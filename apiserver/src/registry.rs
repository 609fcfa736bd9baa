//! Which resources are served: the built-in table plus custom resources, looked up by the
//! URL's group, version and plural.

use std::sync::{Arc, RwLock};

use serde_json::Value;
use sextant_api::k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceColumnDefinition;
use sextant_api::resources::{self, ResourceInfo};

/// A resource a CRD defines, with what its CRD says about its schema and columns.
#[derive(Clone, Debug, PartialEq)]
pub struct CustomKind {
    pub info: ResourceInfo,
    pub schema: Value,
    pub columns: Vec<CustomResourceColumnDefinition>,
}

/// Cheap to clone; custom resources come and go at run time.
#[derive(Clone)]
pub struct Registry {
    resources: Arc<RwLock<Vec<ResourceInfo>>>,
    custom: Arc<RwLock<Vec<CustomKind>>>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            resources: Arc::new(RwLock::new(resources::builtin())),
            custom: Arc::default(),
        }
    }
}

impl Registry {
    pub fn all(&self) -> Vec<ResourceInfo> {
        self.resources
            .read()
            .expect("registry lock poisoned")
            .clone()
    }

    pub fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<ResourceInfo> {
        let all = self.resources.read().expect("registry lock poisoned");
        all.iter()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
            .cloned()
    }

    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<ResourceInfo> {
        let all = self.resources.read().expect("registry lock poisoned");
        all.iter()
            .find(|r| r.api_version() == api_version && r.kind == kind)
            .cloned()
    }

    /// Group names in discovery order (core first is implied and not listed here).
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let all = self.resources.read().expect("registry lock poisoned");
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for r in all.iter().filter(|r| !r.group.is_empty()) {
            match out.iter_mut().find(|(g, _)| *g == r.group) {
                Some((_, versions)) => {
                    if !versions.contains(&r.version) {
                        versions.push(r.version.clone());
                    }
                }
                None => out.push((r.group.clone(), vec![r.version.clone()])),
            }
        }
        out
    }

    /// Replaces the custom resources with `custom` (built-ins stay, and win a name clash).
    pub fn set_custom(&self, custom: Vec<CustomKind>) {
        let mut all = resources::builtin();
        let mut kept = Vec::new();
        for c in custom {
            let r = &c.info;
            if !all
                .iter()
                .any(|b| b.group == r.group && b.version == r.version && b.plural == r.plural)
            {
                all.push(r.clone());
                kept.push(c);
            }
        }
        *self.resources.write().expect("registry lock poisoned") = all;
        *self.custom.write().expect("registry lock poisoned") = kept;
    }

    pub fn custom(&self) -> Vec<CustomKind> {
        self.custom.read().expect("registry lock poisoned").clone()
    }

    /// The schema a custom resource's CRD declares, `None` for a built-in one.
    pub fn custom_schema(&self, r: &ResourceInfo) -> Option<Value> {
        let custom = self.custom.read().expect("registry lock poisoned");
        custom
            .iter()
            .find(|c| c.info == *r)
            .map(|c| c.schema.clone())
            .filter(|s| s.is_object())
    }

    /// The printer columns of a custom resource, `None` for a built-in one.
    pub fn custom_columns(&self, r: &ResourceInfo) -> Option<Vec<CustomResourceColumnDefinition>> {
        let custom = self.custom.read().expect("registry lock poisoned");
        custom
            .iter()
            .find(|c| c.info == *r)
            .map(|c| c.columns.clone())
    }
}

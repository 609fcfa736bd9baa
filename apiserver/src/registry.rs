//! Which resources are served: the built-in table plus custom resources, looked up by the
//! URL's group, version and plural.

use std::sync::{Arc, RwLock};

use sextant_api::resources::{self, ResourceInfo};

/// Cheap to clone; custom resources come and go at run time.
#[derive(Clone)]
pub struct Registry {
    resources: Arc<RwLock<Vec<ResourceInfo>>>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry { resources: Arc::new(RwLock::new(resources::builtin())) }
    }
}

impl Registry {
    pub fn all(&self) -> Vec<ResourceInfo> {
        self.resources.read().expect("registry lock poisoned").clone()
    }

    pub fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<ResourceInfo> {
        let all = self.resources.read().expect("registry lock poisoned");
        all.iter().find(|r| r.group == group && r.version == version && r.plural == plural).cloned()
    }

    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<ResourceInfo> {
        let all = self.resources.read().expect("registry lock poisoned");
        all.iter().find(|r| r.api_version() == api_version && r.kind == kind).cloned()
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

    /// Replaces the custom resources with `custom` (built-ins stay).
    pub fn set_custom(&self, custom: Vec<ResourceInfo>) {
        let mut all = resources::builtin();
        for r in custom {
            if !all.iter().any(|b| b.group == r.group && b.version == r.version && b.plural == r.plural) {
                all.push(r);
            }
        }
        *self.resources.write().expect("registry lock poisoned") = all;
    }
}

//! What a module is, read from its exports: a core module with `_start` is a WASI preview 1
//! command; a component exporting `wasi:http/incoming-handler` is an HTTP service; one
//! exporting `wasi:cli/run` is a WASI preview 2 command. Linking happens here too, so a
//! module that needs imports this node lacks fails at load, not at each run.

use wasmtime::component::{Component, types::ComponentItem};
use wasmtime::{Engine, ExternType, InstancePre, Module};
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use super::WorkloadKind;
use super::error::{Error, chain};
use super::wasi::{Host, P1Host};

pub enum Compiled {
    Core(InstancePre<P1Host>),
    Command(CommandPre<Host>),
    Http(ProxyPre<Host>),
}

impl Compiled {
    pub fn kind(&self) -> WorkloadKind {
        match self {
            Compiled::Core(_) | Compiled::Command(_) => WorkloadKind::Command,
            Compiled::Http(_) => WorkloadKind::HttpService,
        }
    }
}

pub struct Linkers {
    pub core: wasmtime::Linker<P1Host>,
    pub component: wasmtime::component::Linker<Host>,
}

impl Linkers {
    pub fn new(engine: &Engine) -> wasmtime::Result<Linkers> {
        let mut core = wasmtime::Linker::new(engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut core, |h: &mut P1Host| &mut h.wasi)?;
        let mut component = wasmtime::component::Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut component)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut component)?;
        Ok(Linkers { core, component })
    }
}

/// Compiles `wasm` (through the engine's on-disk cache) and links it. Blocking: call it off
/// the async threads.
pub fn compile(
    engine: &Engine,
    linkers: &Linkers,
    digest: &str,
    wasm: &[u8],
) -> Result<Compiled, Error> {
    let compile_error = |e: wasmtime::Error| Error::Compile {
        digest: digest.to_owned(),
        message: chain(&e),
    };
    let link_error = |e: wasmtime::Error| Error::Link(chain(&e));
    if is_component(wasm) {
        let component = Component::new(engine, wasm).map_err(compile_error)?;
        let exports = exported_interfaces(engine, &component);
        let has = |name: &str| exports.iter().any(|e| e == name);
        if has("wasi:http/incoming-handler") {
            let pre = linkers
                .component
                .instantiate_pre(&component)
                .map_err(link_error)?;
            return Ok(Compiled::Http(ProxyPre::new(pre).map_err(link_error)?));
        }
        if has("wasi:cli/run") {
            let pre = linkers
                .component
                .instantiate_pre(&component)
                .map_err(link_error)?;
            return Ok(Compiled::Command(CommandPre::new(pre).map_err(link_error)?));
        }
        Err(Error::NoEntryPoint)
    } else {
        let module = Module::new(engine, wasm).map_err(compile_error)?;
        match module.get_export("_start") {
            Some(ExternType::Func(_)) => {}
            _ => return Err(Error::NoEntryPoint),
        }
        let pre = linkers.core.instantiate_pre(&module).map_err(link_error)?;
        Ok(Compiled::Core(pre))
    }
}

/// A binary component's preamble says layer 1 (bytes 6..8), a core module's layer 0.
fn is_component(wasm: &[u8]) -> bool {
    wasm.len() >= 8 && wasm.starts_with(b"\0asm") && wasm[6..8] == [1, 0]
}

/// The component's exported instance names without their version (`wasi:cli/run`).
fn exported_interfaces(engine: &Engine, component: &Component) -> Vec<String> {
    let ty = component.component_type();
    ty.exports(engine)
        .filter(|(_, item)| matches!(item.ty, ComponentItem::ComponentInstance(_)))
        .map(|(name, _)| name.split('@').next().unwrap_or(name).to_owned())
        .collect()
}

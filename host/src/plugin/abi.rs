//! The host side of the proxy-wasm 0.2.1 ABI and the WASI calls such modules import.
//!
//! Every guest pointer and length is treated as hostile: lengths are capped before the host
//! allocates, ranges are bounds-checked against the guest's memory, and a bad one answers the
//! ABI's `InvalidMemoryAccess` or `BadArgument` status instead of trapping the host. Calls the
//! host does not offer are linked too and answer `Unimplemented`, so real-world modules load.
//! docs/abi.md lists what is covered.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use wasmtime::{
    Caller, Engine, FuncType, Linker, Memory, Module, Store, StoreLimits, TypedFunc, Val, ValType,
};

use super::stream::{HeaderNames, LocalResponse, MAX_PAIRS, MapMut, Stream};

/// proxy-wasm status codes (the spec's `proxy_status_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub(crate) enum Status {
    Ok = 0,
    NotFound = 1,
    BadArgument = 2,
    SerializationFailure = 3,
    InvalidMemoryAccess = 6,
    Unimplemented = 12,
}

type Answer = wasmtime::Result<i32>;

/// The value of a host-call step, or the step's status answered to the guest.
macro_rules! or_answer {
    ($step:expr) => {
        match $step {
            Ok(value) => value,
            Err(status) => return ok(status),
        }
    };
}

fn ok(status: Status) -> Answer {
    Ok(status as i32)
}

/// Longest header name or value, property path, or log line a plugin may hand the host.
const MAX_ITEM: usize = 64 * 1024;
/// Largest serialized header map or local response body a plugin may hand the host.
const MAX_BLOB: usize = 1024 * 1024;

/// The map and buffer types of the spec.
const MAP_REQUEST_HEADERS: i32 = 0;
const MAP_REQUEST_TRAILERS: i32 = 1;
const MAP_RESPONSE_HEADERS: i32 = 2;
const MAP_RESPONSE_TRAILERS: i32 = 3;
const BUFFER_VM_CONFIGURATION: i32 = 6;
const BUFFER_PLUGIN_CONFIGURATION: i32 = 7;

/// WASI errno values used here.
const WASI_SUCCESS: i32 = 0;
const WASI_EBADF: i32 = 8;
const WASI_EINVAL: i32 = 28;
const WASI_ENOSYS: i32 = 52;

/// The callback the host is in, which decides what a host call may touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Start-up, configuration, context creation.
    Root,
    /// `proxy_on_request_headers`: the request map is writable.
    RequestHeaders,
    /// `proxy_on_response_headers`: the response map is writable.
    ResponseHeaders,
    /// `proxy_on_done`, `proxy_on_log`, `proxy_on_delete`: read only.
    Log,
}

/// The per-instance state host calls work on.
pub(crate) struct HostState {
    pub(crate) limits: StoreLimits,
    pub(crate) plugin: Arc<str>,
    pub(crate) plugin_config: Arc<[u8]>,
    pub(crate) memory: Option<Memory>,
    /// The guest's allocator. In an `Arc`: cloning a `TypedFunc` clones its registered type
    /// (five atomic reference counts up, then down) and every value handed over needs one.
    pub(crate) alloc: Option<Arc<TypedFunc<i32, i32>>>,
    /// The request being worked on, swapped in for the length of one HTTP callback.
    pub(crate) stream: Option<Box<Stream>>,
    /// An empty stream left in the caller's place while its own is in here: swapping two boxes
    /// moves no request data and allocates nothing.
    pub(crate) spare: Option<Box<Stream>>,
    pub(crate) phase: Phase,
    /// Warnings and errors the plugin logged while starting, quoted in a load error.
    pub(crate) start_log: Option<Vec<String>>,
    /// A buffer kept between host calls for values handed to the guest, so reading a header
    /// does not allocate.
    scratch: Vec<u8>,
    /// The header names this instance's plugin has used, parsed once.
    names: HeaderNames,
}

impl HostState {
    pub(crate) fn new(plugin: Arc<str>, config: Arc<[u8]>, limits: StoreLimits) -> HostState {
        HostState {
            limits,
            plugin,
            plugin_config: config,
            memory: None,
            alloc: None,
            stream: None,
            spare: None,
            phase: Phase::Root,
            start_log: Some(Vec::new()),
            scratch: Vec::new(),
            names: HeaderNames::default(),
        }
    }
}

/// Checks the exports that make a module a proxy-wasm 0.2.x module.
pub(crate) fn check_exports(module: &Module) -> Result<(), String> {
    let exports: HashSet<&str> = module.exports().map(|e| e.name()).collect();
    if !exports.contains("proxy_abi_version_0_2_1") && !exports.contains("proxy_abi_version_0_2_0")
    {
        return Err(
            "missing export proxy_abi_version_0_2_1 (built for another proxy-wasm ABI version?)"
                .into(),
        );
    }
    for required in ["memory", "proxy_on_context_create"] {
        if !exports.contains(required) {
            return Err(format!("missing export {required}"));
        }
    }
    if !exports.contains("proxy_on_memory_allocate") && !exports.contains("malloc") {
        return Err("missing export proxy_on_memory_allocate (or malloc)".into());
    }
    Ok(())
}

/// The host calls this host implements, by (module, name).
fn defined_names(engine: &Engine, linker: &Linker<HostState>) -> HashSet<(String, String)> {
    let mut store = Store::new(
        engine,
        HostState::new("".into(), Arc::from(&[][..]), StoreLimits::default()),
    );
    linker
        .iter(&mut store)
        .map(|(m, n, _)| (m.to_string(), n.to_string()))
        .collect()
}

/// A linker for `module`: the shared host calls, plus an `Unimplemented` (proxy-wasm) or
/// `ENOSYS`/`EBADF` (WASI) answer for every other call of those two families it imports. An
/// import from any other module is refused with its name.
pub(crate) fn linker_for(
    base: &Linker<HostState>,
    module: &Module,
) -> Result<Linker<HostState>, String> {
    let defined = defined_names(module.engine(), base);
    let mut linker = base.clone();
    for import in module.imports() {
        let (m, n) = (import.module(), import.name());
        if defined.contains(&(m.to_string(), n.to_string())) {
            continue;
        }
        let Some(ty) = import.ty().func().cloned() else {
            return Err(format!("imports {m}.{n}, which is not a function"));
        };
        let answer = match m {
            // AssemblyScript's runtime reports a failed assertion through env.abort: a trap.
            "env" if n == "abort" => {
                linker
                    .func_new(m, n, ty, |_, _, _| {
                        Err(wasmtime::Error::msg("the plugin called abort"))
                    })
                    .map_err(|e| format!("{e:#}"))?;
                continue;
            }
            "env" if n.starts_with("proxy_") => Status::Unimplemented as i32,
            "wasi_snapshot_preview1" | "wasi_unstable" if n.starts_with("fd_") => WASI_EBADF,
            "wasi_snapshot_preview1" | "wasi_unstable" => WASI_ENOSYS,
            _ => return Err(format!("imports {m}.{n}, which wasmgate does not provide")),
        };
        define_constant(&mut linker, m, n, ty, answer).map_err(|e| format!("{e:#}"))?;
    }
    Ok(linker)
}

/// Defines `module.name` as a function of type `ty` that returns `answer` (and zero for any
/// further results).
fn define_constant(
    linker: &mut Linker<HostState>,
    module: &str,
    name: &str,
    ty: FuncType,
    answer: i32,
) -> wasmtime::Result<()> {
    // The values are built from the declared result types: wasmtime hands the closure result
    // slots that do not carry their type.
    let values: Vec<Val> = ty
        .results()
        .enumerate()
        .map(|(i, t)| match t {
            ValType::I32 if i == 0 => Val::I32(answer),
            ValType::I32 => Val::I32(0),
            ValType::I64 => Val::I64(0),
            ValType::F32 => Val::F32(0),
            ValType::F64 => Val::F64(0),
            ValType::V128 => Val::V128(0u128.into()),
            ValType::Ref(r) => Val::null_ref(r.heap_type()),
        })
        .collect();
    linker.func_new(module, name, ty, move |_caller, _params, results| {
        results.clone_from_slice(&values);
        Ok(())
    })?;
    Ok(())
}

// ---- guest memory ---------------------------------------------------------------------------

fn memory(caller: &Caller<'_, HostState>) -> Result<Memory, Status> {
    caller.data().memory.ok_or(Status::InvalidMemoryAccess)
}

/// The guest range `ptr..ptr+len`, checked against `max` and the memory's size.
fn range(data: &[u8], ptr: i32, len: i32, max: usize) -> Result<std::ops::Range<usize>, Status> {
    let (ptr, len) = (ptr as u32 as usize, len as u32 as usize);
    if len > max {
        return Err(Status::BadArgument);
    }
    let end = ptr.checked_add(len).ok_or(Status::InvalidMemoryAccess)?;
    if end > data.len() {
        return Err(Status::InvalidMemoryAccess);
    }
    Ok(ptr..end)
}

/// Copies `len` bytes at `ptr` out of the guest.
fn read(caller: &Caller<'_, HostState>, ptr: i32, len: i32, max: usize) -> Result<Vec<u8>, Status> {
    let data = memory(caller)?.data(caller);
    Ok(data[range(data, ptr, len, max)?].to_vec())
}

/// The guest's memory and the host state at once, so a host call can use its arguments where
/// they are in guest memory instead of copying them out first.
fn memory_and_state<'a>(
    caller: &'a mut Caller<'_, HostState>,
) -> Result<(&'a mut [u8], &'a mut HostState), Status> {
    let mem = memory(caller)?;
    Ok(mem.data_and_store_mut(caller))
}

fn write(caller: &mut Caller<'_, HostState>, ptr: i32, bytes: &[u8]) -> Result<(), Status> {
    let mem = memory(caller)?;
    let data = mem.data_mut(caller);
    let r = range(data, ptr, bytes.len() as i32, usize::MAX)?;
    data[r].copy_from_slice(bytes);
    Ok(())
}

fn write_u32(caller: &mut Caller<'_, HostState>, ptr: i32, value: u32) -> Result<(), Status> {
    write(caller, ptr, &value.to_le_bytes())
}

/// Hands `bytes` to the guest: allocates a copy with the guest's allocator and writes its
/// pointer and length at `ret_ptr` and `ret_len`. A trap in the allocator is the guest's
/// failure and propagates.
fn hand_over(
    caller: &mut Caller<'_, HostState>,
    bytes: &[u8],
    ret_ptr: i32,
    ret_len: i32,
) -> Answer {
    let Ok(len) = i32::try_from(bytes.len()) else {
        return ok(Status::BadArgument);
    };
    // As the reference host does: nothing to hand over is a null pointer and a zero length,
    // without a call into the guest's allocator.
    if len == 0 {
        let result = write_u32(caller, ret_ptr, 0).and_then(|()| write_u32(caller, ret_len, 0));
        return ok(result.err().unwrap_or(Status::Ok));
    }
    // Cloned, not taken out: an allocator may itself make host calls that hand bytes over.
    let Some(alloc) = caller.data().alloc.clone() else {
        return ok(Status::InvalidMemoryAccess);
    };
    let ptr = alloc.call(&mut *caller, len)?;
    if ptr == 0 && len > 0 {
        return ok(Status::InvalidMemoryAccess);
    }
    let result = write(caller, ptr, bytes)
        .and_then(|()| write_u32(caller, ret_ptr, ptr as u32))
        .and_then(|()| write_u32(caller, ret_len, len as u32));
    ok(result.err().unwrap_or(Status::Ok))
}

// ---- header maps ----------------------------------------------------------------------------

/// The spec's serialized map of `pairs` (the inverse of [`deserialize_pairs`]).
pub(crate) fn serialize_pairs<K: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(K, V)]) -> Vec<u8> {
    let size: usize = 4 + pairs
        .iter()
        .map(|(k, v)| 8 + k.as_ref().len() + v.as_ref().len() + 2)
        .sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (k, v) in pairs {
        out.extend_from_slice(&(k.as_ref().len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.as_ref().len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_ref());
        out.push(0);
        out.extend_from_slice(v.as_ref());
        out.push(0);
    }
    out
}

/// Parses the spec's serialized map: a u32 count, `count` pairs of u32 lengths, then each key and
/// value followed by a NUL byte.
pub(crate) fn deserialize_pairs(bytes: &[u8]) -> Option<Vec<(&[u8], &[u8])>> {
    let u32_at = |at: usize| -> Option<usize> {
        Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?) as usize)
    };
    let count = u32_at(0)?;
    let mut data = 4usize.checked_add(count.checked_mul(8)?)?;
    if data > bytes.len() {
        return None;
    }
    let mut pairs = Vec::with_capacity(count);
    for i in 0..count {
        let (klen, vlen) = (u32_at(4 + i * 8)?, u32_at(8 + i * 8)?);
        let key = bytes.get(data..data.checked_add(klen)?)?;
        data += klen;
        if bytes.get(data) != Some(&0) {
            return None;
        }
        data += 1;
        let value = bytes.get(data..data.checked_add(vlen)?)?;
        data += vlen;
        if bytes.get(data) != Some(&0) {
            return None;
        }
        data += 1;
        pairs.push((key, value));
    }
    Some(pairs)
}

/// The map a call names, if the current phase has it. `write` asks for a writable map.
fn map_for(state: &mut HostState, map_type: i32, write: bool) -> Result<MapMut<'_>, Status> {
    map_and_names(state, map_type, write).map(|(map, _)| map)
}

/// [`map_for`], with the instance's parsed header names beside it.
fn map_and_names(
    state: &mut HostState,
    map_type: i32,
    write: bool,
) -> Result<(MapMut<'_>, &mut HeaderNames), Status> {
    let HostState {
        phase,
        stream,
        names,
        ..
    } = state;
    let stream = stream.as_mut().ok_or(Status::NotFound)?;
    let map = match map_type {
        MAP_REQUEST_HEADERS => {
            if write && *phase != Phase::RequestHeaders {
                return Err(Status::BadArgument);
            }
            MapMut::Request(&mut stream.request)
        }
        MAP_RESPONSE_HEADERS => {
            if write && *phase != Phase::ResponseHeaders {
                return Err(Status::BadArgument);
            }
            stream
                .response
                .as_mut()
                .map(MapMut::Response)
                .ok_or(Status::NotFound)?
        }
        _ => return Err(Status::BadArgument),
    };
    Ok((map, names))
}

fn is_trailers(map_type: i32) -> bool {
    matches!(map_type, MAP_REQUEST_TRAILERS | MAP_RESPONSE_TRAILERS)
}

fn get_header_map_pairs(
    mut caller: Caller<'_, HostState>,
    map_type: i32,
    ret_ptr: i32,
    ret_len: i32,
) -> Answer {
    // Trailers are not forwarded yet: they read as an empty map.
    let pairs = if is_trailers(map_type) {
        Vec::new()
    } else {
        or_answer!(map_for(caller.data_mut(), map_type, false)).pairs()
    };
    let bytes = serialize_pairs(&pairs);
    hand_over(&mut caller, &bytes, ret_ptr, ret_len)
}

fn get_header_map_size(mut caller: Caller<'_, HostState>, map_type: i32, ret_size: i32) -> Answer {
    // Trailers read as an empty map, as in get_header_map_pairs.
    let size = if is_trailers(map_type) {
        serialize_pairs::<&[u8], &[u8]>(&[]).len()
    } else {
        serialize_pairs(&or_answer!(map_for(caller.data_mut(), map_type, false)).pairs()).len()
    };
    ok(write_u32(&mut caller, ret_size, size as u32)
        .err()
        .unwrap_or(Status::Ok))
}

fn set_header_map_pairs(
    mut caller: Caller<'_, HostState>,
    map_type: i32,
    ptr: i32,
    len: i32,
) -> Answer {
    let bytes = or_answer!(read(&caller, ptr, len, MAX_BLOB));
    let Some(pairs) = deserialize_pairs(&bytes) else {
        return ok(Status::SerializationFailure);
    };
    let status = match map_for(caller.data_mut(), map_type, true) {
        Ok(mut map) => map
            .set_all(&pairs)
            .map_or(Status::BadArgument, |()| Status::Ok),
        Err(status) => status,
    };
    ok(status)
}

fn get_header_map_value(
    mut caller: Caller<'_, HostState>,
    map_type: i32,
    key_ptr: i32,
    key_len: i32,
    ret_ptr: i32,
    ret_len: i32,
) -> Answer {
    // The value is gathered in the state's scratch buffer, taken out for the length of the call
    // (handing it over calls into the guest, which needs the store).
    let mut value = std::mem::take(&mut caller.data_mut().scratch);
    value.clear();
    let found = (|| {
        let (data, state) = memory_and_state(&mut caller)?;
        let key = &data[range(data, key_ptr, key_len, MAX_ITEM)?];
        if is_trailers(map_type) {
            return Err(Status::NotFound);
        }
        let (map, names) = map_and_names(state, map_type, false)?;
        if map.get_into(key, names, &mut value) {
            Ok(())
        } else {
            Err(Status::NotFound)
        }
    })();
    let answer = match found {
        Ok(()) => hand_over(&mut caller, &value, ret_ptr, ret_len),
        Err(status) => ok(status),
    };
    caller.data_mut().scratch = value;
    answer
}

/// How a single-header edit changes the map.
#[derive(Clone, Copy)]
enum Edit {
    Add,
    Replace,
}

fn edit_header(
    mut caller: Caller<'_, HostState>,
    edit: Edit,
    map_type: i32,
    key: (i32, i32),
    value: (i32, i32),
) -> Answer {
    // Name and value are used where they are in guest memory: the map copies what it keeps.
    let (data, state) = or_answer!(memory_and_state(&mut caller));
    let (key, value) = match (
        range(data, key.0, key.1, MAX_ITEM),
        range(data, value.0, value.1, MAX_ITEM),
    ) {
        (Ok(k), Ok(v)) => (&data[k], &data[v]),
        (Err(status), _) | (_, Err(status)) => return ok(status),
    };
    let status = match map_and_names(state, map_type, true) {
        Ok((mut map, names)) => {
            let result = match edit {
                Edit::Add => map.add(key, value, names),
                Edit::Replace => map.replace(key, value, names),
            };
            result.map_or(Status::BadArgument, |()| Status::Ok)
        }
        Err(status) => status,
    };
    ok(status)
}

fn remove_header(
    mut caller: Caller<'_, HostState>,
    map_type: i32,
    key_ptr: i32,
    key_len: i32,
) -> Answer {
    let (data, state) = or_answer!(memory_and_state(&mut caller));
    let key = &data[or_answer!(range(data, key_ptr, key_len, MAX_ITEM))];
    let status = match map_and_names(state, map_type, true) {
        Ok((mut map, names)) => map
            .remove(key, names)
            .map_or(Status::BadArgument, |()| Status::Ok),
        Err(status) => status,
    };
    ok(status)
}

// ---- buffers --------------------------------------------------------------------------------

fn buffer(state: &HostState, buffer_type: i32) -> Result<Arc<[u8]>, Status> {
    match buffer_type {
        BUFFER_PLUGIN_CONFIGURATION => Ok(state.plugin_config.clone()),
        BUFFER_VM_CONFIGURATION => Ok(Arc::from(&[][..])),
        // Bodies are streamed without plugins seeing them yet (docs/abi.md).
        0..=5 => Err(Status::NotFound),
        _ => Err(Status::BadArgument),
    }
}

fn get_buffer_bytes(
    mut caller: Caller<'_, HostState>,
    buffer_type: i32,
    start: i32,
    max_len: i32,
    ret_ptr: i32,
    ret_len: i32,
) -> Answer {
    let data = or_answer!(buffer(caller.data(), buffer_type));
    let start = (start as u32 as usize).min(data.len());
    let end = start
        .saturating_add(max_len as u32 as usize)
        .min(data.len());
    hand_over(&mut caller, &data[start..end], ret_ptr, ret_len)
}

fn get_buffer_status(
    mut caller: Caller<'_, HostState>,
    buffer_type: i32,
    len_ptr: i32,
    flags_ptr: i32,
) -> Answer {
    let len = or_answer!(buffer(caller.data(), buffer_type)).len() as u32;
    let result =
        write_u32(&mut caller, len_ptr, len).and_then(|()| write_u32(&mut caller, flags_ptr, 0));
    ok(result.err().unwrap_or(Status::Ok))
}

// ---- local responses ------------------------------------------------------------------------

#[allow(clippy::too_many_arguments)]
fn send_local_response(
    mut caller: Caller<'_, HostState>,
    status_code: i32,
    details_ptr: i32,
    details_len: i32,
    body_ptr: i32,
    body_len: i32,
    headers_ptr: i32,
    headers_len: i32,
    _grpc_status: i32,
) -> Answer {
    let details = or_answer!(read(&caller, details_ptr, details_len, MAX_ITEM));
    let body = or_answer!(read(&caller, body_ptr, body_len, MAX_BLOB));
    let header_bytes = or_answer!(read(&caller, headers_ptr, headers_len, MAX_BLOB));
    let state = caller.data_mut();
    if !matches!(state.phase, Phase::RequestHeaders | Phase::ResponseHeaders) {
        return ok(Status::BadArgument);
    }
    let plugin = state.plugin.clone();
    let Some(stream) = state.stream.as_mut() else {
        return ok(Status::NotFound);
    };
    // One answer per request: a second one is refused (Envoy crashed on this, #23047).
    if stream.local_response.is_some() {
        return ok(Status::BadArgument);
    }
    let status = match u16::try_from(status_code)
        .ok()
        .and_then(|c| StatusCode::from_u16(c).ok())
    {
        Some(s) if (200..=599).contains(&s.as_u16()) => s,
        _ => return ok(Status::BadArgument),
    };
    let pairs = if header_bytes.is_empty() {
        Vec::new()
    } else {
        match deserialize_pairs(&header_bytes) {
            Some(p) => p,
            None => return ok(Status::SerializationFailure),
        }
    };
    if pairs.len() > MAX_PAIRS {
        return ok(Status::BadArgument);
    }
    let mut headers = HeaderMap::with_capacity(pairs.len());
    for (k, v) in pairs {
        match (
            http::HeaderName::from_bytes(k),
            http::HeaderValue::from_bytes(v),
        ) {
            (Ok(k), Ok(v)) => {
                if headers.try_append(k, v).is_err() {
                    return ok(Status::BadArgument);
                }
            }
            _ => return ok(Status::BadArgument),
        }
    }
    stream.local_response = Some(LocalResponse {
        status,
        headers,
        body: Bytes::from(body),
        details: String::from_utf8_lossy(&details).into_owned(),
        plugin,
    });
    ok(Status::Ok)
}

// ---- properties -----------------------------------------------------------------------------

/// A property's value: strings as their bytes, integers as 8 little-endian bytes (as Envoy).
fn property(state: &HostState, path: &[u8]) -> Option<Vec<u8>> {
    let segments: Vec<&[u8]> = path.split(|&b| b == 0).filter(|s| !s.is_empty()).collect();
    let text = |s: &str| Some(s.as_bytes().to_vec());
    let int = |i: i64| Some(i.to_le_bytes().to_vec());
    if let [b"plugin_name"] = segments.as_slice() {
        return text(&state.plugin);
    }
    let stream = state.stream.as_ref()?;
    let info = stream.info.as_ref();
    let request = &stream.request;
    match segments.as_slice() {
        [b"route_name"] | [b"xds", b"route_name"] => text(&info?.route),
        [b"request", b"path"] => text(&request.path),
        [b"request", b"url_path"] => text(request.path.split('?').next().unwrap_or("/")),
        [b"request", b"query"] => text(request.path.split_once('?').map_or("", |(_, q)| q)),
        [b"request", b"host"] => text(&request.authority),
        [b"request", b"scheme"] => text(request.scheme),
        [b"request", b"method"] => text(request.method.as_str()),
        [b"request", b"protocol"] => text(info?.protocol),
        [b"request", b"id"] => text(&info?.id),
        [b"source", b"address"] => text(&info?.source.to_string()),
        [b"source", b"port"] => int(i64::from(info?.source.port())),
        [b"destination", b"address"] => text(&info?.destination.to_string()),
        [b"destination", b"port"] => int(i64::from(info?.destination.port())),
        [b"response", b"code"] => int(i64::from(stream.response.as_ref()?.status.as_u16())),
        _ => None,
    }
}

fn get_property(
    mut caller: Caller<'_, HostState>,
    path_ptr: i32,
    path_len: i32,
    ret_ptr: i32,
    ret_len: i32,
) -> Answer {
    let path = or_answer!(read(&caller, path_ptr, path_len, MAX_ITEM));
    match property(caller.data(), &path) {
        Some(value) => hand_over(&mut caller, &value, ret_ptr, ret_len),
        None => ok(Status::NotFound),
    }
}

// ---- logging and time -----------------------------------------------------------------------

/// Whether a plugin's line at `level` goes anywhere: the log filter wants it, or it is a warning
/// or error while the plugin starts (quoted in a load error).
fn log_wanted(state: &HostState, level: i32) -> bool {
    use tracing::Level;
    let enabled = match level {
        0 => tracing::enabled!(target: "wasmgate::plugin", Level::TRACE),
        1 => tracing::enabled!(target: "wasmgate::plugin", Level::DEBUG),
        2 => tracing::enabled!(target: "wasmgate::plugin", Level::INFO),
        3 => tracing::enabled!(target: "wasmgate::plugin", Level::WARN),
        _ => tracing::enabled!(target: "wasmgate::plugin", Level::ERROR),
    };
    enabled || (level >= 3 && state.start_log.is_some())
}

fn log(state: &mut HostState, level: i32, message: &[u8]) {
    // Plugins log on every request at debug level; with the filter off, the line is neither
    // copied nor converted.
    if !log_wanted(state, level) {
        return;
    }
    let message = String::from_utf8_lossy(message);
    let plugin = &*state.plugin;
    match level {
        0 => tracing::trace!(target: "wasmgate::plugin", plugin, "{message}"),
        1 => tracing::debug!(target: "wasmgate::plugin", plugin, "{message}"),
        2 => tracing::info!(target: "wasmgate::plugin", plugin, "{message}"),
        3 => tracing::warn!(target: "wasmgate::plugin", plugin, "{message}"),
        _ => tracing::error!(target: "wasmgate::plugin", plugin, "{message}"),
    }
    if level >= 3
        && let Some(lines) = &mut state.start_log
        && lines.len() < 16
    {
        lines.push(message.into_owned());
    }
}

fn proxy_log(mut caller: Caller<'_, HostState>, level: i32, ptr: i32, len: i32) -> Answer {
    let (data, state) = or_answer!(memory_and_state(&mut caller));
    let message = &data[or_answer!(range(data, ptr, len, MAX_ITEM))];
    log(state, level, message);
    ok(Status::Ok)
}

fn log_level() -> u32 {
    use tracing::level_filters::LevelFilter;
    match LevelFilter::current() {
        LevelFilter::TRACE => 0,
        LevelFilter::DEBUG => 1,
        LevelFilter::INFO => 2,
        LevelFilter::WARN => 3,
        LevelFilter::ERROR => 4,
        _ => 5,
    }
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

// ---- WASI -----------------------------------------------------------------------------------

/// `fd_write` to stdout or stderr becomes a log line (info or warn); other descriptors do not
/// exist for a plugin.
fn fd_write(
    mut caller: Caller<'_, HostState>,
    fd: i32,
    iovs: i32,
    iovs_len: i32,
    ret_written: i32,
) -> Answer {
    if fd != 1 && fd != 2 {
        return Ok(WASI_EBADF);
    }
    let Ok(table) = read(&caller, iovs, iovs_len.saturating_mul(8), MAX_ITEM) else {
        return Ok(WASI_EINVAL);
    };
    let mut text = Vec::new();
    for iov in table.chunks_exact(8) {
        let ptr = i32::from_le_bytes([iov[0], iov[1], iov[2], iov[3]]);
        let len = i32::from_le_bytes([iov[4], iov[5], iov[6], iov[7]]);
        match read(&caller, ptr, len, MAX_ITEM) {
            Ok(bytes) if text.len() + bytes.len() <= MAX_ITEM => text.extend_from_slice(&bytes),
            _ => return Ok(WASI_EINVAL),
        }
    }
    let written = text.len() as u32;
    let trimmed = text.strip_suffix(b"\n").unwrap_or(&text);
    if !trimmed.is_empty() {
        log(caller.data_mut(), if fd == 1 { 2 } else { 3 }, trimmed);
    }
    Ok(write_u32(&mut caller, ret_written, written).map_or(WASI_EINVAL, |()| WASI_SUCCESS))
}

fn write_pair(caller: &mut Caller<'_, HostState>, a_ptr: i32, b_ptr: i32) -> i32 {
    match write_u32(caller, a_ptr, 0).and_then(|()| write_u32(caller, b_ptr, 0)) {
        Ok(()) => WASI_SUCCESS,
        Err(_) => WASI_EINVAL,
    }
}

fn clock_time_get(
    mut caller: Caller<'_, HostState>,
    clock: i32,
    _precision: i64,
    ret: i32,
) -> Answer {
    let nanos = match clock {
        // Realtime; monotonic is served from the same clock, which is monotonic enough for
        // plugins' timing and never goes backwards within one call.
        0 | 1 => now_nanos(),
        _ => return Ok(WASI_EINVAL),
    };
    Ok(write(&mut caller, ret, &nanos.to_le_bytes()).map_or(WASI_EINVAL, |()| WASI_SUCCESS))
}

fn random_get(mut caller: Caller<'_, HostState>, ptr: i32, len: i32) -> Answer {
    let Ok(mem) = memory(&caller) else {
        return Ok(WASI_EINVAL);
    };
    let data = mem.data_mut(&mut caller);
    let Ok(r) = range(data, ptr, len, MAX_BLOB) else {
        return Ok(WASI_EINVAL);
    };
    Ok(getrandom::fill(&mut data[r]).map_or(WASI_EINVAL, |()| WASI_SUCCESS))
}

// ---- the linker -----------------------------------------------------------------------------

/// The linker with every host call this host implements.
pub(crate) fn linker(engine: &Engine) -> wasmtime::Result<Linker<HostState>> {
    let mut l = Linker::new(engine);
    const ENV: &str = "env";
    l.func_wrap(ENV, "proxy_log", proxy_log)?;
    l.func_wrap(
        ENV,
        "proxy_get_log_level",
        |mut c: Caller<'_, HostState>, ret: i32| {
            // While the plugin starts, its warnings are kept for the load error whatever the
            // filter says (`log_wanted`): an SDK that asks first must still send them.
            let level = match c.data().start_log {
                Some(_) => log_level().min(3),
                None => log_level(),
            };
            ok(write_u32(&mut c, ret, level).err().unwrap_or(Status::Ok))
        },
    )?;
    l.func_wrap(
        ENV,
        "proxy_get_current_time_nanoseconds",
        |mut c: Caller<'_, HostState>, ret: i32| {
            ok(write(&mut c, ret, &now_nanos().to_le_bytes())
                .err()
                .unwrap_or(Status::Ok))
        },
    )?;
    l.func_wrap(ENV, "proxy_get_buffer_bytes", get_buffer_bytes)?;
    l.func_wrap(ENV, "proxy_get_buffer_status", get_buffer_status)?;
    l.func_wrap(ENV, "proxy_get_header_map_pairs", get_header_map_pairs)?;
    l.func_wrap(ENV, "proxy_get_header_map_size", get_header_map_size)?;
    l.func_wrap(ENV, "proxy_set_header_map_pairs", set_header_map_pairs)?;
    l.func_wrap(ENV, "proxy_get_header_map_value", get_header_map_value)?;
    l.func_wrap(
        ENV,
        "proxy_add_header_map_value",
        |c: Caller<'_, HostState>, map: i32, kp: i32, kl: i32, vp: i32, vl: i32| {
            edit_header(c, Edit::Add, map, (kp, kl), (vp, vl))
        },
    )?;
    l.func_wrap(
        ENV,
        "proxy_replace_header_map_value",
        |c: Caller<'_, HostState>, map: i32, kp: i32, kl: i32, vp: i32, vl: i32| {
            edit_header(c, Edit::Replace, map, (kp, kl), (vp, vl))
        },
    )?;
    l.func_wrap(ENV, "proxy_remove_header_map_value", remove_header)?;
    l.func_wrap(ENV, "proxy_send_local_response", send_local_response)?;
    l.func_wrap(ENV, "proxy_get_property", get_property)?;
    // Calls are never left paused, so continuing the current stream is already what happens.
    l.func_wrap(
        ENV,
        "proxy_continue_stream",
        |c: Caller<'_, HostState>, _stream: i32| {
            ok(if c.data().stream.is_some() {
                Status::Ok
            } else {
                Status::NotFound
            })
        },
    )?;
    // Only one context is ever being called, and the guest's own calls name it.
    l.func_wrap(
        ENV,
        "proxy_set_effective_context",
        |_: Caller<'_, HostState>, _ctx: i32| ok(Status::Ok),
    )?;

    const WASI: &str = "wasi_snapshot_preview1";
    l.func_wrap(WASI, "fd_write", fd_write)?;
    l.func_wrap(
        WASI,
        "environ_sizes_get",
        |mut c: Caller<'_, HostState>, n: i32, s: i32| Ok(write_pair(&mut c, n, s)),
    )?;
    l.func_wrap(
        WASI,
        "args_sizes_get",
        |mut c: Caller<'_, HostState>, n: i32, s: i32| Ok(write_pair(&mut c, n, s)),
    )?;
    l.func_wrap(
        WASI,
        "environ_get",
        |_: Caller<'_, HostState>, _: i32, _: i32| Ok(WASI_SUCCESS),
    )?;
    l.func_wrap(
        WASI,
        "args_get",
        |_: Caller<'_, HostState>, _: i32, _: i32| Ok(WASI_SUCCESS),
    )?;
    l.func_wrap(WASI, "clock_time_get", clock_time_get)?;
    l.func_wrap(WASI, "random_get", random_get)?;
    l.func_wrap(WASI, "sched_yield", |_: Caller<'_, HostState>| {
        Ok(WASI_SUCCESS)
    })?;
    l.func_wrap(
        WASI,
        "proc_exit",
        |_: Caller<'_, HostState>, code: i32| -> wasmtime::Result<()> {
            Err(wasmtime::Error::msg(format!(
                "the plugin called proc_exit({code})"
            )))
        },
    )?;
    Ok(l)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_round_trip_and_malformed_maps_are_refused() {
        let pairs = vec![
            (b":path".to_vec(), b"/x".to_vec()),
            (b"apikey".to_vec(), b"".to_vec()),
        ];
        let bytes = serialize_pairs(&pairs);
        let back = deserialize_pairs(&bytes).unwrap();
        assert_eq!(
            back,
            vec![(&b":path"[..], &b"/x"[..]), (&b"apikey"[..], &b""[..])]
        );
        // Truncated, missing NUL, huge count.
        assert!(deserialize_pairs(&bytes[..bytes.len() - 1]).is_none());
        let mut no_nul = bytes.clone();
        let last = no_nul.len() - 1;
        no_nul[last] = b'x';
        assert!(deserialize_pairs(&no_nul).is_none());
        assert!(deserialize_pairs(&u32::MAX.to_le_bytes()).is_none());
        assert!(deserialize_pairs(&[1, 0]).is_none());
    }

    #[test]
    fn ranges_are_checked() {
        let data = [0u8; 16];
        assert_eq!(range(&data, 0, 16, 64), Ok(0..16));
        assert_eq!(range(&data, 8, 9, 64), Err(Status::InvalidMemoryAccess));
        assert_eq!(range(&data, -1, 2, 64), Err(Status::InvalidMemoryAccess));
        assert_eq!(
            range(&data, 0, -1, usize::MAX),
            Err(Status::InvalidMemoryAccess)
        );
        assert_eq!(range(&data, 0, 65, 64), Err(Status::BadArgument));
    }
}

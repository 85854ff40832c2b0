//! The ABI harness: a guest that runs a program of host calls decoded from fuzz input.
//!
//! The input is decoded into a request, a response, a set of data blobs (header names and
//! values, serialized maps, property paths, iovec tables, long fills) and up to 64 records, each
//! naming a callback, a host call and its arguments: small numbers, pointers to or lengths of
//! blobs (exact, overrunning, or shifted), hostile values (negative, near the end of memory,
//! just over each cap) or raw 32-bit values. The program travels as the plugin configuration
//! (buffer 7). Before each record the guest fetches it afresh from the host's immutable copy,
//! so whatever the host writes into guest memory cannot change the program. Besides host calls a
//! record may make the guest's allocator hostile (answer 0, a chosen pointer, trap, or re-enter
//! the host with another record), grow memory, trap, exit, or return Pause/refusal.
//!
//! Invariants:
//! - The guest traps with `unreachable` when a host call answers a status the spec table of
//!   docs/abi.md does not allow for that call, phase and arguments (the mask in each record,
//!   computed by [`expected`]); the harness treats that trap as a failure.
//! - No host call panics (the harness also reads the gateway's warnings, which is where a caught
//!   panic in `finish` or under `failure = "open"` would otherwise hide) and no call times out.
//! - A load failure, trap or misbehaviour happens only when the program asked for one.
//! - The request and response stay valid and within the documented caps: canonical `:path`,
//!   valid `:authority`, the connection's `:scheme`, at most 1024 headers and 256 KiB of names
//!   and values in the request map, statuses 200-599, local responses within 1 MiB.
//! - The request map is unchanged after the response phase and every map after the log phase.
//! - Afterwards a fresh request on the same plugin is served, and a header the guest adds then
//!   reads back round-trips.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use tracing_subscriber::layer::SubscriberExt as _;

use crate::config::FailurePolicy;
use crate::plugin::{
    CallError, Chain, CompiledModule, Limits, RequestHead, RequestInfo, RequestOutcome,
    ResponseHead, Runtime, Stream,
};
use crate::proxy::path::normalize;

// Guest memory layout (the guest's 16 initial pages are 1 MiB).
const INTERNAL_RET: i32 = 16;
const PROBE: i32 = 256;
const PROBE_RET: i32 = 288;
const SCRATCH: i32 = 512;
const RET_AREA: i32 = 1024;
const DATA_BASE: i32 = 0x1_0000;
const MAX_CONFIG: usize = 0xA_0000;
const HEAP_BASE: i32 = 0xB_0000;
const HEAP_END: i32 = 0x10_0000;
const MEMORY_LIMIT: u64 = 16 << 20;

/// A record: phase, op, allowed-status mask, ten arguments.
const RECORD: usize = 13 * 4;
const MAX_RECORDS: usize = 64;
/// Where the blobs start in the configuration: after the count and room for every record.
const BLOBS_AT: usize = 4 + MAX_RECORDS * RECORD;

// The documented caps (docs/abi.md, Limits), restated here rather than imported so that the
// harness checks the contract and not the constants.
const MAX_ITEM: usize = 64 * 1024;
const MAX_BLOB: usize = 1024 * 1024;
const MAX_PAIRS: usize = 1024;
const MAX_MAP_BYTES: usize = 256 * 1024;

// Status bits of the masks.
const OK: u32 = 1 << 0;
const NOT_FOUND: u32 = 1 << 1;
const BAD_ARGUMENT: u32 = 1 << 2;
const SERIALIZATION: u32 = 1 << 3;
const INVALID_MEMORY: u32 = 1 << 6;
const UNIMPLEMENTED: u32 = 1 << 12;
const WASI_SUCCESS: u32 = 1 << 0;
const WASI_EBADF: u32 = 1 << 8;
const WASI_EINVAL: u32 = 1 << 28;

/// The callbacks a record can run in, in the order they happen.
const PHASES: [&str; 8] = [
    "vm_start",
    "configure",
    "context_create",
    "request_headers",
    "response_headers",
    "done",
    "log",
    "delete",
];
const CONTEXT_CREATE: u32 = 2;
const REQUEST_HEADERS: u32 = 3;
const RESPONSE_HEADERS: u32 = 4;

/// What the host lets a call touch, by callback.
#[derive(Clone, Copy, PartialEq, Eq)]
enum HostPhase {
    Root,
    Request,
    Response,
    Log,
}

fn host_phase(phase: u32) -> HostPhase {
    match phase {
        0..=2 => HostPhase::Root,
        REQUEST_HEADERS => HostPhase::Request,
        RESPONSE_HEADERS => HostPhase::Response,
        _ => HostPhase::Log,
    }
}

/// What a record does: a host call, or something the guest does itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Log,
    GetLogLevel,
    GetTime,
    GetBufferBytes,
    GetBufferStatus,
    GetMapPairs,
    GetMapSize,
    SetMapPairs,
    GetMapValue,
    AddMapValue,
    ReplaceMapValue,
    RemoveMapValue,
    SendLocalResponse,
    GetProperty,
    ContinueStream,
    SetEffectiveContext,
    FdWrite,
    ClockTimeGet,
    RandomGet,
    EnvironSizesGet,
    ArgsSizesGet,
    HttpCall,
    /// The allocator's behaviour from now until the callback ends: a0 is the mode (0 bump,
    /// 1 answer 0, 2 answer a1, 3 trap, 4 run record a1 re-entrantly, then bump).
    SetAlloc,
    /// `memory.grow(a0)`: past the memory limit this traps.
    Grow,
    /// Traps (integer divide by zero).
    Trap,
    /// `proc_exit(a0)`: traps.
    ProcExit,
    /// The callback's result: a0 (Pause when not 0; refusal from vm_start/configure when 0).
    SetReturn,
}

const OPS: [Op; 27] = [
    Op::Log,
    Op::GetLogLevel,
    Op::GetTime,
    Op::GetBufferBytes,
    Op::GetBufferStatus,
    Op::GetMapPairs,
    Op::GetMapSize,
    Op::SetMapPairs,
    Op::GetMapValue,
    Op::AddMapValue,
    Op::ReplaceMapValue,
    Op::RemoveMapValue,
    Op::SendLocalResponse,
    Op::GetProperty,
    Op::ContinueStream,
    Op::SetEffectiveContext,
    Op::FdWrite,
    Op::ClockTimeGet,
    Op::RandomGet,
    Op::EnvironSizesGet,
    Op::ArgsSizesGet,
    Op::HttpCall,
    Op::SetAlloc,
    Op::Grow,
    Op::Trap,
    Op::ProcExit,
    Op::SetReturn,
];

impl Op {
    /// The guest function called, or None for the guest's own ops; and the argument count.
    fn import(self) -> (Option<&'static str>, usize) {
        match self {
            Op::Log => (Some("proxy_log"), 3),
            Op::GetLogLevel => (Some("proxy_get_log_level"), 1),
            Op::GetTime => (Some("proxy_get_current_time_nanoseconds"), 1),
            Op::GetBufferBytes => (Some("proxy_get_buffer_bytes"), 5),
            Op::GetBufferStatus => (Some("proxy_get_buffer_status"), 3),
            Op::GetMapPairs => (Some("proxy_get_header_map_pairs"), 3),
            Op::GetMapSize => (Some("proxy_get_header_map_size"), 2),
            Op::SetMapPairs => (Some("proxy_set_header_map_pairs"), 3),
            Op::GetMapValue => (Some("proxy_get_header_map_value"), 5),
            Op::AddMapValue => (Some("proxy_add_header_map_value"), 5),
            Op::ReplaceMapValue => (Some("proxy_replace_header_map_value"), 5),
            Op::RemoveMapValue => (Some("proxy_remove_header_map_value"), 3),
            Op::SendLocalResponse => (Some("proxy_send_local_response"), 8),
            Op::GetProperty => (Some("proxy_get_property"), 4),
            Op::ContinueStream => (Some("proxy_continue_stream"), 1),
            Op::SetEffectiveContext => (Some("proxy_set_effective_context"), 1),
            Op::FdWrite => (Some("fd_write"), 4),
            Op::ClockTimeGet => (Some("clock_time_get"), 3),
            Op::RandomGet => (Some("random_get"), 2),
            Op::EnvironSizesGet => (Some("environ_sizes_get"), 2),
            Op::ArgsSizesGet => (Some("args_sizes_get"), 2),
            Op::HttpCall => (Some("proxy_http_call"), 10),
            Op::SetAlloc => (None, 2),
            Op::Grow => (None, 1),
            Op::Trap => (None, 0),
            Op::ProcExit => (None, 1),
            Op::SetReturn => (None, 1),
        }
    }

    fn may_trap(self, args: &[i32; 10]) -> bool {
        match self {
            Op::Grow | Op::Trap | Op::ProcExit => true,
            Op::SetAlloc => args[0] == 3,
            _ => false,
        }
    }
}

// ---- the guest ------------------------------------------------------------------------------

/// The guest module's text. Each record's host call is checked against its mask; a status
/// outside it is `unreachable`, which no other guest code executes.
fn guest_wat() -> String {
    let mut dispatch = String::from("(block $done\n");
    for i in (0..OPS.len()).rev() {
        let _ = writeln!(dispatch, "(block $op{i}");
    }
    dispatch.push_str("(br_table");
    for i in 0..OPS.len() {
        let _ = write!(dispatch, " $op{i}");
    }
    dispatch.push_str(" $done (local.get $op)))\n");
    for op in OPS {
        let body = match op.import() {
            (Some(name), n) => {
                let args: String = (0..n)
                    .map(|i| {
                        if op == Op::ClockTimeGet && i == 1 {
                            " (i64.extend_i32_s (local.get $a1))".to_string()
                        } else {
                            format!(" (local.get $a{i})")
                        }
                    })
                    .collect();
                format!("(call $check (call ${name}{args}) (local.get $mask))")
            }
            (None, _) => match op {
                Op::SetAlloc => "(global.set $alloc_mode (local.get $a0)) (global.set $alloc_value (local.get $a1))".into(),
                Op::Grow => "(drop (memory.grow (local.get $a0)))".into(),
                Op::Trap => "(drop (i32.div_u (i32.const 1) (global.get $zero)))".into(),
                Op::ProcExit => "(call $proc_exit (local.get $a0))".into(),
                Op::SetReturn => "(global.set $ret (local.get $a0))".into(),
                _ => String::new(),
            },
        };
        let _ = writeln!(dispatch, "{body} (br $done))");
    }

    let mut imports = String::new();
    for op in OPS {
        if let (Some(name), n) = op.import() {
            let module = if name.starts_with("proxy_") {
                "env"
            } else {
                "wasi_snapshot_preview1"
            };
            let params: String = (0..n)
                .map(|i| {
                    if op == Op::ClockTimeGet && i == 1 {
                        " i64"
                    } else {
                        " i32"
                    }
                })
                .collect();
            let _ = writeln!(
                imports,
                r#"(import "{module}" "{name}" (func ${name} (param{params}) (result i32)))"#
            );
        }
    }

    format!(
        r#"(module
{imports}
(import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
(memory (export "memory") 16)
(data $probe "x-probeok")
(global $zero (mut i32) (i32.const 0))
(global $phase (mut i32) (i32.const -1))
(global $ret (mut i32) (i32.const 0))
(global $alloc_mode (mut i32) (i32.const 0))
(global $alloc_value (mut i32) (i32.const 0))
(global $heap (mut i32) (i32.const {HEAP_BASE}))
(global $internal (mut i32) (i32.const 0))
(global $depth (mut i32) (i32.const 0))
(global $probe_ctx (mut i32) (i32.const -1))

(func (export "proxy_abi_version_0_2_1"))

(func $check (param $status i32) (param $mask i32)
  (if (i32.ge_u (local.get $status) (i32.const 32)) (then unreachable))
  (if (i32.eqz (i32.and (i32.shr_u (local.get $mask) (local.get $status)) (i32.const 1)))
    (then unreachable)))

(func $expect_ok (param $status i32)
  (if (local.get $status) (then unreachable)))

(func $alloc (export "proxy_on_memory_allocate") (param $size i32) (result i32)
  (local $p i32)
  (if (global.get $internal) (then (return (global.get $internal))))
  (block $bump
    (block $reenter
      (block $trap
        (block $fixed
          (block $null
            (br_table $bump $null $fixed $trap $reenter $bump (global.get $alloc_mode)))
          (return (i32.const 0)))
        (return (global.get $alloc_value)))
      (drop (i32.div_u (i32.const 1) (global.get $zero))))
    (if (i32.eqz (global.get $depth))
      (then
        (global.set $depth (i32.const 1))
        (call $exec (global.get $alloc_value))
        (global.set $depth (i32.const 0)))))
  (if (i32.gt_u (local.get $size) (i32.const {heap_size}))
    (then (return (i32.const {HEAP_BASE}))))
  (local.set $p (global.get $heap))
  (if (i32.gt_u (i32.add (local.get $p) (local.get $size)) (i32.const {HEAP_END}))
    (then (local.set $p (i32.const {HEAP_BASE}))))
  (global.set $heap
    (i32.and (i32.add (i32.add (local.get $p) (local.get $size)) (i32.const 7)) (i32.const -8)))
  (local.get $p))

;; Runs record $i if it belongs to the current callback.
(func $exec (param $i i32)
  (local $op i32) (local $mask i32)
  (local $a0 i32) (local $a1 i32) (local $a2 i32) (local $a3 i32) (local $a4 i32)
  (local $a5 i32) (local $a6 i32) (local $a7 i32) (local $a8 i32) (local $a9 i32)
  (global.set $internal (i32.const {SCRATCH}))
  (call $expect_ok (call $proxy_get_buffer_bytes (i32.const 7)
    (i32.add (i32.const 4) (i32.mul (local.get $i) (i32.const {RECORD})))
    (i32.const {RECORD}) (i32.const {INTERNAL_RET}) (i32.const {internal_len})))
  (global.set $internal (i32.const 0))
  (if (i32.ne (i32.load (i32.const {internal_len})) (i32.const {RECORD})) (then (return)))
  (if (i32.ne (i32.load (i32.const {SCRATCH})) (global.get $phase)) (then (return)))
  (local.set $op (i32.load offset=4 (i32.const {SCRATCH})))
  (local.set $mask (i32.load offset=8 (i32.const {SCRATCH})))
  (local.set $a0 (i32.load offset=12 (i32.const {SCRATCH})))
  (local.set $a1 (i32.load offset=16 (i32.const {SCRATCH})))
  (local.set $a2 (i32.load offset=20 (i32.const {SCRATCH})))
  (local.set $a3 (i32.load offset=24 (i32.const {SCRATCH})))
  (local.set $a4 (i32.load offset=28 (i32.const {SCRATCH})))
  (local.set $a5 (i32.load offset=32 (i32.const {SCRATCH})))
  (local.set $a6 (i32.load offset=36 (i32.const {SCRATCH})))
  (local.set $a7 (i32.load offset=40 (i32.const {SCRATCH})))
  (local.set $a8 (i32.load offset=44 (i32.const {SCRATCH})))
  (local.set $a9 (i32.load offset=48 (i32.const {SCRATCH})))
  {dispatch})

;; Runs the records of callback $phase: copies the configuration in, then each record.
(func $run (param $phase i32)
  (local $len i32) (local $count i32) (local $i i32)
  (global.set $phase (local.get $phase))
  (global.set $alloc_mode (i32.const 0))
  (call $expect_ok (call $proxy_get_buffer_status (i32.const 7) (i32.const {INTERNAL_RET}) (i32.const {internal_len})))
  (local.set $len (i32.load (i32.const {INTERNAL_RET})))
  (if (i32.lt_u (local.get $len) (i32.const {BLOBS_AT})) (then (return)))
  (if (i32.gt_u (local.get $len) (i32.const {MAX_CONFIG})) (then unreachable))
  (global.set $internal (i32.const {DATA_BASE}))
  (call $expect_ok (call $proxy_get_buffer_bytes (i32.const 7) (i32.const 0) (local.get $len)
    (i32.const {INTERNAL_RET}) (i32.const {internal_len})))
  (global.set $internal (i32.const 0))
  (local.set $count (i32.load (i32.const {DATA_BASE})))
  (if (i32.gt_u (local.get $count) (i32.const {MAX_RECORDS})) (then unreachable))
  (block $end
    (loop $next
      (br_if $end (i32.ge_u (local.get $i) (local.get $count)))
      (call $exec (local.get $i))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next))))

;; The fresh request after the fuzzed one: add a header, read it back.
(func $probe
  (global.set $alloc_mode (i32.const 0))
  (memory.init $probe (i32.const {PROBE}) (i32.const 0) (i32.const 9))
  (call $expect_ok (call $proxy_add_header_map_value (i32.const 0)
    (i32.const {PROBE}) (i32.const 7) (i32.const {probe_value}) (i32.const 2)))
  (call $expect_ok (call $proxy_get_header_map_value (i32.const 0)
    (i32.const {PROBE}) (i32.const 7) (i32.const {PROBE_RET}) (i32.const {probe_ret_len})))
  (if (i32.ne (i32.load (i32.const {probe_ret_len})) (i32.const 2)) (then unreachable))
  (if (i32.ne (i32.load16_u (i32.load (i32.const {PROBE_RET}))) (i32.const 0x6b6f))
    (then unreachable)))

(func (export "proxy_on_context_create") (param $ctx i32) (param $parent i32)
  (if (local.get $parent) (then (call $run (i32.const {CONTEXT_CREATE})))))
(func (export "proxy_on_vm_start") (param i32 i32) (result i32)
  (global.set $ret (i32.const 1))
  (call $run (i32.const 0))
  (global.get $ret))
(func (export "proxy_on_configure") (param i32 i32) (result i32)
  (global.set $ret (i32.const 1))
  (call $run (i32.const 1))
  (global.get $ret))
(func (export "proxy_on_request_headers") (param $ctx i32) (param $n i32) (param $eos i32) (result i32)
  ;; The probe request is the only one with no regular header and no body.
  (if (i32.and (i32.eq (local.get $n) (i32.const 4)) (local.get $eos))
    (then
      (global.set $probe_ctx (local.get $ctx))
      (call $probe)
      (return (i32.const 0))))
  (global.set $ret (i32.const 0))
  (call $run (i32.const {REQUEST_HEADERS}))
  (global.get $ret))
(func (export "proxy_on_response_headers") (param $ctx i32) (param i32 i32) (result i32)
  (if (i32.eq (local.get $ctx) (global.get $probe_ctx)) (then (return (i32.const 0))))
  (global.set $ret (i32.const 0))
  (call $run (i32.const {RESPONSE_HEADERS}))
  (global.get $ret))
(func (export "proxy_on_done") (param $ctx i32) (result i32)
  (if (i32.ne (local.get $ctx) (global.get $probe_ctx)) (then (call $run (i32.const 5))))
  (i32.const 1))
(func (export "proxy_on_log") (param $ctx i32)
  (if (i32.ne (local.get $ctx) (global.get $probe_ctx)) (then (call $run (i32.const 6)))))
(func (export "proxy_on_delete") (param $ctx i32)
  (if (i32.ne (local.get $ctx) (global.get $probe_ctx)) (then (call $run (i32.const 7)))))
)"#,
        heap_size = HEAP_END - HEAP_BASE,
        internal_len = INTERNAL_RET + 4,
        probe_value = PROBE + 7,
        probe_ret_len = PROBE_RET + 4,
    )
}

// ---- the status each call may answer ---------------------------------------------------------

/// Whether `ptr..ptr+len` lies past the largest memory the guest can have: it cannot be read
/// or written, whatever the guest did.
fn beyond(ptr: i32, len: u64) -> bool {
    u64::from(ptr as u32) + len > MEMORY_LIMIT
}

/// The statuses a sequence of guest reads can end with, then `rest` if they all succeed. A
/// read over its cap is `BadArgument`, one past the memory limit `InvalidMemoryAccess`; one
/// inside the limit may still be past the current memory.
fn after_reads(reads: &[(i32, i32, usize)], rest: u32) -> u32 {
    let mut mask = 0;
    for &(ptr, len, max) in reads {
        let len = u64::from(len as u32);
        if len > max as u64 {
            return mask | BAD_ARGUMENT;
        }
        if beyond(ptr, len) {
            return mask | INVALID_MEMORY;
        }
        mask |= INVALID_MEMORY;
    }
    mask | rest
}

/// Handing bytes to the guest with return slots at `ret_ptr` and `ret_len`.
fn hand_over(ret_ptr: i32, ret_len: i32) -> u32 {
    if beyond(ret_ptr, 4) || beyond(ret_len, 4) {
        INVALID_MEMORY
    } else {
        OK | INVALID_MEMORY
    }
}

/// Writing `len` bytes at `ptr`.
fn write(ptr: i32, len: u64, ok: u32, fail: u32) -> u32 {
    if beyond(ptr, len) { fail } else { ok | fail }
}

/// `mask` with `Ok` replaced by what follows a successful step.
fn then(mask: u32, on_ok: u32) -> u32 {
    if mask & OK != 0 {
        (mask & !OK) | on_ok
    } else {
        mask
    }
}

fn is_trailers(map: i32) -> bool {
    map == 1 || map == 3
}

/// Reading map `map`: whether it exists in this phase (`Ok`), or why not.
fn read_map(phase: HostPhase, map: i32) -> u32 {
    match (phase, map) {
        (HostPhase::Root, _) => NOT_FOUND,
        (_, 0) => OK,
        (HostPhase::Request, 2) => NOT_FOUND,
        (HostPhase::Response, 2) => OK,
        // The log phase has a response, except for a context deleted after an early end.
        (HostPhase::Log, 2) => OK | NOT_FOUND,
        _ => BAD_ARGUMENT,
    }
}

/// Writing map `map`: only the request map in the request phase, the response map in the
/// response phase.
fn write_map(phase: HostPhase, map: i32) -> u32 {
    match (phase, map) {
        (HostPhase::Root, _) => NOT_FOUND,
        (HostPhase::Request, 0) | (HostPhase::Response, 2) => OK | BAD_ARGUMENT,
        _ => BAD_ARGUMENT,
    }
}

fn buffer(kind: i32) -> u32 {
    match kind {
        6 | 7 => OK,
        0..=5 => NOT_FOUND,
        _ => BAD_ARGUMENT,
    }
}

/// The statuses `op` may answer with arguments `a` in callback `phase`, as a bit mask: the
/// spec table of docs/abi.md.
fn expected(op: Op, phase: u32, a: &[i32; 10]) -> u32 {
    let hp = host_phase(phase);
    let http = hp != HostPhase::Root;
    match op {
        Op::Log => after_reads(&[(a[1], a[2], MAX_ITEM)], OK),
        Op::GetLogLevel => write(a[0], 4, OK, INVALID_MEMORY),
        Op::GetTime => write(a[0], 8, OK, INVALID_MEMORY),
        Op::GetBufferBytes => then(buffer(a[0]), hand_over(a[3], a[4])),
        Op::GetBufferStatus => then(
            buffer(a[0]),
            if beyond(a[1], 4) || beyond(a[2], 4) {
                INVALID_MEMORY
            } else {
                OK | INVALID_MEMORY
            },
        ),
        Op::GetMapPairs if is_trailers(a[0]) => hand_over(a[1], a[2]),
        Op::GetMapPairs => then(read_map(hp, a[0]), hand_over(a[1], a[2])),
        Op::GetMapSize if is_trailers(a[0]) => write(a[1], 4, OK, INVALID_MEMORY),
        Op::GetMapSize => then(read_map(hp, a[0]), write(a[1], 4, OK, INVALID_MEMORY)),
        Op::SetMapPairs => after_reads(
            &[(a[1], a[2], MAX_BLOB)],
            SERIALIZATION | write_map(hp, a[0]),
        ),
        Op::GetMapValue => after_reads(
            &[(a[1], a[2], MAX_ITEM)],
            if is_trailers(a[0]) {
                NOT_FOUND
            } else {
                then(read_map(hp, a[0]), NOT_FOUND | hand_over(a[3], a[4]))
            },
        ),
        Op::AddMapValue | Op::ReplaceMapValue => after_reads(
            &[(a[1], a[2], MAX_ITEM), (a[3], a[4], MAX_ITEM)],
            write_map(hp, a[0]),
        ),
        Op::RemoveMapValue => after_reads(&[(a[1], a[2], MAX_ITEM)], write_map(hp, a[0])),
        Op::SendLocalResponse => after_reads(
            &[
                (a[1], a[2], MAX_ITEM),
                (a[3], a[4], MAX_BLOB),
                (a[5], a[6], MAX_BLOB),
            ],
            if !matches!(hp, HostPhase::Request | HostPhase::Response)
                || !(200..=599).contains(&a[0])
            {
                BAD_ARGUMENT
            } else {
                OK | BAD_ARGUMENT | SERIALIZATION
            },
        ),
        Op::GetProperty => {
            after_reads(&[(a[0], a[1], MAX_ITEM)], NOT_FOUND | hand_over(a[2], a[3]))
        }
        Op::ContinueStream => {
            if http {
                OK
            } else {
                NOT_FOUND
            }
        }
        Op::SetEffectiveContext => OK,
        Op::FdWrite if a[0] != 1 && a[0] != 2 => WASI_EBADF,
        Op::FdWrite => write(a[3], 4, WASI_SUCCESS, WASI_EINVAL),
        Op::ClockTimeGet if a[0] != 0 && a[0] != 1 => WASI_EINVAL,
        Op::ClockTimeGet => write(a[2], 8, WASI_SUCCESS, WASI_EINVAL),
        Op::RandomGet if a[1] as u32 as usize > MAX_BLOB => WASI_EINVAL,
        Op::RandomGet => write(a[0], u64::from(a[1] as u32), WASI_SUCCESS, WASI_EINVAL),
        Op::EnvironSizesGet | Op::ArgsSizesGet => {
            if beyond(a[0], 4) || beyond(a[1], 4) {
                WASI_EINVAL
            } else {
                WASI_SUCCESS | WASI_EINVAL
            }
        }
        Op::HttpCall => UNIMPLEMENTED,
        Op::SetAlloc | Op::Grow | Op::Trap | Op::ProcExit | Op::SetReturn => 0,
    }
}

// ---- decoding the input ---------------------------------------------------------------------

/// Reads the input front to back; past its end every byte is 0.
struct Input<'a> {
    data: &'a [u8],
    at: usize,
}

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    fn take(&mut self, n: usize) -> &[u8] {
        let start = self.at.min(self.data.len());
        let end = self.at.saturating_add(n).min(self.data.len());
        self.at = self.at.saturating_add(n);
        &self.data[start..end]
    }

    fn done(&self) -> bool {
        self.at >= self.data.len()
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[usize::from(self.byte()) % from.len()]
    }
}

/// Values that probe every edge: signs, the end of the initial memory, the memory limit, each
/// cap and one past it, status-code bounds.
const HOSTILE: &[i32] = &[
    0,
    1,
    4,
    -1,
    -4,
    -8,
    i32::MIN,
    i32::MAX,
    i32::MAX - 3,
    0x7fff_fff0,
    0xffff,
    0x1_0000,
    0x1_0001,
    0x4_0000,
    0x4_0001,
    0x10_0000,
    0x10_0000 - 1,
    0x10_0000 - 4,
    0x10_0000 - 8,
    0x10_0001,
    16 << 20,
    (16 << 20) - 4,
    99,
    199,
    200,
    401,
    403,
    500,
    599,
    600,
    1024,
    1025,
];

const NAMES: &[&[u8]] = &[
    b":path",
    b":method",
    b":authority",
    b":scheme",
    b":status",
    b":unknown",
    b"apikey",
    b"x-instance-id",
    b"Content-Type",
    b"x-a",
    b"host",
    b"connection",
    b"transfer-encoding",
    b"bad name",
    b"x\r\ny",
    b"",
];

const VALUES: &[&[u8]] = &[
    b"/serving-uci/x",
    b"/uci/prediction?x=1",
    b"/a/../b",
    b"/a%2Fb",
    b"//x",
    b"/serving-uci/%2e%2e/admin",
    b"no-slash",
    b"GET",
    b"POST",
    b"BR EW",
    b"https",
    b"http",
    b"gw.example:8443",
    b"gw example",
    b"200",
    b"99",
    b"600",
    b"abc",
    b"ok",
    b"a\r\nb",
    b"\0",
    b"",
    b"caf\xc3\xa9",
    b"\xff\xfe",
];

const PROPERTIES: &[&[u8]] = &[
    b"plugin_name",
    b"route_name",
    b"xds\0route_name",
    b"request\0path",
    b"request\0url_path",
    b"request\0query",
    b"request\0host",
    b"request\0scheme",
    b"request\0method",
    b"request\0protocol",
    b"request\0id",
    b"source\0address",
    b"source\0port",
    b"destination\0address",
    b"destination\0port",
    b"response\0code",
    b"\0\0request\0\0path\0",
    b"request",
    b"nope\0nothing",
];

const FILLS: &[usize] = &[MAX_ITEM - 1, MAX_ITEM, MAX_ITEM + 1, MAX_MAP_BYTES + 1];

/// One record of the program.
#[derive(Clone)]
struct Record {
    phase: u32,
    op: Op,
    args: [i32; 10],
}

impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.op.import().1;
        write!(
            f,
            "{}: {:?}{:?}",
            PHASES[self.phase as usize],
            self.op,
            &self.args[..n]
        )
    }
}

/// One fuzz case: the request, the response, and the program.
#[derive(Debug)]
struct Case {
    policy: FailurePolicy,
    request: RequestHead,
    request_eos: bool,
    info: bool,
    response: ResponseHead,
    response_eos: bool,
    records: Vec<Record>,
    /// Offsets in the configuration, and the bytes.
    blobs: Vec<(usize, Vec<u8>)>,
}

impl Case {
    fn decode(data: &[u8]) -> Case {
        let mut input = Input { data, at: 0 };
        let flags = input.byte();
        let policy = if flags & 1 != 0 {
            FailurePolicy::Open
        } else {
            FailurePolicy::Closed
        };
        let mut headers = HeaderMap::new();
        let regular: &[(&str, &str)] = &[
            ("apikey", "k"),
            ("x-instance-id", "kong_ins"),
            ("content-type", "application/json"),
            ("x-a", "1"),
            ("x-a", "2"),
        ];
        // At least one header: the probe request is the one without.
        for _ in 0..1 + input.byte() % 4 {
            let (k, v) = input.pick(regular);
            headers.append(k, HeaderValue::from_static(v));
        }
        let request = RequestHead {
            method: input
                .pick(&["GET", "POST", "PUT", "DELETE"])
                .parse()
                .unwrap_or(Method::GET),
            path: input
                .pick(&[
                    "/serving-uci/uci/prediction",
                    "/serving-uci",
                    "/",
                    "/serving-uci/x?y=1&z",
                    "/a%3Ab/c",
                ])
                .to_string(),
            authority: input
                .pick(&["gw.example", "127.0.0.1:8443", ""])
                .to_string(),
            scheme: if flags & 2 != 0 { "https" } else { "http" },
            headers,
        };
        let mut response_headers = HeaderMap::new();
        let upstream: &[(&str, &str)] = &[
            ("content-type", "application/json"),
            ("server", "upstream"),
            ("location", "http://internal/x"),
        ];
        for _ in 0..input.byte() % 3 {
            let (k, v) = input.pick(upstream);
            response_headers.append(k, HeaderValue::from_static(v));
        }
        let response = ResponseHead {
            status: input
                .pick(&[200u16, 204, 301, 401, 404, 500, 503])
                .try_into()
                .unwrap_or(StatusCode::OK),
            headers: response_headers,
        };

        // Blobs, then the records that point into them.
        let mut blobs: Vec<(usize, Vec<u8>)> = Vec::new();
        let mut end = BLOBS_AT;
        for _ in 0..input.byte() % 17 {
            let addr = |blobs: &[(usize, Vec<u8>)], i: u8| -> (i32, i32) {
                if blobs.is_empty() {
                    (0, 0)
                } else {
                    let (at, b) = &blobs[usize::from(i) % blobs.len()];
                    (DATA_BASE + *at as i32, b.len() as i32)
                }
            };
            let blob: Vec<u8> = match input.byte() % 9 {
                0 => {
                    let n = usize::from(input.byte());
                    input.take(n).to_vec()
                }
                1 => input.pick(NAMES).to_vec(),
                2 => input.pick(VALUES).to_vec(),
                3 => {
                    let pairs: Vec<(&[u8], &[u8])> = (0..input.byte() % 6)
                        .map(|_| (input.pick(NAMES), input.pick(VALUES)))
                        .collect();
                    let mut map = crate::plugin::serialize_pairs(&pairs);
                    // Now and then a malformed one: cut short or with a lying count.
                    match input.byte() % 8 {
                        0 => map.truncate(map.len().saturating_sub(1)),
                        1 => map[..4].copy_from_slice(&input.u32().to_le_bytes()),
                        _ => {}
                    }
                    map
                }
                4 => input.pick(PROPERTIES).to_vec(),
                5 => {
                    // An iovec table for fd_write: (pointer, length) pairs.
                    let mut table = Vec::new();
                    for _ in 0..input.byte() % 4 {
                        let (p, l) = if input.byte().is_multiple_of(4) {
                            (input.pick(HOSTILE), input.pick(HOSTILE))
                        } else {
                            addr(&blobs, input.byte())
                        };
                        table.extend_from_slice(&p.to_le_bytes());
                        table.extend_from_slice(&l.to_le_bytes());
                    }
                    table
                }
                6 => vec![input.pick(&[b'a', 0, b'\n']); input.pick(FILLS)],
                7 => input.u32().to_le_bytes().to_vec(),
                _ => Vec::new(),
            };
            if end + blob.len() > MAX_CONFIG {
                continue;
            }
            let at = end;
            end = (end + blob.len()).next_multiple_of(8);
            blobs.push((at, blob));
        }

        let spans: Vec<(i32, i32)> = blobs
            .iter()
            .map(|(at, b)| (DATA_BASE + *at as i32, b.len() as i32))
            .collect();
        let mut records = Vec::new();
        while !input.done() && records.len() < MAX_RECORDS {
            let phase = u32::from(input.byte() % 8);
            let op = input.pick(&OPS);
            let mut args = [0i32; 10];
            for arg in args.iter_mut().take(op.import().1) {
                let selector = input.byte();
                let param = input.byte();
                let blob = |i: u8| {
                    if spans.is_empty() {
                        (0, 0)
                    } else {
                        spans[usize::from(i) % spans.len()]
                    }
                };
                *arg = match selector % 8 {
                    0 => i32::from(param),
                    1 => blob(param).0,
                    2 => blob(param).1,
                    3 => HOSTILE[usize::from(param) % HOSTILE.len()],
                    4 => input.u32() as i32,
                    5 => RET_AREA + 8 * i32::from(param % 64),
                    6 => blob(param).0.wrapping_add(i32::from(input.byte())),
                    _ => blob(param).1.wrapping_add(i32::from(input.byte() as i8)),
                };
            }
            match op {
                Op::SetAlloc => args[0] = args[0].rem_euclid(5),
                Op::Grow => args[0] &= 0xff,
                _ => {}
            }
            // A request context is created for the probe request too, before the guest can tell
            // it apart: what runs there must not fail by design.
            if phase == CONTEXT_CREATE && op.may_trap(&args) {
                continue;
            }
            records.push(Record { phase, op, args });
        }
        let count = records.len() as i32;
        for r in &mut records {
            if r.op == Op::SetAlloc && r.args[0] == 4 {
                r.args[1] = r.args[1].rem_euclid(count);
            }
        }
        Case {
            policy,
            request,
            request_eos: flags & 4 != 0,
            info: flags & 8 == 0,
            response,
            response_eos: flags & 16 != 0,
            records,
            blobs,
        }
    }

    /// The plugin configuration: the record count, the records, then the blobs.
    fn config(&self) -> Vec<u8> {
        let mut out = vec![0u8; BLOBS_AT];
        out[..4].copy_from_slice(&(self.records.len() as u32).to_le_bytes());
        for (i, r) in self.records.iter().enumerate() {
            let at = 4 + i * RECORD;
            let op = OPS.iter().position(|o| *o == r.op).unwrap_or(0) as u32;
            let mask = expected(r.op, r.phase, &r.args);
            let mut fields = vec![r.phase, op, mask];
            fields.extend(r.args.iter().map(|a| *a as u32));
            for (j, f) in fields.into_iter().enumerate() {
                out[at + j * 4..at + j * 4 + 4].copy_from_slice(&f.to_le_bytes());
            }
        }
        for (at, blob) in &self.blobs {
            out.resize(*at, 0);
            out.extend_from_slice(blob);
        }
        out
    }

    /// Whether a record of a callback in `phases` may make the call fail.
    fn may_trap(&self, phases: &[u32]) -> bool {
        self.records
            .iter()
            .any(|r| phases.contains(&r.phase) && r.op.may_trap(&r.args))
    }

    /// Whether a record of `phase` sets the callback's result to `pause_or_refuse`.
    fn sets_return(&self, phases: &[u32], refuse: bool) -> bool {
        self.records.iter().any(|r| {
            phases.contains(&r.phase) && r.op == Op::SetReturn && (r.args[0] == 0) == refuse
        })
    }

    fn has(&self, phase: u32, ops: &[Op]) -> bool {
        self.records
            .iter()
            .any(|r| r.phase == phase && ops.contains(&r.op))
    }

    fn info() -> Arc<RequestInfo> {
        Arc::new(RequestInfo {
            route: "uci".into(),
            source: "10.0.0.1:5555".parse().expect("address"),
            destination: "127.0.0.1:8443".parse().expect("address"),
            protocol: "HTTP/1.1",
            id: "00000001".into(),
        })
    }

    fn stream(&self) -> Box<Stream> {
        Box::new(Stream {
            request: self.request.clone(),
            response: None,
            local_response: None,
            info: self.info.then(Case::info),
            request_end_of_stream: self.request_eos,
        })
    }
}

// ---- running a case -------------------------------------------------------------------------

struct Harness {
    runtime: Runtime,
    module: CompiledModule,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = Runtime::new().expect("wasm runtime");
        let bytes = wat::parse_str(guest_wat()).expect("the fuzz guest is valid WAT");
        let module = runtime
            .compile_bytes(Path::new("fuzz-guest.wasm"), &bytes)
            .expect("the fuzz guest compiles");
        Harness { runtime, module }
    })
}

/// Collects the error text of the gateway's warnings about plugins: a failure the chain
/// tolerated (`failure = "open"`) or one in `finish` is only logged.
#[derive(Clone, Default)]
struct Warnings(Arc<Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Warnings {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        // The plugins' own log lines have the target `wasmgate::plugin` exactly.
        if !event.metadata().target().starts_with("wasmgate::plugin::") {
            return;
        }
        struct Fields(Vec<String>);
        impl tracing::field::Visit for Fields {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if matches!(field.name(), "error" | "reason") {
                    self.0.push(format!("{value:?}"));
                }
            }
        }
        let mut fields = Fields(Vec::new());
        event.record(&mut fields);
        if let Ok(mut all) = self.0.lock() {
            all.extend(fields.0);
        }
    }
}

/// Panics if `text` (an error or warning) shows a host failure rather than a guest one.
fn assert_guest_fault(text: &str, case: &Case) {
    assert!(
        !text.contains("unreachable"),
        "a host call answered a status the ABI does not allow: {text}\n{case:#?}"
    );
    assert!(
        !text.contains("panicked"),
        "a host call panicked: {text}\n{case:#?}"
    );
    assert!(
        !text.contains("CPU deadline"),
        "host calls ran past the deadline: {text}\n{case:#?}"
    );
}

fn check_error(e: &CallError, case: &Case, phases: &[u32]) {
    match e {
        CallError::Trap { reason, .. } => {
            assert_guest_fault(reason, case);
            assert!(
                case.may_trap(phases),
                "trapped without being asked to: {reason}\n{case:#?}"
            );
        }
        CallError::Misbehaved { .. } => assert!(
            case.sets_return(phases, false),
            "misbehaved without pausing: {e}\n{case:#?}"
        ),
        CallError::Timeout { .. } | CallError::Unavailable { .. } => {
            panic!("unexpected failure: {e}\n{case:#?}")
        }
    }
}

fn map_bytes(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum()
}

/// The request and response as the gateway would go on with them: valid and within caps.
fn check_stream(stream: &Stream, case: &Case, when: &str) {
    let r = &stream.request;
    let path = r.path.split('?').next().unwrap_or_default();
    assert!(
        r.path.parse::<http::uri::PathAndQuery>().is_ok() && normalize(path).as_deref() == Ok(path),
        "{when}: :path {:?} is not canonical\n{case:#?}",
        r.path
    );
    assert!(
        r.authority.is_empty() || r.authority.parse::<http::uri::Authority>().is_ok(),
        "{when}: :authority {:?} is not valid\n{case:#?}",
        r.authority
    );
    assert_eq!(r.scheme, case.request.scheme, "{when}: :scheme changed");
    assert!(
        r.headers.len() <= MAX_PAIRS && map_bytes(&r.headers) <= MAX_MAP_BYTES,
        "{when}: request map over its caps: {} values, {} bytes\n{case:#?}",
        r.headers.len(),
        map_bytes(&r.headers)
    );
    if let Some(response) = &stream.response {
        assert!(
            (200..=599).contains(&response.status.as_u16()),
            "{when}: :status {}",
            response.status
        );
        // A local response's headers (up to 1 MiB) may become the response map.
        assert!(
            response.headers.len() <= MAX_PAIRS && map_bytes(&response.headers) <= MAX_BLOB,
            "{when}: response map over its caps\n{case:#?}"
        );
    }
    if let Some(local) = &stream.local_response {
        assert!((200..=599).contains(&local.status.as_u16()));
        assert!(local.headers.len() <= MAX_PAIRS && map_bytes(&local.headers) <= MAX_BLOB);
        assert!(local.body.len() <= MAX_BLOB);
        assert!(local.details.len() <= 3 * MAX_ITEM);
        assert_eq!(&*local.plugin, "fuzz");
    }
}

/// The parts of a request a phase may or may not change.
fn request_view(r: &RequestHead) -> (Method, String, String, &'static str, HeaderMap) {
    (
        r.method.clone(),
        r.path.clone(),
        r.authority.clone(),
        r.scheme,
        r.headers.clone(),
    )
}

type ResponseView = Option<(StatusCode, HeaderMap)>;
type LocalView = Option<(StatusCode, HeaderMap, Bytes)>;

fn response_views(stream: &Stream) -> (ResponseView, LocalView) {
    (
        stream
            .response
            .as_ref()
            .map(|r| (r.status, r.headers.clone())),
        stream
            .local_response
            .as_ref()
            .map(|l| (l.status, l.headers.clone(), l.body.clone())),
    )
}

/// Decodes `data` into a request and a program of host calls, runs it through a plugin's every
/// callback, then serves a fresh request on the same plugin. Panics on a violated invariant.
pub fn fuzz_abi(data: &[u8]) {
    let case = Case::decode(data);
    let warnings = Warnings::default();
    let subscriber = tracing_subscriber::registry().with(warnings.clone());
    tracing::subscriber::with_default(subscriber, || run(&case));
    let logged = warnings.0.lock().map(|w| w.clone()).unwrap_or_default();
    for text in &logged {
        assert_guest_fault(text, &case);
    }
}

/// Whether to print each case and what became of it (`WASMGATE_FUZZ_DEBUG=1`), to read what a
/// corpus file or a crash does.
fn debug() -> bool {
    static DEBUG: OnceLock<bool> = OnceLock::new();
    *DEBUG.get_or_init(|| std::env::var_os("WASMGATE_FUZZ_DEBUG").is_some())
}

fn run(case: &Case) {
    if debug() {
        eprintln!("{case:#?}");
    }
    let h = harness();
    let limits = Limits {
        // Generous: a call here is at most 64 host calls, each bounded by the caps; passing this
        // means some host call is far slower than it should be.
        call_timeout: Duration::from_secs(5),
        memory_bytes: MEMORY_LIMIT as usize,
        instances: 1,
    };
    let plugin = match h
        .runtime
        .configure(&h.module, "fuzz", case.config(), case.policy, &limits)
    {
        Ok(plugin) => plugin,
        Err(e) => {
            let text = e.to_string();
            if debug() {
                eprintln!("refused: {text}");
            }
            assert_guest_fault(&text, case);
            assert!(
                case.may_trap(&[0, 1]) || case.sets_return(&[0, 1], true),
                "the plugin was refused without being asked to: {text}\n{case:#?}"
            );
            return;
        }
    };
    let chain = Chain::new(vec![plugin]);

    let mut stream = case.stream();
    let before = request_view(&stream.request);
    let (mut chain_run, outcome) = chain.on_request(&mut stream);
    check_stream(&stream, case, "after the request phase");
    let writes = [
        Op::SetMapPairs,
        Op::AddMapValue,
        Op::ReplaceMapValue,
        Op::RemoveMapValue,
    ];
    if !case.has(REQUEST_HEADERS, &writes) {
        assert!(
            request_view(&stream.request) == before,
            "the request changed without a write\n{case:#?}"
        );
    }
    if !case.has(REQUEST_HEADERS, &[Op::SendLocalResponse]) {
        assert!(stream.local_response.is_none(), "an answer nobody sent");
    }

    if debug() {
        eprintln!("request phase: {outcome:?}");
    }
    let end_of_stream = match outcome {
        Err(e) => {
            check_error(&e, case, &[CONTEXT_CREATE, REQUEST_HEADERS]);
            None
        }
        Ok(RequestOutcome::Answered) => {
            // As the proxy does: the answer becomes the response the response hooks see.
            let local = stream
                .local_response
                .take()
                .expect("an answered request has a local response");
            stream.response = Some(ResponseHead {
                status: local.status,
                headers: local.headers,
            });
            Some(true)
        }
        Ok(RequestOutcome::Forward) => {
            // Under `failure = "open"` a plugin may answer and then fail; it is skipped.
            assert!(
                stream.local_response.is_none() || case.policy == FailurePolicy::Open,
                "forwarded a request that holds an answer\n{case:#?}"
            );
            stream.response = Some(case.response.clone());
            Some(case.response_eos)
        }
    };
    let response_ok = end_of_stream.map(|eos| {
        let before = request_view(&stream.request);
        let result = chain_run.on_response(&mut stream, eos);
        if debug() {
            eprintln!("response phase: {result:?}");
        }
        match &result {
            Err(e) => check_error(e, case, &[RESPONSE_HEADERS]),
            Ok(()) => {
                check_stream(&stream, case, "after the response phase");
                assert!(
                    request_view(&stream.request) == before,
                    "the response phase changed the request\n{case:#?}"
                );
            }
        }
        result.is_ok()
    });
    if response_ok == Some(true) {
        let request = request_view(&stream.request);
        let response = response_views(&stream);
        chain_run.finish(&mut stream);
        assert!(
            request_view(&stream.request) == request && response_views(&stream) == response,
            "the log phase changed the request or response\n{case:#?}"
        );
    } else {
        // An early end, as in the proxy: the open contexts get only on_delete, as the run drops.
        drop(chain_run);
    }

    // The plugin still serves: a fresh request, on the same instance or its replacement.
    let mut probe = Box::new(Stream {
        request: RequestHead {
            path: "/serving-uci/probe".into(),
            ..RequestHead::default()
        },
        info: Some(Case::info()),
        request_end_of_stream: true,
        ..Stream::default()
    });
    let (mut probe_run, outcome) = chain.on_request(&mut probe);
    assert!(
        matches!(outcome, Ok(RequestOutcome::Forward)),
        "the next request failed: {outcome:?}\n{case:#?}"
    );
    assert_eq!(
        probe.request.headers.get("x-probe").map(|v| v.as_bytes()),
        Some(&b"ok"[..]),
        "the next request's plugin call did not run\n{case:#?}"
    );
    probe.response = Some(ResponseHead {
        status: StatusCode::OK,
        headers: HeaderMap::new(),
    });
    probe_run
        .on_response(&mut probe, true)
        .unwrap_or_else(|e| panic!("the next request's response failed: {e}\n{case:#?}"));
    probe_run.finish(&mut probe);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guest_is_valid_and_its_masks_follow_the_spec_table() {
        harness();
        // Spot checks of the model against docs/abi.md.
        let a = |v: &[i32]| {
            let mut args = [0; 10];
            args[..v.len()].copy_from_slice(v);
            args
        };
        assert_eq!(expected(Op::Log, 3, &a(&[2, 0, 0x1_0001])), BAD_ARGUMENT);
        assert_eq!(expected(Op::Log, 3, &a(&[2, -1, 2])), INVALID_MEMORY);
        assert_eq!(
            expected(Op::AddMapValue, 0, &a(&[0, 16, 1, 32, 1])),
            INVALID_MEMORY | NOT_FOUND
        );
        assert_eq!(
            expected(Op::AddMapValue, 4, &a(&[0, 16, 1, 32, 1])),
            INVALID_MEMORY | BAD_ARGUMENT
        );
        assert_eq!(
            expected(Op::SendLocalResponse, 5, &a(&[401])),
            INVALID_MEMORY | BAD_ARGUMENT
        );
        assert_eq!(expected(Op::HttpCall, 3, &a(&[])), UNIMPLEMENTED);
        assert_eq!(expected(Op::FdWrite, 3, &a(&[3])), WASI_EBADF);
    }

    #[test]
    fn an_empty_input_runs_every_callback_and_the_probe() {
        fuzz_abi(&[]);
        fuzz_abi(&[0xff; 64]);
    }
}

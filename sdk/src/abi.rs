//! Where the SDK meets the proxy-wasm 0.2.1 ABI: the host imports (module `env`), the export
//! functions that [`export_plugin!`](crate::export_plugin) generates, and the copying of bytes
//! across the guest/host boundary. This is the only module allowed `unsafe`; the lifecycle logic
//! it forwards to lives in safe code (`dispatch`).
//!
//! Everything but the macro and a compile-time check is built for `target_arch = "wasm32"` only.

/// Defines the proxy-wasm exports of a module for a [`Plugin`](crate::Plugin) type; use it once,
/// in the plugin crate's `lib.rs`. On targets other than wasm32 it only checks the type, so the
/// crate still builds and tests natively.
///
/// `export_plugin!(Type)` exports the request hook only: the module has no
/// `proxy_on_response_headers`, and the host does not call it for responses. A type that also
/// implements [`OnResponse`](crate::OnResponse) is exported with `export_plugin!(Type,
/// OnResponse)`; the first form refuses it at compile time, so its response hook cannot be lost.
///
/// ```
/// # use wasmgate_sdk::{Plugin, Decision, Request};
/// struct Allow;
/// impl Plugin for Allow {
///     type Config = serde_json::Value;
///     fn configure(_: serde_json::Value) -> Result<Self, String> { Ok(Allow) }
/// }
/// wasmgate_sdk::export_plugin!(Allow);
/// ```
///
/// ```compile_fail,E0277
/// # use wasmgate_sdk::{Plugin, Decision, OnResponse, Response};
/// struct Tag;
/// impl Plugin for Tag {
///     type Config = serde_json::Value;
///     fn configure(_: serde_json::Value) -> Result<Self, String> { Ok(Tag) }
/// }
/// impl OnResponse for Tag {
///     fn on_response(&self, _: &mut Response<'_>) -> Decision { Decision::Continue }
/// }
/// // error[E0277]: this plugin implements `OnResponse`: export it with `export_plugin!(Type, OnResponse)`
/// wasmgate_sdk::export_plugin!(Tag);
/// ```
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        $crate::export_plugin!(@exports $plugin, on_configure);

        // Refuses a type that implements `OnResponse` (its hook would never be called): the
        // probe's method resolves to the `OnResponse` impl when there is one, and its result is
        // not `RequestOnly`.
        const _: fn() = || {
            #[allow(unused_imports)]
            use $crate::__private::{ProbeRequestOnly as _, ProbeResponse as _};
            $crate::__private::request_only(
                (&$crate::__private::Probe::<$plugin>(::core::marker::PhantomData)).__wasmgate_sdk_probe(),
            );
        };
    };
    ($plugin:ty, OnResponse) => {
        $crate::export_plugin!(@exports $plugin, on_configure_with_response);

        #[cfg(target_arch = "wasm32")]
        #[allow(unsafe_code)]
        const _: () = {
            // SAFETY: the proxy-wasm 0.2.1 export name with the ABI's signature; no other code of
            // the module defines it (see below).
            #[unsafe(no_mangle)]
            pub extern "C" fn proxy_on_response_headers(
                context_id: u32,
                num_headers: usize,
                end_of_stream: u32,
            ) -> u32 {
                $crate::__private::on_response_headers(context_id, num_headers, end_of_stream)
            }
        };
    };
    (@exports $plugin:ty, $configure:ident) => {
        #[cfg(target_arch = "wasm32")]
        #[allow(unsafe_code)]
        const _: () = {
            use $crate::__private as sdk;

            // SAFETY (every `no_mangle` below): these are the proxy-wasm 0.2.1 export names with
            // the ABI's signatures; `export_plugin!` is used once per module, and no other code
            // of the module defines these symbols.
            #[unsafe(no_mangle)]
            pub extern "C" fn proxy_abi_version_0_2_1() {}

            #[unsafe(no_mangle)]
            pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
                sdk::on_memory_allocate(size)
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn proxy_on_context_create(context_id: u32, parent_context_id: u32) {
                sdk::on_context_create(context_id, parent_context_id)
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn proxy_on_vm_start(root_id: u32, vm_config_size: usize) -> u32 {
                sdk::on_vm_start(root_id, vm_config_size)
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn proxy_on_configure(root_id: u32, plugin_config_size: usize) -> u32 {
                sdk::$configure::<$plugin>(root_id, plugin_config_size)
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn proxy_on_request_headers(
                context_id: u32,
                num_headers: usize,
                end_of_stream: u32,
            ) -> u32 {
                sdk::on_request_headers(context_id, num_headers, end_of_stream)
            }

            // No `proxy_on_request_body`, `proxy_on_response_body`, `proxy_on_done` or
            // `proxy_on_log`: the SDK does nothing there, and a host skips a callback the module
            // does not export (bodies pass, the context is done at once). Each would cost a call
            // into the module per request for nothing. `proxy_on_response_headers` is exported
            // only for an `OnResponse` plugin, for the same reason.

            #[unsafe(no_mangle)]
            pub extern "C" fn proxy_on_delete(context_id: u32) {
                sdk::on_delete(context_id)
            }
        };

        #[cfg(not(target_arch = "wasm32"))]
        const _: fn() = $crate::__private::$configure::<$plugin>;
    };
}

/// The functions the generated exports call. Not part of the public API.
#[doc(hidden)]
pub mod exports {
    use std::marker::PhantomData;

    /// Off wasm, `export_plugin!` names these instead of the exports: they only check the type.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn on_configure<P: crate::Plugin>() {}

    /// See [`on_configure`].
    #[cfg(not(target_arch = "wasm32"))]
    pub fn on_configure_with_response<P: crate::OnResponse>() {}

    /// The type `export_plugin!(T)` probes for an `OnResponse` impl.
    pub struct Probe<P>(pub PhantomData<P>);

    /// What the probe finds for a type without `OnResponse`.
    pub struct RequestOnly;

    /// What the probe finds for a type with `OnResponse`.
    pub struct HasResponseHook;

    /// Chosen first, by method resolution, when `P: OnResponse`.
    pub trait ProbeResponse {
        fn __wasmgate_sdk_probe(&self) -> HasResponseHook;
    }

    impl<P: crate::OnResponse> ProbeResponse for Probe<P> {
        fn __wasmgate_sdk_probe(&self) -> HasResponseHook {
            HasResponseHook
        }
    }

    /// Chosen otherwise (one auto-reference further).
    pub trait ProbeRequestOnly {
        fn __wasmgate_sdk_probe(&self) -> RequestOnly;
    }

    impl<P> ProbeRequestOnly for &Probe<P> {
        fn __wasmgate_sdk_probe(&self) -> RequestOnly {
            RequestOnly
        }
    }

    /// Accepts what the probe found for a type exported without `OnResponse`.
    pub fn request_only<T: ExportedWithoutOnResponse>(_: T) {}

    /// Implemented only by [`RequestOnly`]: the error names what to write instead.
    #[diagnostic::on_unimplemented(
        message = "this plugin implements `OnResponse`: export it with `export_plugin!(Type, OnResponse)`",
        label = "`export_plugin!(Type)` exports no response hook"
    )]
    pub trait ExportedWithoutOnResponse {}

    impl ExportedWithoutOnResponse for RequestOnly {}

    #[cfg(target_arch = "wasm32")]
    pub use super::wasm::exports::*;
}

#[cfg(target_arch = "wasm32")]
pub(crate) use wasm::{current_time_nanos, log, log_level};

/// The buffers the host fills for the guest: `proxy_on_memory_allocate` hands one out, a host
/// call hands it back filled. Plain Rust apart from the one `from_raw_parts`, so it is unit-tested
/// natively; on wasm the exports and `HostMap` use it.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
mod buffers {
    use std::cell::Cell;

    thread_local! {
        // A wasm32 module is single-threaded: one of each per instance.
        /// A buffer a value was read into and that its reader gave back ([`recycle`]): the next
        /// `proxy_on_memory_allocate` it is large enough for lends it to the host instead of
        /// allocating, and the value comes back in it.
        static SPARE: Cell<Option<Vec<u8>>> = const { Cell::new(None) };
        /// The buffer lent to the host (its pointer and capacity) until the host hands it back.
        /// One at a time: while it is out, `allocate` allocates.
        static LENT: Cell<Option<(*mut u8, usize)>> = const { Cell::new(None) };
    }

    /// Largest buffer kept for reuse: header values are short, and an instance should not hold
    /// on to the largest value it ever read.
    pub(crate) const SPARE_MAX: usize = 4096;

    /// Gives a value's buffer back for the next value the host hands over (see `SPARE`).
    pub(crate) fn recycle(buffer: Vec<u8>) {
        if buffer.capacity() > 0 && buffer.capacity() <= SPARE_MAX {
            SPARE.set(Some(buffer));
        }
    }

    /// `proxy_on_memory_allocate`: the spare buffer if it is large enough and none is lent
    /// already, else a new one. Not zeroed: the host writes every byte, and zeroing cost a
    /// `memory.fill` call into the host for every value it returned.
    pub(crate) fn allocate(size: usize) -> *mut u8 {
        // Only one buffer is lent at a time: a host that allocates twice before handing the
        // first back gets a new one the second time, so each pointer keeps its own record.
        // A spare too small is freed here.
        if size > 0
            && LENT.get().is_none()
            && let Some(mut spare) = SPARE.take()
            && spare.capacity() >= size
        {
            let lent = spare.as_mut_ptr();
            LENT.set(Some((lent, spare.capacity())));
            std::mem::forget(spare);
            return lent;
        }
        let buffer: &mut [std::mem::MaybeUninit<u8>] = Box::leak(Box::new_uninit_slice(size));
        buffer.as_mut_ptr().cast()
    }

    /// Takes ownership of a buffer the host placed in guest memory through
    /// `proxy_on_memory_allocate` ([`allocate`]) and filled with `size` bytes.
    pub(crate) fn take_host_buffer(data: *mut u8, size: usize) -> Vec<u8> {
        if data.is_null() || size == 0 {
            // A zero-size allocation owns no memory, so there is nothing to free.
            return Vec::new();
        }
        // The spare buffer, if that is what the host filled, keeps its whole capacity.
        let capacity = match LENT.get() {
            Some((lent, capacity)) if lent == data => {
                LENT.set(None);
                capacity
            }
            _ => size,
        };
        // SAFETY: the host got `data` from `proxy_on_memory_allocate(size)` (`allocate`), which
        // either leaked a boxed slice of exactly `size` bytes from the global allocator
        // (capacity == length == size) or lent the spare `Vec`'s buffer of `capacity >= size`
        // bytes, recorded in `LENT` (the only buffer out on loan until it comes back here, so
        // the record is its own) and forgotten; the host wrote the first `size` bytes (the ABI's
        // contract for a returned buffer) and handed ownership back to us; nothing else refers
        // to it.
        unsafe { Vec::from_raw_parts(data, size, capacity) }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        /// What a host does: allocate, write `value`, hand the buffer back.
        fn round_trip(value: &[u8]) -> Vec<u8> {
            let data = allocate(value.len());
            // SAFETY: `allocate` returned a buffer of at least `value.len()` bytes that nothing
            // else refers to until `take_host_buffer`: the test writes it as a host would.
            let filled = unsafe { std::slice::from_raw_parts_mut(data, value.len()) };
            filled.copy_from_slice(value);
            take_host_buffer(data, value.len())
        }

        #[test]
        fn a_given_back_buffer_carries_the_next_value_that_fits() {
            let first = round_trip(b"0123456789");
            let first_ptr = first.as_ptr();
            recycle(first);
            let second = round_trip(b"abc");
            assert_eq!(second, b"abc", "exactly the new value, nothing of the old");
            assert_eq!(second.as_ptr(), first_ptr, "the spare was lent");
            assert_eq!(second.capacity(), 10);
            recycle(second);
            // Larger than the spare: a new buffer, and the spare is freed.
            let third = round_trip(b"0123456789abcdef");
            assert_eq!(third, b"0123456789abcdef");
            assert_eq!(third.capacity(), 16);
            assert_eq!(round_trip(b""), b"");
            assert!(SPARE.take().is_none() && LENT.get().is_none());
        }

        #[test]
        fn two_allocations_before_a_hand_back_each_keep_their_own_size() {
            recycle(Vec::with_capacity(64));
            let lent = allocate(8);
            // A spare given back meanwhile is not lent while the first is out.
            recycle(Vec::with_capacity(32));
            let fresh = allocate(8);
            assert_ne!(lent, fresh, "the second is not the lent spare");
            for (p, byte) in [(lent, b'l'), (fresh, b'f')] {
                // SAFETY: both came from `allocate(8)` and are not yet handed back.
                unsafe { std::ptr::write_bytes(p, byte, 8) };
            }
            // Handed back in the other order: each Vec gets its own capacity.
            let fresh = take_host_buffer(fresh, 8);
            let lent = take_host_buffer(lent, 8);
            assert_eq!((fresh.capacity(), lent.capacity()), (8, 64));
            assert_eq!((fresh[0], lent[0]), (b'f', b'l'));
            assert!(LENT.get().is_none());
            assert_eq!(SPARE.take().map(|s| s.capacity()), Some(32));
            // Too large to keep.
            recycle(Vec::with_capacity(SPARE_MAX + 1));
            assert!(SPARE.take().is_none());
        }
    }
}

#[cfg(target_arch = "wasm32")]
mod wasm {
    use std::ptr;

    use crate::LocalResponse;
    use crate::codec::{decode_map, encode_map};
    use crate::http::HeaderBackend;

    /// proxy-wasm status codes the SDK looks at.
    const STATUS_OK: u32 = 0;
    const STATUS_NOT_FOUND: u32 = 1;
    const STATUS_EMPTY: u32 = 7;

    /// Buffer type of the plugin configuration.
    const BUFFER_PLUGIN_CONFIGURATION: u32 = 7;
    /// Header map types.
    const MAP_REQUEST_HEADERS: u32 = 0;
    const MAP_RESPONSE_HEADERS: u32 = 2;

    #[link(wasm_import_module = "env")]
    unsafe extern "C" {
        fn proxy_log(level: u32, message_data: *const u8, message_size: usize) -> u32;
        fn proxy_get_buffer_bytes(
            buffer_type: u32,
            start: usize,
            max_size: usize,
            return_buffer_data: *mut *mut u8,
            return_buffer_size: *mut usize,
        ) -> u32;
        fn proxy_get_header_map_pairs(
            map_type: u32,
            return_map_data: *mut *mut u8,
            return_map_size: *mut usize,
        ) -> u32;
        fn proxy_get_header_map_value(
            map_type: u32,
            key_data: *const u8,
            key_size: usize,
            return_value_data: *mut *mut u8,
            return_value_size: *mut usize,
        ) -> u32;
        fn proxy_add_header_map_value(
            map_type: u32,
            key_data: *const u8,
            key_size: usize,
            value_data: *const u8,
            value_size: usize,
        ) -> u32;
        fn proxy_replace_header_map_value(
            map_type: u32,
            key_data: *const u8,
            key_size: usize,
            value_data: *const u8,
            value_size: usize,
        ) -> u32;
        fn proxy_remove_header_map_value(
            map_type: u32,
            key_data: *const u8,
            key_size: usize,
        ) -> u32;
        #[allow(clippy::too_many_arguments)]
        fn proxy_send_local_response(
            status_code: u32,
            status_code_details_data: *const u8,
            status_code_details_size: usize,
            body_data: *const u8,
            body_size: usize,
            headers_data: *const u8,
            headers_size: usize,
            grpc_status: i32,
        ) -> u32;
        fn proxy_get_property(
            path_data: *const u8,
            path_size: usize,
            return_value_data: *mut *mut u8,
            return_value_size: *mut usize,
        ) -> u32;
        fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> u32;
        fn proxy_get_log_level(return_level: *mut u32) -> u32;
    }

    use super::buffers::{allocate, recycle, take_host_buffer};

    /// Calls a host function that returns a buffer through two out-pointers.
    fn call_returning_buffer(
        f: impl FnOnce(*mut *mut u8, *mut usize) -> u32,
    ) -> Result<Vec<u8>, u32> {
        let mut data: *mut u8 = ptr::null_mut();
        let mut size: usize = 0;
        let status = f(&mut data, &mut size);
        if status == STATUS_OK {
            Ok(take_host_buffer(data, size))
        } else {
            Err(status)
        }
    }

    pub(crate) fn log(level: u32, message: &str) {
        // SAFETY: the pointer and length describe `message`, which outlives the call; the host
        // only reads them.
        let _ = unsafe { proxy_log(level, message.as_ptr(), message.len()) };
    }

    /// The host's log level (the lowest level it keeps), or `None` when it cannot tell.
    pub(crate) fn log_level() -> Option<u32> {
        let mut level: u32 = 0;
        // SAFETY: `level` is a live local that the host writes once (4 bytes).
        let status = unsafe { proxy_get_log_level(&mut level) };
        (status == STATUS_OK).then_some(level)
    }

    /// The host's wall-clock time in nanoseconds since the Unix epoch, or the host's status when
    /// it cannot tell.
    pub(crate) fn current_time_nanos() -> Result<u64, u32> {
        let mut nanos: u64 = 0;
        // SAFETY: `nanos` is a live local that the host writes once (8 bytes).
        let status = unsafe { proxy_get_current_time_nanoseconds(&mut nanos) };
        if status == STATUS_OK {
            Ok(nanos)
        } else {
            Err(status)
        }
    }

    fn plugin_configuration(size: usize) -> Result<Vec<u8>, u32> {
        if size == 0 {
            return Ok(Vec::new());
        }
        let got = call_returning_buffer(|data, len| {
            // SAFETY: `data` and `len` point at live locals of `call_returning_buffer`, which
            // the host writes once.
            unsafe { proxy_get_buffer_bytes(BUFFER_PLUGIN_CONFIGURATION, 0, size, data, len) }
        });
        match got {
            Err(STATUS_NOT_FOUND | STATUS_EMPTY) => Ok(Vec::new()),
            other => other,
        }
    }

    fn send_local_response(response: &LocalResponse) -> bool {
        let headers = encode_map(&response.headers);
        // SAFETY: each pointer and length describes a live slice (`response.body`, `headers`, an
        // empty details string) that outlives the call; the host only reads them.
        let status = unsafe {
            proxy_send_local_response(
                u32::from(response.status),
                ptr::null(),
                0,
                response.body.as_ptr(),
                response.body.len(),
                headers.as_ptr(),
                headers.len(),
                -1,
            )
        };
        status == STATUS_OK
    }

    fn property(path: &[&str]) -> Option<Vec<u8>> {
        let joined = path.join("\0");
        call_returning_buffer(|data, len| {
            // SAFETY: `joined` outlives the call and is only read; `data`/`len` point at live
            // locals that the host writes once.
            unsafe { proxy_get_property(joined.as_ptr(), joined.len(), data, len) }
        })
        .ok()
    }

    /// The host's header map of one type, seen through [`HeaderBackend`].
    struct HostMap(u32);

    impl HostMap {
        fn check(&self, what: &str, status: u32) {
            if status != STATUS_OK {
                crate::log::warn(&format!("host refused {what} (status {status})"));
            }
        }
    }

    impl HeaderBackend for HostMap {
        fn recycle(&self, value: Vec<u8>) {
            recycle(value);
        }

        fn get(&self, name: &str) -> Option<Vec<u8>> {
            call_returning_buffer(|data, len| {
                // SAFETY: `name` outlives the call and is only read; `data`/`len` point at live
                // locals that the host writes once.
                unsafe { proxy_get_header_map_value(self.0, name.as_ptr(), name.len(), data, len) }
            })
            .ok()
        }

        fn pairs(&self) -> Vec<(String, Vec<u8>)> {
            let bytes = call_returning_buffer(|data, len| {
                // SAFETY: `data`/`len` point at live locals that the host writes once.
                unsafe { proxy_get_header_map_pairs(self.0, data, len) }
            })
            .unwrap_or_default();
            match decode_map(&bytes) {
                Some(pairs) => pairs
                    .into_iter()
                    .map(|(k, v)| (String::from_utf8_lossy(&k).into_owned(), v))
                    .collect(),
                None => {
                    crate::log::error("host sent a malformed header map");
                    Vec::new()
                }
            }
        }

        fn replace(&mut self, name: &str, value: &[u8]) {
            // SAFETY: `name` and `value` outlive the call and are only read.
            let status = unsafe {
                proxy_replace_header_map_value(
                    self.0,
                    name.as_ptr(),
                    name.len(),
                    value.as_ptr(),
                    value.len(),
                )
            };
            self.check("to replace a header", status);
        }

        fn add(&mut self, name: &str, value: &[u8]) {
            // SAFETY: `name` and `value` outlive the call and are only read.
            let status = unsafe {
                proxy_add_header_map_value(
                    self.0,
                    name.as_ptr(),
                    name.len(),
                    value.as_ptr(),
                    value.len(),
                )
            };
            self.check("to add a header", status);
        }

        fn remove(&mut self, name: &str) {
            // SAFETY: `name` outlives the call and is only read.
            let status =
                unsafe { proxy_remove_header_map_value(self.0, name.as_ptr(), name.len()) };
            self.check("to remove a header", status);
        }

        fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
            property(path)
        }
    }

    /// The bodies of the exports `export_plugin!` generates.
    pub(crate) mod exports {
        use std::cell::RefCell;

        use super::{
            HostMap, MAP_REQUEST_HEADERS, MAP_RESPONSE_HEADERS, plugin_configuration,
            send_local_response,
        };
        use crate::dispatch::Dispatcher;
        use crate::{OnResponse, Plugin};

        thread_local! {
            // A wasm32 module is single-threaded: this is the instance's one state.
            static DISPATCHER: RefCell<Dispatcher> = const { RefCell::new(Dispatcher::new()) };
        }

        /// Hands the host a buffer of `size` bytes, which it fills and hands back as a return
        /// value (see `take_host_buffer`).
        pub fn on_memory_allocate(size: usize) -> *mut u8 {
            super::allocate(size)
        }

        /// `proxy_on_context_create`: records a root or HTTP context.
        pub fn on_context_create(context_id: u32, parent_context_id: u32) {
            DISPATCHER.with(|d| d.borrow_mut().context_create(context_id, parent_context_id));
        }

        /// `proxy_on_vm_start`: nothing to do; the plugin is built at configure.
        pub fn on_vm_start(_root_id: u32, _vm_config_size: usize) -> u32 {
            1
        }

        /// `proxy_on_configure` of a plugin without a response hook.
        pub fn on_configure<P: Plugin>(root_id: u32, plugin_config_size: usize) -> u32 {
            configure(root_id, plugin_config_size, Dispatcher::configure::<P>)
        }

        /// `proxy_on_configure` of an [`OnResponse`] plugin.
        pub fn on_configure_with_response<P: OnResponse>(
            root_id: u32,
            plugin_config_size: usize,
        ) -> u32 {
            configure(
                root_id,
                plugin_config_size,
                Dispatcher::configure_with_response::<P>,
            )
        }

        /// Reads the configuration buffer and builds the plugin with `build`.
        fn configure(
            root_id: u32,
            plugin_config_size: usize,
            build: fn(&mut Dispatcher, u32, &[u8]) -> bool,
        ) -> u32 {
            let config = match plugin_configuration(plugin_config_size) {
                Ok(c) => c,
                Err(status) => {
                    crate::log::error(&format!(
                        "cannot read the plugin configuration (status {status})"
                    ));
                    return 0;
                }
            };
            DISPATCHER.with(|d| u32::from(build(&mut d.borrow_mut(), root_id, &config)))
        }

        /// `proxy_on_request_headers`: runs `Plugin::on_request`.
        pub fn on_request_headers(context_id: u32, _num_headers: usize, _eos: u32) -> u32 {
            DISPATCHER.with(|d| {
                d.borrow_mut().request_headers(
                    context_id,
                    &mut HostMap(MAP_REQUEST_HEADERS),
                    &mut send_local_response,
                ) as u32
            })
        }

        /// `proxy_on_response_headers`: runs `OnResponse::on_response`.
        pub fn on_response_headers(context_id: u32, _num_headers: usize, _eos: u32) -> u32 {
            DISPATCHER.with(|d| {
                d.borrow_mut().response_headers(
                    context_id,
                    &mut HostMap(MAP_RESPONSE_HEADERS),
                    &mut send_local_response,
                ) as u32
            })
        }

        /// `proxy_on_delete`: forgets the context's state.
        pub fn on_delete(context_id: u32) {
            DISPATCHER.with(|d| d.borrow_mut().delete(context_id));
        }
    }
}

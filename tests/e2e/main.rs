//! End-to-end tests: the real gateway, the real built plugins (`make wasm`), a recording demo
//! model server, and real sockets on loopback port 0. One binary, so wasmtime links once.

mod admin;
mod compat;
mod config_errors;
mod custom;
mod faults;
mod forwarding;
mod hostile;
mod limits;
mod logs;
mod reload;
mod seed;

//! herald: persistent and reliable delivery of event messages.
//!
//! Modules depend downward only, in this order (see `DESIGN.md`):
//! `pmem` → `log` → `subscription` → `delivery`; `protocol` stands alone;
//! `client` uses `protocol`.

pub mod client;
pub mod delivery;
pub mod log;
pub mod pmem;
pub mod protocol;
pub mod reactor;
pub mod subscription;

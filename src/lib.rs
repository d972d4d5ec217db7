//! herald: persistent and reliable delivery of event messages.
//!
//! Modules depend downward only, in this order (see `DESIGN.md`):
//! `pmem` → `log` → `subscription` → `delivery`; `protocol` stands alone;
//! `client` uses `protocol`. `measure` (benchmark helpers, not part of the client
//! API) uses `protocol`.

pub mod client;
pub mod delivery;
pub mod log;
pub mod measure;
pub mod pmem;
pub mod protocol;
pub mod subscription;

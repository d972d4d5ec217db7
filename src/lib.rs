//! herald: persistent and reliable delivery of event messages.
//!
//! Modules depend downward only (see `DESIGN.md`). `event` is the leaf every layer
//! shares: what an event is (sequence number, severity, topic and pattern grammar,
//! subscription mode) and every limit. Above it:
//! - `pmem` stands alone (it needs no event type);
//! - `log` uses `pmem` and `event`;
//! - `protocol` uses `event`;
//! - `subscription` uses `log` and `event`;
//! - `reactor` (the I/O seam: io_uring, epoll, the simulator) stands alone;
//! - `metrics` (the Prometheus exporter and the snapshot the loop hands it) uses `event`;
//! - `delivery` (the daemon) uses `log`, `protocol`, `subscription`, `reactor` and
//!   `metrics`;
//! - `client` uses `protocol`;
//! - `sim` (the daemon in one process, for tests) uses `delivery` and `reactor`;
//! - `measure` (benchmark helpers, not part of the client API) uses `protocol`;
//! - `tls` (certificate files, a certificate's identity, rustls' errors in words)
//!   stands alone; `delivery` and `client` use it.

pub mod client;
pub mod delivery;
pub mod event;
pub mod log;
pub mod measure;
pub mod metrics;
pub mod nats;
pub mod pmem;
pub mod protocol;
pub mod reactor;
pub mod routing;
pub mod sim;
pub mod subscription;
pub mod tls;

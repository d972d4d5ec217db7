//! The checks behind herald's fuzz targets, one module per target (`fuzz_targets/`
//! holds the libFuzzer entry points). Each `run` takes one input and panics on a broken
//! invariant. The modules use only `herald` and std: the main crate's
//! `tests/fuzz_regressions.rs` includes them by path to replay committed inputs.

pub mod bytes;
pub mod daemon;
pub mod dead_letters;
pub mod frame;
pub mod region;
pub mod reseal;
pub mod seeds;
pub mod spec;

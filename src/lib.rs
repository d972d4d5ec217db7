pub mod log;
pub mod pmem;

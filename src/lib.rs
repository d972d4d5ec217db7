pub mod log;
pub mod pmem;
pub mod protocol;

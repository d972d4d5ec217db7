pub mod pmem; pub mod log;

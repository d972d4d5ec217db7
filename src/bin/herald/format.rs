//! `herald format`: prepare a region on purpose (a device-DAX node before first use,
//! or a file at a chosen size and geometry).

use herald::log::{self, LogConfig, StoreOptions};
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `herald format`.
#[derive(clap::Args)]
pub struct FormatArgs {
    /// Region to format: a device-DAX node, a file on a DAX filesystem, or an ordinary
    /// file (created at --size if missing).
    path: PathBuf,
    /// Size of a file created now (K, M, G suffixes); devices and existing files keep
    /// their size.
    #[arg(long, default_value = "64M", value_parser = crate::serve::parse_size, value_name = "SIZE")]
    size: u64,
    /// Bytes per ring slot (multiple of 64).
    #[arg(long, default_value_t = 128, value_name = "BYTES")]
    slot_bytes: u32,
    /// Largest event payload the region accepts.
    #[arg(long, default_value_t = 64 * 1024, value_name = "BYTES")]
    payload_max: u32,
    /// Durable subscriptions the region can hold.
    #[arg(long, default_value_t = 64, value_name = "N")]
    subscriptions: u32,
    /// Entries of the routing rule table (`herald rules`): each active rule takes one,
    /// and so does each earlier version while events it routed are in the ring. 0 = no
    /// rule table; at most 255.
    #[arg(long, default_value_t = 64, value_name = "N")]
    rules: u32,
    /// Overwrite a region or data that is already there (its events are lost).
    #[arg(long)]
    force: bool,
}

pub fn run(args: FormatArgs) -> anyhow::Result<ExitCode> {
    let options = StoreOptions {
        config: LogConfig {
            slot_bytes: args.slot_bytes,
            reserve_slots: None,
            subscription_entries: args.subscriptions,
            payload_bytes_max: args.payload_max,
            dead_letter_slots: None,
            rule_entries: args.rules,
        },
        ..Default::default()
    };
    let node_id = rand::random::<u64>() | 1;
    let log = if args.path.exists() {
        log::format_existing(&args.path, &options, node_id, args.force)?
    } else {
        log::create_file(&args.path, args.size, &options, node_id)?
    };
    let g = log.geometry();
    let info = log.medium().info();
    println!(
        "formatted {} ({}, flush {}): {} slots of {} B, reserve {} slots, payload max {} B, {} subscription entries, node {:016x}",
        args.path.display(),
        info.kind.name(),
        info.flush.name(),
        g.ring.slot_count,
        g.ring.slot_bytes,
        g.ring.reserve_slots,
        g.ring.payload_bytes_max,
        g.subscriptions.entry_count,
        g.node_id
    );
    Ok(ExitCode::SUCCESS)
}

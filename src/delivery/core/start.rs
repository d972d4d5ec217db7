//! Starting the loop: the core built over an opened log and a listening reactor
//! (every buffer allocated, the subscriptions loaded, the dedupe window rebuilt from
//! the log, the forwarder's subscription attached), and the TLS listener handed to it.

use super::*;

impl<R: Reactor, M: Medium> Core<R, M> {
    /// Takes an opened log and a reactor already listening; allocates every buffer and
    /// loads the durable subscriptions (`previous_stop_clean`: else those with unsettled
    /// events start recovering).
    pub fn new(
        config: DaemonConfig,
        reactor: R,
        mut log: Log<M>,
        previous_stop_clean: bool,
        start: StartInfo,
    ) -> Result<Core<R, M>, DaemonError> {
        let connections = config.connection_slots();
        let subscriptions = log.geometry().subscriptions.entry_count as usize + connections;
        let recovered_tail = log.tail().0;
        let mut subs = SubscriptionSet::new(subscriptions);
        let routes = load_routes(&log);
        subs.load_durable(
            &mut log,
            &config.redelivery,
            recovered_tail,
            previous_stop_clean,
            &routes,
        )
        .map_err(DaemonError::Log)?;
        if let Some(retention) = config.retention {
            check_retention(retention, log.geometry())?;
            log.set_retention(Some(retention));
            log.advance_retention(reactor.unix_ns());
        }
        let identity = Identity {
            node_id: log.geometry().node_id,
            payload_max: log
                .geometry()
                .ring
                .payload_bytes_max
                .min(protocol::EVENT_PAYLOAD_BYTES_MAX as u64) as u32,
        };
        let mut dedupe = DedupeWindow::new(
            config
                .dedupe_records
                .clamp(1, crate::event::limits::DEDUPE_WINDOW_RECORDS_MAX),
            config
                .dedupe_age
                .min(crate::event::limits::DEDUPE_WINDOW_AGE_MAX),
        );
        rebuild_dedupe_window(&log, &mut dedupe, reactor.unix_ns());
        let forwarder = match &config.forward {
            Some(forward) => Some(Box::new(start_forwarder(
                forward,
                &mut subs,
                &mut log,
                &config,
                identity.node_id,
            )?)),
            None => None,
        };
        if !config.upstreams.is_empty() && !log.geometry().holds_relayed() {
            return Err(DaemonError::Config(format!(
                "--upstream: this region has layout version {} and cannot hold relayed events \
                 (their origin is part of the record, layout version 2): give the relay a new \
                 region (another --data-dir or --region)",
                log.geometry().layout_version
            )));
        }
        let first_upstream_slot = connections + usize::from(forwarder.is_some());
        let upstreams = config
            .upstreams
            .iter()
            .enumerate()
            .map(|(i, u)| {
                tracing::info!(upstream = %u.text, subscription = %u.name, "relaying events from an upstream herald");
                Upstream::new(u.clone(), (first_upstream_slot + i) as u32)
            })
            .collect();
        let replaying = count_replaying(&subs);
        Ok(Core {
            routes,
            forwarder,
            upstreams,
            conns: Connections::new(connections),
            subs,
            pipeline: CommitPipeline::new(
                if log.deferred() {
                    Gate::Sync
                } else {
                    Gate::Fence
                },
                recovered_tail,
                identity,
            ),
            dead: DeadQueue::new(subscriptions),
            dedupe,
            deduplicated: 0,
            start,
            subscribes: Vec::with_capacity(connections),
            completions: Vec::with_capacity(config.ring_entries as usize * 2),
            cursor_updates: Vec::with_capacity(subscriptions),
            cursors_unsynced_since: None,
            now: reactor.now_ns(),
            unix_now: reactor.unix_ns(),
            phase: Phase::Running,
            next_housekeeping: 0,
            busy_frame: busy_frame(config.connection_slots()),
            timed_out: 0,
            sync_failed: None,
            connection_log: Limiter::default(),
            // A zero-sized notifier: boxing it allocates nothing.
            notifier: Box::new(NoNotifier),
            replaying,
            counters: Counters::default(),
            metrics: None,
            started_unix_ns: reactor.unix_ns(),
            access: Access::new(config.access.clone()),
            tls: None,
            more_input: false,
            config,
            reactor,
            log,
        })
    }

    /// Serves TLS on `listener` (already given to the reactor, bound to `address`)
    /// with `config`: its connections get a TLS session each.
    pub fn serve_tls(
        &mut self,
        listener: ListenerId,
        config: std::sync::Arc<rustls::ServerConfig>,
        address: std::net::SocketAddr,
    ) {
        self.tls = Some(TlsListener {
            id: listener,
            config,
            address,
        });
    }
}

/// Attaches the forwarder's durable subscription (created on first use, with the
/// configured filters) to the sink numbered after every connection slot.
fn start_forwarder<M: Medium, S>(
    forward: &crate::delivery::jetstream::ForwardConfig,
    subs: &mut SubscriptionSet,
    log: &mut Log<M>,
    config: &DaemonConfig,
    node_id: u64,
) -> Result<Forwarder<S>, DaemonError> {
    let patterns: Vec<&[u8]> = if forward.filters.is_empty() {
        vec![b">"]
    } else {
        forward.filters.iter().map(|p| p.as_bytes()).collect()
    };
    let window = forward
        .window
        .clamp(1, crate::event::limits::WINDOW_EVENTS_MAX);
    let ack_ms = forward
        .ack_timeout
        .as_millis()
        .clamp(1, u128::from(u32::MAX)) as u32;
    // Automatic recovery: after a crash the replay is simply published again.
    let spec = crate::subscription::SubscriptionSpec::new(
        crate::event::Severity::Debug,
        window,
        true,
        patterns,
    )
    .map_err(|e| DaemonError::Config(format!("--forward-filter: {e}")))?
    .with_policy(ack_ms, u16::MAX);
    let slot = config.connection_slots();
    let sink = crate::subscription::SinkId(slot as u32);
    let index = subs
        .attach(
            log,
            forward.name.as_bytes(),
            spec,
            &config.redelivery,
            sink,
            false,
        )
        .map_err(|e| match e {
            AttachError::OtherFilters => DaemonError::Config(format!(
                "the durable subscription {:?} exists with other filters: give another --forward-name, \
                 or change its filters with `herald subscriptions set`",
                forward.name
            )),
            other => DaemonError::Config(format!(
                "cannot attach the forwarder's subscription {:?}: {other}",
                forward.name
            )),
        })?;
    tracing::info!(url = %forward.url, subject_prefix = %forward.subject_prefix, subscription = %forward.name, "forwarding matching events into JetStream");
    Ok(Forwarder::new(forward.clone(), node_id, slot as u32, index))
}

/// The `busy` error frame for a connection beyond every one of `slots` slots.
fn busy_frame(slots: usize) -> Vec<u8> {
    let mut text = crate::delivery::reply::MessageText::new();
    let message = text.compose(
        "every one of the daemon's ",
        slots as u64,
        " connection slots is in use (--connections-max); try again later",
    );
    let mut frame =
        Vec::with_capacity(protocol::FRAME_HEADER_BYTES + protocol::ERROR_FIXED_BYTES + 256);
    let error = protocol::Frame::Error {
        correlation: 0,
        code: ErrorCode::Busy,
        message,
    };
    match protocol::encode_to_vec(&error, &mut frame) {
        Ok(_) => frame,
        // Cannot happen (the message is short); the connection is then closed silently.
        Err(_) => Vec::new(),
    }
}

/// The dedupe window survives restarts: every keyed event still intact in the ring
/// (released ones too, until their slots are reused) is remembered again.
fn rebuild_dedupe_window<M: Medium>(log: &Log<M>, dedupe: &mut DedupeWindow, unix_now: u64) {
    let tail = log.tail().0;
    let oldest = tail.saturating_sub(log.geometry().ring.slot_count);
    let mut remembered = 0u64;
    // A relayed event's key is its producer's at the origin, not a publish here.
    for e in log.events_since(Seq(oldest), tail) {
        if !e.key.is_empty() && e.hop.is_none() {
            dedupe.insert(e.source, e.key, e.seq, e.timestamp_ns);
            remembered += 1;
        }
    }
    dedupe.expire(unix_now, usize::MAX);
    if remembered > 0 {
        tracing::info!(keys = dedupe.len(), "idempotency keys rebuilt from the log");
    }
}

/// Strict retention of an amount must leave the ring room for unreleased events; one
/// that cannot be kept at all is worth a warning.
fn check_retention(
    retention: crate::log::Retention,
    g: &crate::log::Geometry,
) -> Result<(), DaemonError> {
    let crate::log::Retain::Bytes(bytes) = retention.retain else {
        return Ok(());
    };
    let slots = bytes.div_ceil(g.ring.slot_bytes);
    let room = g.ring.slot_count - g.ring.reserve_slots;
    let ring_bytes = g.ring.slot_count * g.ring.slot_bytes;
    if retention.strict && slots * 2 > room {
        return Err(DaemonError::Config(format!(
            "--retain {bytes} bytes with --retain-policy strict would keep more than half of the \
             ring ({ring_bytes} bytes) from unreleased events: retain less, or make the \
             region larger"
        )));
    }
    if slots >= room {
        tracing::warn!(
            retain_bytes = bytes,
            ring_bytes,
            "--retain asks for more than the ring holds: released events are kept only \
             as long as the ring's room allows"
        );
    }
    Ok(())
}

/// The rule table decoded; a version that does not decode (a newer herald's, or
/// damaged) is logged and routes nothing, and events naming it go by filters.
pub(in crate::delivery) fn load_routes<M: Medium>(log: &Log<M>) -> Routes {
    let (routes, problems) = Routes::load(log.rule_entries(), log.rule_table_entries());
    for (entry, error) in problems {
        tracing::warn!(rule = entry.id, version = entry.version, %error, "routing rule unreadable; events it routed go by each subscription's own filters");
    }
    routes
}

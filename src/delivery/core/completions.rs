//! The turn's first step: what the reactor reported since the last wait, routed to
//! the connection table, the JetStream forwarder, the relay's upstreams or the
//! commit pipeline (a sync's completion).

use super::*;

impl<R: Reactor, M: Medium> Core<R, M> {
    /// Applies the completions of the last wait: accepts, receives and sends (of
    /// connections, the forwarder and the upstreams), outbound connects, syncs, SIGTERM.
    pub(super) fn take_completions(&mut self) {
        let mut completions = std::mem::take(&mut self.completions);
        for c in completions.drain(..) {
            match c {
                Completion::Accepted { result, listener } => match result {
                    Ok(accepted) if self.phase == Phase::Running => {
                        let (peer, tls) = match &self.tls {
                            // SO_PEERCRED means nothing on TCP: the certificate names
                            // the peer, once verified.
                            Some(t) if t.id == listener => match TlsConn::new(&t.config) {
                                Ok(session) => (None, Some(Box::new(session))),
                                Err(e) => {
                                    tracing::error!(error = %e, "cannot start a TLS session; closing the connection");
                                    self.reactor.close(accepted.socket, None);
                                    continue;
                                }
                            },
                            _ => (accepted.peer, None),
                        };
                        let opened = self.conns.open(
                            &mut self.reactor,
                            accepted.socket,
                            peer,
                            self.now,
                            tls,
                        );
                        if let Err(socket) = opened {
                            if let Some(more) = self.connection_log.allow(self.now, 1_000_000_000) {
                                tracing::warn!(
                                    slots = self.config.connection_slots(),
                                    refused_since_last_line = more,
                                    refused_in_all = self.conns.refused,
                                    "connection refused: every connection slot is in use (raise --connections-max)"
                                );
                            }
                            self.reactor.refuse(socket, &self.busy_frame);
                        }
                    }
                    Ok(accepted) => self.reactor.close(accepted.socket, None),
                    Err(errno) => {
                        tracing::warn!(error = %std::io::Error::from_raw_os_error(errno), "accept failed")
                    }
                },
                Completion::Received { token, result } if self.forwards(token) => {
                    if let Some(f) = self.forwarder.as_deref_mut() {
                        let sub = self.subs.get_mut(f.subscription);
                        let (now, unix) = (self.now, self.unix_now);
                        f.received(&mut self.reactor, token, result, sub, now, unix);
                    }
                }
                Completion::Sent { token, result } if self.forwards(token) => {
                    if let Some(f) = self.forwarder.as_deref_mut() {
                        let sub = self.subs.get_mut(f.subscription);
                        let (now, unix) = (self.now, self.unix_now);
                        f.sent(&mut self.reactor, token, result, sub, now, unix);
                    }
                }
                Completion::Received { token, result } if self.relays(token).is_some() => {
                    if let Some(u) = self.relays(token).and_then(|i| self.upstreams.get_mut(i)) {
                        let (now, unix) = (self.now, self.unix_now);
                        u.received(&mut self.reactor, token, result, now, unix);
                    }
                }
                Completion::Sent { token, result } if self.relays(token).is_some() => {
                    if let Some(u) = self.relays(token).and_then(|i| self.upstreams.get_mut(i)) {
                        let (now, unix) = (self.now, self.unix_now);
                        u.sent(&mut self.reactor, token, result, now, unix);
                    }
                }
                Completion::Connected { token, result } if self.relays(token).is_some() => {
                    if let Some(u) = self.relays(token).and_then(|i| self.upstreams.get_mut(i)) {
                        let (now, unix) = (self.now, self.unix_now);
                        u.connected(&mut self.reactor, token, result, now, unix);
                    }
                }
                Completion::Connected { token, result } => match self.forwarder.as_deref_mut() {
                    Some(f) if f.owns(token) => {
                        let sub = self.subs.get_mut(f.subscription);
                        let (now, unix) = (self.now, self.unix_now);
                        f.connected(&mut self.reactor, token, result, sub, now, unix);
                    }
                    _ => {
                        if let Ok(socket) = result {
                            self.reactor.close(socket, None);
                        }
                    }
                },
                Completion::Received { token, result } => {
                    if let Some(slot) = self.conns.received(token, result, self.now) {
                        self.close(slot);
                    }
                }
                Completion::Sent { token, result } => {
                    if let Some(slot) = self.conns.sent(token, result) {
                        self.close(slot);
                    }
                }
                Completion::Synced { token, result } => {
                    if self.pipeline.sync_token() == Some(token) {
                        if let Some(number) = self.pipeline.sync_number() {
                            let result = result.map_err(std::io::Error::from_raw_os_error);
                            match self.log.end_sync(number, result) {
                                Ok(()) => {
                                    self.pipeline.sync_completed(number);
                                    self.metrics_sync_completed(self.now);
                                }
                                Err(e) => {
                                    tracing::error!(error = %e, "a sync to disk failed; herald stops writing to the region");
                                    self.sync_failed = Some(e);
                                }
                            }
                        }
                    }
                }
                Completion::Terminate => self.terminate(),
            }
        }
        self.completions = completions;
    }

    /// The upstream a completion's token belongs to.
    fn relays(&self, token: crate::reactor::Token) -> Option<usize> {
        self.upstreams.iter().position(|u| u.owns(token))
    }

    /// Whether a completion's token is the forwarder's.
    fn forwards(&self, token: crate::reactor::Token) -> bool {
        self.forwarder.as_ref().is_some_and(|f| f.owns(token))
    }
}

//! The turn's steps for the upstreams this daemon relays from (`--upstream`): their
//! link entries looked up once a `HelloOk` names the upstream's node, and their
//! confirmations sent once the gate made their events durable.

use super::*;

impl<R: Reactor, M: Medium> Core<R, M> {
    /// Upstreams whose `HelloOk` came: their link entries are looked up (or made) and
    /// their subscriptions asked for.
    pub(super) fn link_upstreams(&mut self) {
        for i in 0..self.upstreams.len() {
            let Some(node) = self.upstreams[i].node_to_link() else {
                continue;
            };
            // Two `--upstream`s reaching one node would share its seqs' mark.
            let taken = self
                .upstreams
                .iter()
                .enumerate()
                .any(|(j, o)| j != i && o.linked_node() == Some(node));
            let u = &mut self.upstreams[i];
            if let Err(why) = u.link_up(&mut self.log, taken) {
                u.fail(&mut self.reactor, &why, self.now, self.unix_now);
            }
        }
    }

    /// Confirms upstream what the gate made durable, and writes the marks it allows.
    pub(super) fn confirm_upstreams(&mut self) -> Result<(), DaemonError> {
        let durable = self.pipeline.durable_group();
        for u in self.upstreams.iter_mut() {
            u.confirm(durable, &mut self.log)
                .map_err(DaemonError::Log)?;
        }
        Ok(())
    }
}

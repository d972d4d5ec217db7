//! The whole daemon in one process: a [`SimNode`] is a daemon core over the simulated
//! reactor (in-memory sockets, simulated time) and any [`Medium`], and a [`SimClient`]
//! speaks the protocol to it over a simulated connection. Tests, the simulator and the
//! fuzz targets drive them turn by turn, deterministically.

mod client;
pub mod simulator;

pub use client::{hello, SimClient};

use crate::delivery::{Core, DaemonConfig, DaemonError, Phase, StartInfo};
use crate::log::Log;
use crate::pmem::Medium;
use crate::reactor::sim::{SimListener, SimNet, SimReactor};
use crate::reactor::{PeerCredentials, Reactor};

/// A daemon core on a simulated network.
pub struct SimNode<M: Medium> {
    net: SimNet,
    listener: SimListener,
    core: Core<SimReactor, M>,
}

impl<M: Medium> SimNode<M> {
    /// Starts a daemon over `log` (already opened or formatted) on `net`, listening at
    /// `path`. `previous_stop_clean`: as the log's run-state word said at open.
    pub fn start(
        net: &SimNet,
        path: &str,
        config: DaemonConfig,
        log: Log<M>,
        previous_stop_clean: bool,
    ) -> Result<SimNode<M>, DaemonError> {
        let listener = net.listener(path);
        let mut reactor = SimReactor::new(net, config.connection_slots());
        reactor
            .listen(listener.clone())
            .map_err(|e| DaemonError::Io("listening", e))?;
        let core = Core::new(
            config,
            reactor,
            log,
            previous_stop_clean,
            StartInfo::default(),
        )?;
        Ok(SimNode {
            net: net.clone(),
            listener,
            core,
        })
    }

    /// A new client connection (accepted on the daemon's next turn).
    pub fn connect(&self) -> SimClient {
        SimClient::new(self.net.connect(&self.listener))
    }

    /// A new client connection from `peer` (the daemon sees it as the socket's
    /// `SO_PEERCRED`): another user, for the access policy.
    pub fn connect_as(&self, peer: PeerCredentials) -> SimClient {
        SimClient::new(self.net.connect_as(&self.listener, peer))
    }

    /// One turn of the daemon's loop.
    pub fn turn(&mut self) -> Result<Phase, DaemonError> {
        self.core.turn()
    }

    /// The daemon core (its log, its reactor).
    pub fn core(&self) -> &Core<SimReactor, M> {
        &self.core
    }

    /// The daemon core, to change it.
    pub fn core_mut(&mut self) -> &mut Core<SimReactor, M> {
        &mut self.core
    }

    /// Stops the node as a crash would: nothing more is written; the log (and its
    /// medium) is handed back for the caller to take an image of.
    pub fn crash(self) -> Log<M> {
        self.core.into_log()
    }
}

//! Redis Streams over a Unix socket: `XADD` to publish, `XREADGROUP` + `XACK` to
//! consume, with the append-only file on and `appendfsync always` or `no`.
//!
//! Counts come from Redis: `XLEN` for what the stream holds, `XINFO GROUPS` for what
//! the consumer group read (`entries-read`) and has not acknowledged (`pending`).

use super::server::{self, ServerProcess};
use super::workload::{Consumer, Peer, Producer, Workload};
use anyhow::Context;
use redis::streams::{StreamInfoGroupsReply, StreamReadReply};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The consumer group of every workload's stream.
const GROUP: &str = "bench";
/// The field each entry's payload is stored under.
const FIELD: &str = "d";
/// Most entries one `XREADGROUP` returns.
const READ_COUNT: usize = 256;

/// When Redis fsyncs its append-only file.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum AppendFsync {
    /// Before replying to each write (`appendfsync always`).
    Always,
    /// Never; the kernel writes back when it chooses (`appendfsync no`).
    No,
}

impl AppendFsync {
    fn setting(self) -> &'static str {
        match self {
            AppendFsync::Always => "always",
            AppendFsync::No => "no",
        }
    }
}

/// A redis-server of our own, on a Unix socket in a throwaway directory.
pub struct RedisPeer {
    client: redis::Client,
    connection: redis::Connection,
    _server: ServerProcess,
}

impl RedisPeer {
    /// Starts redis-server with the append-only file and `fsync`.
    pub fn start(scratch: &Path, fsync: AppendFsync) -> anyhow::Result<RedisPeer> {
        let mut socket = PathBuf::new();
        let mut server = ServerProcess::start("redis", "redis-server", scratch, |dir| {
            socket = dir.join("redis.sock");
            Ok(vec![
                "--port".into(),
                "0".into(), // no TCP: the Unix socket only
                "--unixsocket".into(),
                socket.display().to_string(),
                "--unixsocketperm".into(),
                "700".into(),
                "--dir".into(),
                dir.display().to_string(),
                "--appendonly".into(),
                "yes".into(),
                "--appendfsync".into(),
                fsync.setting().into(),
                // No RDB snapshots: the append-only file is the durability measured.
                "--save".into(),
                "".into(),
                "--daemonize".into(),
                "no".into(),
            ])
        })?;
        let client = redis::Client::open(format!("unix://{}", socket.display()))?;
        let connection = server.wait_ready(|| {
            let mut c = client.get_connection()?;
            redis::cmd("PING").query::<String>(&mut c)?;
            Ok(c)
        })?;
        let mut peer = RedisPeer {
            client,
            connection,
            _server: server,
        };
        let setting: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("appendfsync")
            .query(&mut peer.connection)?;
        anyhow::ensure!(
            setting.get(1).map(String::as_str) == Some(fsync.setting()),
            "redis-server reports appendfsync {setting:?}, expected {}",
            fsync.setting()
        );
        Ok(peer)
    }

    /// What `redis-server --version` says.
    pub fn version() -> String {
        server::version("redis-server")
    }
}

fn stream_key(w: &Workload) -> String {
    w.name(':')
}

impl Peer for RedisPeer {
    fn prepare(&mut self, w: &Workload) -> anyhow::Result<()> {
        // The group reads from the start of a new, empty stream.
        redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(stream_key(w))
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query::<()>(&mut self.connection)
            .context("XGROUP CREATE")?;
        Ok(())
    }

    fn producer(&mut self, w: &Workload, _index: usize) -> anyhow::Result<Box<dyn Producer>> {
        Ok(Box::new(RedisProducer {
            connection: self.client.get_connection()?,
            key: stream_key(w),
        }))
    }

    fn consumer(&mut self, w: &Workload) -> anyhow::Result<Option<Box<dyn Consumer>>> {
        Ok(Some(Box::new(RedisConsumer {
            connection: self.client.get_connection()?,
            key: stream_key(w),
        })))
    }

    fn stored(&mut self, w: &Workload) -> anyhow::Result<Option<u64>> {
        let len: u64 = redis::cmd("XLEN")
            .arg(stream_key(w))
            .query(&mut self.connection)?;
        Ok(Some(len))
    }

    fn delivered_confirmed(
        &mut self,
        w: &Workload,
        _published: u64,
    ) -> anyhow::Result<Option<u64>> {
        let reply: StreamInfoGroupsReply = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(stream_key(w))
            .query(&mut self.connection)?;
        let group = reply
            .groups
            .iter()
            .find(|g| g.name == GROUP)
            .context("XINFO GROUPS does not list the benchmark's group")?;
        let read = group
            .entries_read
            .context("XINFO GROUPS has no entries-read (Redis 7 or later reports it)")?;
        Ok(Some((read - group.pending) as u64))
    }

    fn finish(&mut self, w: &Workload) -> anyhow::Result<()> {
        redis::cmd("DEL")
            .arg(stream_key(w))
            .query::<()>(&mut self.connection)?;
        Ok(())
    }
}

struct RedisProducer {
    connection: redis::Connection,
    key: String,
}

impl Producer for RedisProducer {
    fn publish(&mut self, payload: &[u8]) -> anyhow::Result<()> {
        redis::cmd("XADD")
            .arg(&self.key)
            .arg("*")
            .arg(FIELD)
            .arg(payload)
            .query::<String>(&mut self.connection)?;
        Ok(())
    }

    fn publish_many(&mut self, payloads: &[Vec<u8>]) -> anyhow::Result<()> {
        // A pipeline: every XADD written at once, the replies read together.
        let mut pipe = redis::pipe();
        for p in payloads {
            pipe.cmd("XADD").arg(&self.key).arg("*").arg(FIELD).arg(p);
        }
        let ids: Vec<String> = pipe.query(&mut self.connection)?;
        anyhow::ensure!(
            ids.len() == payloads.len(),
            "XADD pipeline: {} replies",
            ids.len()
        );
        Ok(())
    }
}

struct RedisConsumer {
    connection: redis::Connection,
    key: String,
}

impl Consumer for RedisConsumer {
    fn receive(
        &mut self,
        timeout: Duration,
        on_event: &mut dyn FnMut(&[u8]),
    ) -> anyhow::Result<u64> {
        let reply: Option<StreamReadReply> = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg("c")
            .arg("COUNT")
            .arg(READ_COUNT)
            .arg("BLOCK")
            .arg(timeout.as_millis().max(1) as u64)
            .arg("STREAMS")
            .arg(&self.key)
            .arg(">")
            .query(&mut self.connection)?;
        let Some(reply) = reply else { return Ok(0) };
        let mut ids = Vec::new();
        for key in &reply.keys {
            for entry in &key.ids {
                match entry.map.get(FIELD) {
                    Some(redis::Value::BulkString(bytes)) => on_event(bytes),
                    other => {
                        anyhow::bail!("stream entry {} without its payload: {other:?}", entry.id)
                    }
                }
                ids.push(entry.id.clone());
            }
        }
        if ids.is_empty() {
            return Ok(0);
        }
        let acked: u64 = redis::cmd("XACK")
            .arg(&self.key)
            .arg(GROUP)
            .arg(&ids)
            .query(&mut self.connection)?;
        anyhow::ensure!(
            acked == ids.len() as u64,
            "XACK acknowledged {acked} of {}",
            ids.len()
        );
        Ok(ids.len() as u64)
    }
}

//! NATS JetStream with file storage: publish with ack, a durable pull consumer with
//! explicit acks, on a nats-server of our own on a free loopback port (nats-server
//! has no Unix-socket listener).
//!
//! The client library is asynchronous; a small tokio runtime lives in this driver
//! only, and each producer or consumer blocks on it from its own thread, so the
//! workloads drive every system with the same synchronous loop.
//!
//! Counts come from the server: the stream's message count, and the consumer's ack
//! floor (every message up to it acknowledged).

use super::server::{self, ServerProcess};
use super::workload::{settle, Consumer, Peer, Producer, Workload};
use anyhow::Context;
use async_nats::jetstream::{self, consumer, stream};
use futures_util::StreamExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The durable consumer of every workload's stream.
const CONSUMER: &str = "bench";
/// Unacknowledged messages the server lets the consumer hold.
const ACK_PENDING_MAX: i64 = 10_000;

/// A nats-server of our own with JetStream on, storing in a throwaway directory.
pub struct NatsPeer {
    runtime: Arc<tokio::runtime::Runtime>,
    address: String,
    context: jetstream::Context,
    _server: ServerProcess,
}

impl NatsPeer {
    /// Starts nats-server with JetStream, its store under `scratch`.
    pub fn start(scratch: &Path) -> anyhow::Result<NatsPeer> {
        let runtime = Arc::new(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("nats-client")
                .enable_all()
                .build()?,
        );
        let port = free_loopback_port()?;
        let address = format!("127.0.0.1:{port}");
        let mut server = ServerProcess::start("nats", "nats-server", scratch, |dir| {
            let config = dir.join("nats.conf");
            // Defaults apart from the listener and the store: file storage, the
            // server's default sync interval.
            std::fs::write(
                &config,
                format!(
                    "listen: {address}\njetstream {{\n  store_dir: \"{}\"\n}}\n",
                    dir.join("jetstream").display()
                ),
            )?;
            Ok(vec!["-c".into(), config.display().to_string()])
        })?;
        let context = server.wait_ready(|| {
            runtime.block_on(async {
                let client = async_nats::connect(&address).await?;
                let context = jetstream::new(client);
                // JetStream answers API requests only once it is up (looking up a
                // stream that does not exist is such a request).
                match context.get_stream("HERALD_BENCH_PROBE").await {
                    Err(e)
                        if matches!(
                            e.kind(),
                            jetstream::context::GetStreamErrorKind::JetStream(_)
                        ) =>
                    {
                        anyhow::Ok(context)
                    }
                    Err(e) => Err(e.into()),
                    Ok(_) => anyhow::Ok(context),
                }
            })
        })?;
        Ok(NatsPeer {
            runtime,
            address,
            context,
            _server: server,
        })
    }

    /// What `nats-server --version` says.
    pub fn version() -> String {
        server::version("nats-server")
    }

    fn consumer_info(&self, w: &Workload) -> anyhow::Result<consumer::Info> {
        self.runtime.block_on(async {
            let mut c: consumer::PullConsumer = self
                .context
                .get_consumer_from_stream(CONSUMER, stream_name(w))
                .await?;
            anyhow::Ok(c.info().await?.clone())
        })
    }
}

/// A TCP port nothing listens on now (the OS picks it; a race with another program
/// taking it before nats-server does shows as nats-server failing to start).
fn free_loopback_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn stream_name(w: &Workload) -> String {
    w.name('_').to_uppercase()
}

impl Peer for NatsPeer {
    fn prepare(&mut self, w: &Workload) -> anyhow::Result<()> {
        self.runtime.block_on(async {
            let stream = self
                .context
                .create_stream(stream::Config {
                    name: stream_name(w),
                    subjects: vec![w.name('.')],
                    storage: stream::StorageType::File,
                    ..Default::default()
                })
                .await
                .context("creating the stream")?;
            stream
                .create_consumer(consumer::pull::Config {
                    durable_name: Some(CONSUMER.into()),
                    ack_policy: consumer::AckPolicy::Explicit,
                    deliver_policy: consumer::DeliverPolicy::All,
                    max_ack_pending: ACK_PENDING_MAX,
                    ..Default::default()
                })
                .await
                .context("creating the durable consumer")?;
            anyhow::Ok(())
        })
    }

    fn producer(&mut self, w: &Workload, _index: usize) -> anyhow::Result<Box<dyn Producer>> {
        // A connection per producer, as each of herald's and Redis's producers has.
        // Inside the runtime: the context spawns a task of its own.
        let context = self.runtime.block_on(async {
            anyhow::Ok(jetstream::new(async_nats::connect(&self.address).await?))
        })?;
        Ok(Box::new(NatsProducer {
            runtime: self.runtime.clone(),
            context,
            subject: w.name('.'),
        }))
    }

    fn consumer(&mut self, w: &Workload) -> anyhow::Result<Option<Box<dyn Consumer>>> {
        let messages = self.runtime.block_on(async {
            let c: consumer::PullConsumer = self
                .context
                .get_consumer_from_stream(CONSUMER, stream_name(w))
                .await?;
            anyhow::Ok(c.messages().await?)
        })?;
        Ok(Some(Box::new(NatsConsumer {
            runtime: self.runtime.clone(),
            messages,
        })))
    }

    fn stored(&mut self, w: &Workload) -> anyhow::Result<Option<u64>> {
        let messages = self.runtime.block_on(async {
            let mut s = self.context.get_stream(stream_name(w)).await?;
            anyhow::Ok(s.info().await?.state.messages)
        })?;
        Ok(Some(messages))
    }

    fn delivered_confirmed(&mut self, w: &Workload, published: u64) -> anyhow::Result<Option<u64>> {
        // Acks are sent without waiting for the server. A fresh stream numbers its
        // messages from 1, so an ack floor of N means messages 1..=N are acknowledged.
        let floor = settle(published, || {
            Ok(self.consumer_info(w)?.ack_floor.stream_sequence)
        })?;
        Ok(Some(floor))
    }

    fn finish(&mut self, w: &Workload) -> anyhow::Result<()> {
        self.runtime
            .block_on(self.context.delete_stream(stream_name(w)))?;
        Ok(())
    }
}

struct NatsProducer {
    runtime: Arc<tokio::runtime::Runtime>,
    context: jetstream::Context,
    subject: String,
}

impl Producer for NatsProducer {
    fn publish(&mut self, payload: &[u8]) -> anyhow::Result<()> {
        self.runtime.block_on(async {
            let payload = bytes::Bytes::copy_from_slice(payload);
            let ack = self.context.publish(self.subject.clone(), payload).await?;
            ack.await?;
            anyhow::Ok(())
        })
    }

    fn publish_many(&mut self, payloads: &[Vec<u8>]) -> anyhow::Result<()> {
        self.runtime.block_on(async {
            // Asynchronous publishing: send them all, then wait for every ack.
            let mut acks = Vec::with_capacity(payloads.len());
            for p in payloads {
                let payload = bytes::Bytes::copy_from_slice(p);
                acks.push(self.context.publish(self.subject.clone(), payload).await?);
            }
            for ack in acks {
                ack.await?;
            }
            anyhow::Ok(())
        })
    }
}

struct NatsConsumer {
    runtime: Arc<tokio::runtime::Runtime>,
    messages: consumer::pull::Stream,
}

impl Consumer for NatsConsumer {
    fn receive(
        &mut self,
        timeout: Duration,
        on_event: &mut dyn FnMut(&[u8]),
    ) -> anyhow::Result<u64> {
        self.runtime.block_on(async {
            let next = tokio::time::timeout(timeout, self.messages.next()).await;
            let message = match next {
                Err(_) | Ok(None) => return Ok(0), // timed out, or the stream ended
                Ok(Some(message)) => message.map_err(|e| anyhow::anyhow!("{e}"))?,
            };
            on_event(&message.payload);
            message.ack().await.map_err(|e| anyhow::anyhow!("{e}"))?;
            anyhow::Ok(1)
        })
    }
}

//! The open connections of a [`crate::WsServer`] and its shutdown signal: how many are open, a
//! guard each connection holds while it lives, and the wait until all have closed.
//!
//! A leaf module: the server creates the registry, each connection holds an [`OpenConnection`].

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{Notify, watch};

/// Open connections and the shutdown signal, shared by the server and its connections.
#[derive(Debug)]
pub(crate) struct Connections {
    closing: watch::Sender<bool>,
    open: AtomicUsize,
    drained: Notify,
}

impl Connections {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            closing: watch::Sender::new(false),
            open: AtomicUsize::new(0),
            drained: Notify::new(),
        })
    }

    /// Connections still open.
    pub(crate) fn count(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Whether shutdown has begun.
    pub(crate) fn closing(&self) -> bool {
        *self.closing.borrow()
    }

    /// Counts a new connection as open until the returned guard is dropped.
    pub(crate) fn open(self: &Arc<Self>) -> OpenConnection {
        self.open.fetch_add(1, Ordering::AcqRel);
        OpenConnection {
            connections: self.clone(),
            closing: self.closing.subscribe(),
        }
    }

    /// Tells every connection to close, then waits until all have.
    pub(crate) async fn close_all(&self) {
        self.closing.send_replace(true);
        loop {
            let drained = self.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            if self.count() == 0 {
                return;
            }
            drained.await;
        }
    }
}

/// Counts a connection as open until dropped.
pub(crate) struct OpenConnection {
    connections: Arc<Connections>,
    closing: watch::Receiver<bool>,
}

impl OpenConnection {
    /// Resolves when the server shuts down.
    pub(crate) async fn shutdown(&mut self) {
        // An error means the server is gone: shutting down as well.
        let _ = self.closing.wait_for(|closing| *closing).await;
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        if self.connections.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.connections.drained.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn close_all_waits_for_the_last_connection() {
        let connections = Connections::new();
        let mut first = connections.open();
        let second = connections.open();
        assert_eq!(connections.count(), 2);
        let closer = {
            let connections = connections.clone();
            tokio::spawn(async move { connections.close_all().await })
        };
        first.shutdown().await;
        assert!(connections.closing());
        drop(first);
        assert!(!closer.is_finished() || connections.count() == 0);
        drop(second);
        closer.await.unwrap();
        assert_eq!(connections.count(), 0);
    }
}

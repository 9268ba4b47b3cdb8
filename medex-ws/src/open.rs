//! The open connections of a [`crate::WsServer`] and its shutdown signal: how many are open (in
//! all, per account and per client address, each capped), a guard each connection holds while
//! it lives, and the wait until all have closed.
//!
//! A leaf module: the server creates the registry, each connection holds an [`OpenConnection`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use medex_core::model::UserId;
use tokio::sync::{Notify, watch};

/// Who a connection counts against.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Owner {
    pub(crate) account: Option<UserId>,
    pub(crate) address: Option<IpAddr>,
}

/// Which cap a refused connection would have passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cap {
    Account,
    Address,
}

#[derive(Debug, Default)]
struct PerOwner {
    accounts: HashMap<UserId, usize>,
    addresses: HashMap<IpAddr, usize>,
}

/// Open connections and the shutdown signal, shared by the server and its connections.
#[derive(Debug)]
pub(crate) struct Connections {
    closing: watch::Sender<bool>,
    open: AtomicUsize,
    drained: Notify,
    per_owner: Mutex<PerOwner>,
    max_per_account: usize,
    max_per_address: usize,
}

impl Connections {
    pub(crate) fn new(max_per_account: usize, max_per_address: usize) -> Arc<Self> {
        Arc::new(Self {
            closing: watch::Sender::new(false),
            open: AtomicUsize::new(0),
            drained: Notify::new(),
            per_owner: Mutex::default(),
            max_per_account,
            max_per_address,
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

    /// Counts a new connection of `owner` as open until the returned guard is dropped, unless
    /// its account or address has as many open as it may.
    pub(crate) fn open(self: &Arc<Self>, owner: Owner) -> Result<OpenConnection, Cap> {
        {
            let mut per = self.per_owner.lock().unwrap_or_else(|e| e.into_inner());
            let account = owner.account.map(|a| *per.accounts.get(&a).unwrap_or(&0));
            let address = owner.address.map(|a| *per.addresses.get(&a).unwrap_or(&0));
            if account.is_some_and(|n| n >= self.max_per_account) {
                return Err(Cap::Account);
            }
            if address.is_some_and(|n| n >= self.max_per_address) {
                return Err(Cap::Address);
            }
            if let Some(a) = owner.account {
                *per.accounts.entry(a).or_default() += 1;
            }
            if let Some(a) = owner.address {
                *per.addresses.entry(a).or_default() += 1;
            }
        }
        self.open.fetch_add(1, Ordering::AcqRel);
        Ok(OpenConnection {
            connections: self.clone(),
            closing: self.closing.subscribe(),
            owner,
        })
    }

    fn release(&self, owner: Owner) {
        let mut per = self.per_owner.lock().unwrap_or_else(|e| e.into_inner());
        fn down<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, key: Option<K>) {
            if let Some(key) = key
                && let Some(n) = map.get_mut(&key)
            {
                *n -= 1;
                if *n == 0 {
                    map.remove(&key);
                }
            }
        }
        down(&mut per.accounts, owner.account);
        down(&mut per.addresses, owner.address);
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
    owner: Owner,
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
        self.connections.release(self.owner);
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
        let connections = Connections::new(10, 10);
        let mut first = connections.open(Owner::default()).unwrap();
        let second = connections.open(Owner::default()).unwrap();
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

    #[test]
    fn accounts_and_addresses_are_capped_and_freed() {
        let connections = Connections::new(2, 3);
        let user: UserId = "00000000-0000-7000-8000-000000000001".parse().unwrap();
        let home: IpAddr = "10.0.0.1".parse().unwrap();
        let signed_in = Owner {
            account: Some(user),
            address: Some(home),
        };
        let anonymous = Owner {
            account: None,
            address: Some(home),
        };
        let a = connections.open(signed_in).unwrap();
        let _b = connections.open(signed_in).unwrap();
        assert_eq!(connections.open(signed_in).err(), Some(Cap::Account));
        let _c = connections.open(anonymous).unwrap();
        assert_eq!(connections.open(anonymous).err(), Some(Cap::Address));
        drop(a);
        let _d = connections.open(anonymous).unwrap();
        assert_eq!(connections.count(), 3);
    }
}

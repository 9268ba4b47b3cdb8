//! Upkeep for instances that share a store: the configuration another instance saved taken into
//! force, and the background sweeps (trail retention, expired refresh sessions) run by one
//! instance at a time under a lease. The server calls these on timers; they do no waiting
//! themselves.

use super::*;

/// The lease the background sweeps run under.
pub const SWEEP_LEASE: &str = "sweeps";

/// What one sweep removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Driver fixes older than the retention.
    pub fixes: u64,
    /// Refresh sessions past their expiry.
    pub sessions: u64,
    /// Remembered `Idempotency-Key`s past their 24 hours.
    pub idempotency_keys: u64,
}

impl MedEx {
    /// Takes the stored configuration into force when another instance saved a newer one;
    /// whether it did.
    pub async fn refresh_config(&self) -> Result<bool> {
        let Some(stored) = self.store.system_config().await? else {
            return Ok(false);
        };
        let mut current = self.config.write().unwrap_or_else(|e| e.into_inner());
        if stored.version <= current.1 {
            return Ok(false);
        }
        *current = (Arc::new(stored.config), stored.version);
        drop(current);
        // Speeds and link lifetimes are in the public views.
        self.tracking_views.forget_all();
        Ok(true)
    }

    /// The version of the configuration in force (0 while none was ever saved).
    pub fn config_version(&self) -> u64 {
        self.config.read().unwrap_or_else(|e| e.into_inner()).1
    }

    /// Runs the background sweeps if this instance (`holder`, unique per process) holds the
    /// sweep lease or can take it: it keeps the lease for `every`, the time until its next call,
    /// so instances calling this on the same schedule sweep one at a time, and another takes
    /// over once the holder stops calling. Deletes fixes older than `retention`, expired
    /// refresh sessions and idempotency keys past their 24 hours. `None` when another instance holds the lease.
    pub async fn sweep(
        &self,
        holder: &str,
        retention: Duration,
        every: Duration,
    ) -> Result<Option<Swept>> {
        let now = self.clock.now();
        if !self
            .store
            .acquire_lease(LeaseClaim::new(SWEEP_LEASE, holder, now, now + every))
            .await?
        {
            return Ok(None);
        }
        let fixes = self.store.prune_trail(now - retention).await?;
        let sessions = self.store.prune_refresh_sessions(now).await?;
        let idempotency_keys = self.store.prune_idempotency(now).await?;
        Ok(Some(Swept {
            fixes,
            sessions,
            idempotency_keys,
        }))
    }
}

//! Administration: accounts, the system configuration in force, and health.

use super::*;

impl MedEx {
    /// All accounts (admins only).
    pub async fn list_users(
        &self,
        actor: &Actor,
        query: UserQuery,
        page: Page<UserId>,
    ) -> Result<Vec<User>> {
        access(actor, Permission::Administer).require()?;
        Ok(self.store.users(&query, clamp_page(page)).await?)
    }

    /// Activates or deactivates an account (admins only). A deactivated account's tokens stop
    /// working at once, for good (a reactivated account signs in again), and its live
    /// connections close.
    pub async fn set_user_active(&self, actor: &Actor, id: UserId, active: bool) -> Result<User> {
        access(actor, Permission::Administer).require()?;
        if id == actor.user_id && !active {
            return Err(Error::invalid(
                "is_active",
                "an admin cannot deactivate itself",
            ));
        }
        let mut user = self.store.user(id).await?.ok_or(Error::NotFound)?;
        if user.is_active == active {
            return Ok(user);
        }
        user.is_active = active;
        if !active {
            // Tokens issued before a deactivation must not come back to life with a reactivation.
            user.sessions.end_all();
        }
        user.updated_at = self.clock.now();
        bump(&mut user, |u| &mut u.version);
        self.commit(vec![Write::User(user.clone())]).await?;
        if !active {
            self.bus.publish(Event::SessionsEnded {
                user_id: user.id,
                session: None,
            });
        }
        Ok(user)
    }

    /// The configuration in force (admins only).
    pub fn system_config(&self, actor: &Actor) -> Result<Arc<SystemConfig>> {
        access(actor, Permission::Administer).require()?;
        Ok(self.config())
    }

    /// Replaces the configuration (admins only), persisting it first. Conflicts with a change
    /// saved at the same time, as [`MedEx::update_system_config_from`].
    pub async fn update_system_config(
        &self,
        actor: &Actor,
        config: SystemConfig,
    ) -> Result<Arc<SystemConfig>> {
        let base = self.config();
        self.update_system_config_from(actor, &base, config).await
    }

    /// Replaces `base`, the configuration the caller read and derived `config` from (a merge
    /// patch, say), persisting it first (admins only). If the configuration changed since
    /// `base` was read, here or on another instance sharing the store, nothing is written and
    /// the answer is [`Conflict::ConcurrentUpdate`]: of two changes at once one wins and the
    /// other is retried, instead of one silently undoing the other. The store's version of the
    /// configuration decides between instances; a conflict also reloads the stored one, so the
    /// retry starts from it.
    pub async fn update_system_config_from(
        &self,
        actor: &Actor,
        base: &Arc<SystemConfig>,
        config: SystemConfig,
    ) -> Result<Arc<SystemConfig>> {
        access(actor, Permission::Administer).require()?;
        config.validate()?;
        let version = {
            let current = self.config.read().unwrap_or_else(|e| e.into_inner());
            if !Arc::ptr_eq(&current.0, base) {
                return Err(Conflict::ConcurrentUpdate.into());
            }
            current.1
        };
        match self.store.save_system_config(&config, version + 1).await {
            Ok(()) => {}
            Err(StoreError::Conflict) => {
                // Another instance saved first: take its configuration in now.
                let _ = self.refresh_config().await;
                return Err(Conflict::ConcurrentUpdate.into());
            }
            Err(other) => return Err(other.into()),
        }
        let config = Arc::new(config);
        let mut current = self.config.write().unwrap_or_else(|e| e.into_inner());
        // A refresh may have read this very save already; never go back to an older one.
        if current.1 <= version + 1 {
            *current = (config.clone(), version + 1);
        }
        let in_force = current.0.clone();
        drop(current);
        // Speeds and link lifetimes are in the public views.
        self.tracking_views.forget_all();
        Ok(in_force)
    }

    /// Whether storage works now.
    pub async fn health(&self) -> Result<()> {
        Ok(self.store.check().await?)
    }

    /// Whether the bus reaches the other instances (where there is a bus between them).
    pub fn bus_health(&self) -> crate::events::BusHealth {
        self.bus.health()
    }
}

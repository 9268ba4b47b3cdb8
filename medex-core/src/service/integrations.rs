//! A pharmacy's integrations: API keys that act as its account, outgoing webhook endpoints and
//! their delivery log, the outbox rows an order change writes with itself, and remembered
//! `Idempotency-Key`s.

use super::*;
use crate::integrations::{
    API_KEY_PREFIX, API_KEY_SHOWN, ApiKey, Delivery, DeliveryState, IDEMPOTENCY_HOLD,
    IDEMPOTENCY_TTL, IdempotencyRecord, IdempotencyState, TargetRefusal, Webhook, WebhookEvent,
    api_key_hash, check_target, events_of, hex, idempotency_id,
};

/// How often a key's `last_used_at` is written at most.
const LAST_USED_EVERY: Duration = Duration::minutes(1);
/// How many endpoints of one pharmacy an order change is written for at most (and how many a
/// pharmacy may register).
pub const MAX_WEBHOOKS: usize = 20;
/// How many live API keys a pharmacy may hold.
pub const MAX_API_KEYS: usize = 50;

/// A key as made: the record and the key itself, shown this once.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    /// The stored record.
    pub record: ApiKey,
    /// `mdx_…`: never stored, never shown again.
    pub key: String,
}

/// A new webhook endpoint.
#[derive(Debug, Clone, Default)]
pub struct NewWebhook {
    /// Where to send (`https://`).
    pub url: String,
    /// Event type names, or `["*"]`.
    pub events: Vec<String>,
}

/// What to do with a request that carries an `Idempotency-Key`.
#[derive(Debug, Clone)]
pub enum Idempotent {
    /// The first request ran before: answer as it was answered.
    Replay {
        /// HTTP status.
        status: u16,
        /// Content type.
        content_type: String,
        /// Body.
        body: String,
    },
    /// This request holds the key now: run it, then [`MedEx::finish_idempotent`].
    Run(IdempotencyRecord),
}

impl MedEx {
    /// Webhook URLs may point to private addresses and use plain `http://` (development and
    /// tests); the default refuses both.
    pub fn with_private_webhooks(mut self, allow: bool) -> Self {
        self.private_webhooks = allow;
        self
    }

    /// Whether webhook URLs may point to private addresses.
    pub fn private_webhooks(&self) -> bool {
        self.private_webhooks
    }

    async fn integrations_of(&self, actor: &Actor, vendor: VendorId) -> Result<Vendor> {
        access(actor, Permission::ManageIntegrations(vendor)).require()?;
        self.load_vendor(vendor).await
    }

    // ---- API keys ----

    /// Makes an API key of `vendor` that acts as its owner account.
    pub async fn create_api_key(
        &self,
        actor: &Actor,
        vendor: VendorId,
        name: &str,
    ) -> Result<NewApiKey> {
        let vendor = self.integrations_of(actor, vendor).await?;
        let mut errors = FieldErrors::new();
        let name = errors.text("name", name, 100);
        errors.finish()?;
        let live = self.live_api_keys(vendor.id).await?;
        if live.len() >= MAX_API_KEYS {
            return Err(Conflict::LimitReached(
                "a pharmacy holds at most 50 live API keys; revoke one first",
            )
            .into());
        }
        let mut secret = [0u8; 32];
        self.entropy.fill(&mut secret);
        let key = format!(
            "{API_KEY_PREFIX}{}",
            base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, secret)
        );
        let now = self.clock.now();
        let record = ApiKey {
            id: ApiKeyId::from_uuid(self.new_id()),
            vendor_id: vendor.id,
            user_id: vendor.user_id,
            name,
            prefix: key.chars().take(API_KEY_SHOWN).collect(),
            hash: api_key_hash(&key),
            created_at: now,
            last_used_at: None,
            revoked_at: None,
            version: 1,
        };
        self.commit(vec![Write::ApiKey(record.clone())]).await?;
        Ok(NewApiKey { record, key })
    }

    async fn live_api_keys(&self, vendor: VendorId) -> Result<Vec<ApiKey>> {
        let mut found = Vec::new();
        let mut after = None;
        loop {
            let batch = self
                .store
                .api_keys(
                    vendor,
                    Page {
                        limit: MAX_PAGE,
                        after,
                    },
                )
                .await?;
            after = batch.last().map(|k| k.id);
            let full = batch.len() == MAX_PAGE;
            found.extend(batch.into_iter().filter(|k| k.revoked_at.is_none()));
            if !full {
                return Ok(found);
            }
        }
    }

    /// A pharmacy's live keys, newest first.
    pub async fn api_keys(
        &self,
        actor: &Actor,
        vendor: VendorId,
        page: Page<ApiKeyId>,
    ) -> Result<Vec<ApiKey>> {
        let vendor = self.integrations_of(actor, vendor).await?;
        let page = clamp_page(page);
        scan(
            page,
            page.limit,
            |p| self.store.api_keys(vendor.id, p),
            |k| k.id,
            |k| k.revoked_at.is_none(),
        )
        .await
    }

    /// Revokes a key at once: the next request with it is refused.
    pub async fn revoke_api_key(
        &self,
        actor: &Actor,
        vendor: VendorId,
        id: ApiKeyId,
    ) -> Result<()> {
        let vendor = self.integrations_of(actor, vendor).await?;
        for _ in 0..5 {
            let mut key = self
                .store
                .api_key(id)
                .await?
                .filter(|k| k.vendor_id == vendor.id && k.revoked_at.is_none())
                .ok_or(Error::NotFound)?;
            key.revoked_at = Some(self.clock.now());
            bump(&mut key, |k| &mut k.version);
            match self.store.commit(vec![Write::ApiKey(key)]).await {
                // A concurrent write of the key (its last use): read it again.
                Err(StoreError::Conflict) => continue,
                other => return Ok(other?),
            }
        }
        Err(Conflict::ConcurrentUpdate.into())
    }

    /// Who holds this API key: its pharmacy's owner account, while the key is live and the
    /// account and the pharmacy are active.
    pub(super) async fn authenticate_api_key(&self, key: &str) -> Result<Actor> {
        let invalid = Error::Unauthenticated(AuthFailure::InvalidToken);
        let record = self
            .store
            .api_key_by_hash(&api_key_hash(key))
            .await?
            .filter(|k| k.revoked_at.is_none())
            .ok_or(invalid)?;
        let user = self
            .store
            .user(record.user_id)
            .await?
            .ok_or(Error::Unauthenticated(AuthFailure::InvalidToken))?;
        let vendor_active = self
            .store
            .vendor(record.vendor_id)
            .await?
            .is_some_and(|v| v.is_active);
        if !user.is_active || !vendor_active {
            return Err(Error::Unauthenticated(AuthFailure::Deactivated));
        }
        let now = self.clock.now();
        if record
            .last_used_at
            .is_none_or(|at| now - at >= LAST_USED_EVERY)
        {
            let mut used = record;
            used.last_used_at = Some(now);
            bump(&mut used, |k| &mut k.version);
            // Losing a race here only loses one timestamp of many.
            match self.store.commit(vec![Write::ApiKey(used)]).await {
                Ok(()) | Err(StoreError::Conflict) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Actor::of(&user))
    }

    // ---- webhooks ----

    /// Registers an endpoint; its secret is in the returned record, to be shown this once.
    pub async fn create_webhook(
        &self,
        actor: &Actor,
        vendor: VendorId,
        new: NewWebhook,
    ) -> Result<Webhook> {
        let vendor = self.integrations_of(actor, vendor).await?;
        let mut errors = FieldErrors::new();
        let url = match check_target(new.url.trim(), self.private_webhooks) {
            Ok(url) => url,
            Err(refusal) => {
                let message = match refusal {
                TargetRefusal::Private => {
                    "must point to a public address (private, loopback and link-local ones are refused)"
                        .to_owned()
                }
                    other => other.to_string(),
                };
                errors.push("url", message);
                String::new()
            }
        };
        let (events, all) = parse_events(&mut errors, &new.events);
        errors.finish()?;
        if self.live_webhooks(vendor.id).await?.len() >= MAX_WEBHOOKS {
            return Err(Conflict::LimitReached(
                "a pharmacy has at most 20 webhook endpoints; remove one first",
            )
            .into());
        }
        let now = self.clock.now();
        let webhook = Webhook {
            id: WebhookId::from_uuid(self.new_id()),
            vendor_id: vendor.id,
            url,
            events,
            all,
            secret: self.webhook_secret(),
            created_at: now,
            secret_rotated_at: None,
            deleted_at: None,
            version: 1,
        };
        self.commit(vec![Write::Webhook(webhook.clone())]).await?;
        Ok(webhook)
    }

    fn webhook_secret(&self) -> String {
        let mut bytes = [0u8; 32];
        self.entropy.fill(&mut bytes);
        format!("whsec_{}", hex(&bytes))
    }

    /// The endpoints of a pharmacy that are not removed, newest first, at most [`MAX_WEBHOOKS`]
    /// (a pharmacy cannot register more).
    pub(super) async fn live_webhooks(&self, vendor: VendorId) -> Result<Vec<Webhook>> {
        scan(
            whole(),
            MAX_WEBHOOKS,
            |p| self.store.webhooks(vendor, p),
            |w| w.id,
            |w| w.deleted_at.is_none(),
        )
        .await
    }

    /// A pharmacy's endpoints, newest first.
    pub async fn webhooks(&self, actor: &Actor, vendor: VendorId) -> Result<Vec<Webhook>> {
        let vendor = self.integrations_of(actor, vendor).await?;
        self.live_webhooks(vendor.id).await
    }

    async fn load_webhook(&self, vendor: VendorId, id: WebhookId) -> Result<Webhook> {
        self.store
            .webhook(id)
            .await?
            .filter(|w| w.vendor_id == vendor && w.deleted_at.is_none())
            .ok_or(Error::NotFound)
    }

    /// Changes an endpoint with `change`, retrying on a concurrent write.
    async fn change_webhook(
        &self,
        actor: &Actor,
        vendor: VendorId,
        id: WebhookId,
        change: impl Fn(&mut Webhook),
    ) -> Result<Webhook> {
        let vendor = self.integrations_of(actor, vendor).await?;
        for _ in 0..5 {
            let mut webhook = self.load_webhook(vendor.id, id).await?;
            change(&mut webhook);
            bump(&mut webhook, |w| &mut w.version);
            match self
                .store
                .commit(vec![Write::Webhook(webhook.clone())])
                .await
            {
                Err(StoreError::Conflict) => continue,
                other => return other.map(|()| webhook).map_err(Into::into),
            }
        }
        Err(Conflict::ConcurrentUpdate.into())
    }

    /// Removes an endpoint: nothing more is sent to it, what is queued for it fails.
    pub async fn delete_webhook(
        &self,
        actor: &Actor,
        vendor: VendorId,
        id: WebhookId,
    ) -> Result<()> {
        let now = self.clock.now();
        self.change_webhook(actor, vendor, id, |w| w.deleted_at = Some(now))
            .await
            .map(drop)
    }

    /// Gives an endpoint a new secret, returned this once; deliveries sign with it from now on.
    pub async fn rotate_webhook_secret(
        &self,
        actor: &Actor,
        vendor: VendorId,
        id: WebhookId,
    ) -> Result<Webhook> {
        let now = self.clock.now();
        let secret = self.webhook_secret();
        self.change_webhook(actor, vendor, id, |w| {
            w.secret = secret.clone();
            w.secret_rotated_at = Some(now);
        })
        .await
    }

    /// An endpoint's deliveries, newest first, with their attempts.
    pub async fn webhook_deliveries(
        &self,
        actor: &Actor,
        vendor: VendorId,
        id: WebhookId,
        page: Page<DeliveryId>,
    ) -> Result<Vec<Delivery>> {
        let vendor = self.integrations_of(actor, vendor).await?;
        let webhook = self.load_webhook(vendor.id, id).await?;
        Ok(self.store.deliveries(webhook.id, clamp_page(page)).await?)
    }

    /// The outbox rows of an order change (`before`: the stored order, none for a new one), to be
    /// committed with it: one per event and endpoint that wants it.
    pub(super) async fn outbox(&self, before: Option<&Order>, after: &Order) -> Result<Vec<Write>> {
        let events = events_of(before, after);
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let webhooks = self.live_webhooks(after.vendor_id).await?;
        let now = self.clock.now();
        let mut writes = Vec::new();
        for (sequence, event) in events.into_iter().enumerate() {
            let event_id = self.new_id();
            for webhook in webhooks.iter().filter(|w| w.wants(event)) {
                writes.push(Write::Delivery(Delivery {
                    id: DeliveryId::from_uuid(self.new_id()),
                    event_id,
                    event,
                    webhook_id: webhook.id,
                    vendor_id: after.vendor_id,
                    order_id: after.id,
                    order: after.clone(),
                    sequence: sequence as u32,
                    created_at: now,
                    state: DeliveryState::Pending,
                    attempts: 0,
                    next_attempt_at: now,
                    leased_until: None,
                    log: Vec::new(),
                    version: 1,
                }));
            }
        }
        Ok(writes)
    }

    // ---- idempotency keys ----

    /// Starts a request of `actor` carrying `Idempotency-Key: key` whose method, path and body
    /// hash to `fingerprint`: a replay of the first answer, or the key held for this request.
    /// Another request under the same key is [`Error::IdempotencyKeyReused`]; one while the first
    /// still runs is [`Conflict::IdempotencyKeyInUse`] (the client retries and gets the replay).
    pub async fn begin_idempotent(
        &self,
        actor: &Actor,
        key: &str,
        fingerprint: &str,
    ) -> Result<Idempotent> {
        let id = idempotency_id(actor.user_id, key);
        for _ in 0..5 {
            let now = self.clock.now();
            let stored = self.store.idempotency(id).await?;
            let claimable = match &stored {
                None => true,
                Some(r) if r.expires_at <= now => true,
                Some(r) if r.fingerprint != fingerprint => {
                    return Err(Error::IdempotencyKeyReused);
                }
                Some(r) => match &r.state {
                    IdempotencyState::Answered {
                        status,
                        content_type,
                        body,
                    } => {
                        return Ok(Idempotent::Replay {
                            status: *status,
                            content_type: content_type.clone(),
                            body: body.clone(),
                        });
                    }
                    IdempotencyState::Held { until } if *until > now => {
                        return Err(Conflict::IdempotencyKeyInUse.into());
                    }
                    IdempotencyState::Held { .. } | IdempotencyState::Released => true,
                },
            };
            debug_assert!(claimable);
            let fresh = stored.as_ref().is_none_or(|r| r.expires_at <= now);
            let record = IdempotencyRecord {
                id,
                user_id: actor.user_id,
                fingerprint: fingerprint.to_owned(),
                state: IdempotencyState::Held {
                    until: now + IDEMPOTENCY_HOLD,
                },
                created_at: if fresh {
                    now
                } else {
                    stored.as_ref().map_or(now, |r| r.created_at)
                },
                expires_at: if fresh {
                    now + IDEMPOTENCY_TTL
                } else {
                    stored.as_ref().map_or(now, |r| r.expires_at)
                },
                version: stored.as_ref().map_or(0, |r| r.version) + 1,
            };
            match self
                .store
                .commit(vec![Write::Idempotency(record.clone())])
                .await
            {
                Ok(()) => return Ok(Idempotent::Run(record)),
                // Another request took it first: look again (replay, in use or reused).
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Conflict::IdempotencyKeyInUse.into())
    }

    /// Remembers the answer of the request holding `held`; a server-side failure (5xx) releases
    /// the key instead, so that the client may retry under it.
    pub async fn finish_idempotent(
        &self,
        held: IdempotencyRecord,
        status: u16,
        content_type: &str,
        body: &str,
    ) -> Result<()> {
        let mut record = held;
        record.state = if status >= 500 {
            IdempotencyState::Released
        } else {
            IdempotencyState::Answered {
                status,
                content_type: content_type.to_owned(),
                body: body.to_owned(),
            }
        };
        bump(&mut record, |r| &mut r.version);
        Ok(self.store.commit(vec![Write::Idempotency(record)]).await?)
    }
}

/// Reads the event names of a webhook: known ones, or `["*"]` alone.
fn parse_events(errors: &mut FieldErrors, names: &[String]) -> (Vec<WebhookEvent>, bool) {
    if names.is_empty() {
        errors.push("events", "must name at least one event, or \"*\"");
        return (Vec::new(), false);
    }
    if names.len() > 20 {
        errors.push("events", "must name at most 20 events");
        return (Vec::new(), false);
    }
    if names.iter().any(|n| n == "*") {
        if names.len() > 1 {
            errors.push("events", "\"*\" stands alone");
        }
        return (Vec::new(), true);
    }
    let mut events = Vec::new();
    for (i, name) in names.iter().enumerate() {
        match WebhookEvent::parse(name) {
            Some(e) if !events.contains(&e) => events.push(e),
            Some(_) => {}
            None => errors.push(
                format!("events[{i}]"),
                format!(
                    "unknown event; one of {}, or \"*\"",
                    WebhookEvent::ALL.map(WebhookEvent::as_str).join(", ")
                ),
            ),
        }
    }
    (events, false)
}

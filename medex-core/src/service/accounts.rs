//! Accounts: registration of customers, sign-in, token refresh and logout, and the operators' admin accounts.

use super::*;

/// A signed-in session: what login, register and refresh return.
#[derive(Debug, Clone)]
pub struct Session {
    /// Bearer token for API calls.
    pub access_token: String,
    /// Single-use token for a new pair.
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// The account.
    pub user: User,
}

/// A new customer account.
#[derive(Debug, Clone, Default)]
pub struct NewAccount {
    /// Login e-mail.
    pub email: String,
    /// At least 8 characters.
    pub password: String,
    /// Display name.
    pub full_name: String,
    /// Contact number.
    pub phone: Option<String>,
}

impl MedEx {
    /// A new session for `user`: a fresh session id, then its first token pair.
    pub(super) async fn session(&self, user: User) -> Result<Session> {
        let session = SessionId::from_uuid(self.new_id());
        self.session_pair(user, session).await
    }

    /// A token pair of `session` for `user`, the refresh token recorded as live.
    async fn session_pair(&self, user: User, session: SessionId) -> Result<Session> {
        let now = self.clock.now();
        let subject = Subject {
            user: user.id,
            role: user.role,
            session,
            generation: user.sessions.generation,
        };
        let (access_token, _) =
            self.tokens
                .issue(subject, TokenType::Access, self.entropy.token(), now);
        let (refresh_token, claims) =
            self.tokens
                .issue(subject, TokenType::Refresh, self.entropy.token(), now);
        let expires_at = DateTime::from_timestamp(claims.exp, 0).unwrap_or(now);
        self.store
            .put_refresh_session(RefreshSession {
                id: claims.jti,
                user_id: user.id,
                expires_at,
            })
            .await?;
        Ok(Session {
            access_token,
            refresh_token,
            expires_in: self.tokens.lifetimes().access.num_seconds(),
            user,
        })
    }

    /// Who holds this access token. Inactive or deleted accounts fail at once, whatever the
    /// token's expiry, as do tokens of an ended session or of an earlier generation. An API key
    /// (`mdx_…`) stands for its pharmacy's owner account while it is live.
    pub async fn authenticate(&self, access_token: &str) -> Result<Actor> {
        if access_token.starts_with(crate::integrations::API_KEY_PREFIX) {
            return self.authenticate_api_key(access_token).await;
        }
        let claims = self
            .tokens
            .verify(access_token, TokenType::Access, self.clock.now())
            .map_err(Error::Unauthenticated)?;
        let user = self.holder_of(&claims).await?;
        Ok(Actor {
            session: claims.sid,
            ..Actor::of(&user)
        })
    }

    /// Changes the account with `change` (ending `session`, or every session when `None`) and
    /// commits, re-reading the account when another write of it came first; then tells live
    /// connections.
    async fn end_sessions(
        &self,
        user_id: UserId,
        session: Option<SessionId>,
        change: impl Fn(&mut User, DateTime<Utc>),
    ) -> Result<User> {
        for _ in 0..5 {
            let mut user = self.store.user(user_id).await?.ok_or(Error::NotFound)?;
            let now = self.clock.now();
            change(&mut user, now);
            user.updated_at = now.max(user.updated_at);
            bump(&mut user, |u| &mut u.version);
            match self.store.commit(vec![Write::User(user.clone())]).await {
                Ok(()) => {
                    self.bus.publish(Event::SessionsEnded { user_id, session });
                    return Ok(user);
                }
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Conflict::ConcurrentUpdate.into())
    }

    /// Ends one session of `user_id`, for as long as any of its tokens could be valid.
    async fn end_session(&self, user_id: UserId, session: SessionId) -> Result<()> {
        let refresh = self.tokens.lifetimes().refresh;
        self.end_sessions(user_id, Some(session), move |user, now| {
            user.sessions.end(session, now + refresh, now);
        })
        .await
        .map(drop)
    }

    pub(super) async fn new_user(
        &self,
        errors: &mut FieldErrors,
        account: &NewAccount,
        role: Role,
    ) -> Option<(User, String)> {
        let email = errors.email("email", &account.email);
        errors.password(&account.password);
        let full_name = errors.text("full_name", &account.full_name, 200);
        let phone = errors.optional_text("phone", account.phone.as_deref(), 40);
        let email = email?;
        if !errors.is_empty() {
            return None;
        }
        let now = self.clock.now();
        let user = User {
            id: UserId::from_uuid(self.new_id()),
            email,
            full_name,
            phone,
            role,
            is_active: true,
            password_hash: String::new(),
            vendor_id: None,
            driver_id: None,
            sessions: Sessions::default(),
            created_at: now,
            updated_at: now,
            version: 1,
        };
        Some((user, account.password.clone()))
    }

    /// The new account with its password hashed, unless its e-mail is taken: that is checked
    /// first, so that a taken address costs no hash (the commit still enforces uniqueness
    /// against a registration racing this one).
    pub(super) async fn hashed(&self, (mut user, password): (User, String)) -> Result<User> {
        if self
            .store
            .user_by_email(user.email.as_str())
            .await?
            .is_some()
        {
            return Err(Conflict::EmailTaken.into());
        }
        user.password_hash = self.hasher.hash(password).await;
        Ok(user)
    }

    /// Creates a customer account and signs it in. Only customers register themselves.
    pub async fn register_customer(&self, account: NewAccount) -> Result<Session> {
        let mut errors = FieldErrors::new();
        let pending = self.new_user(&mut errors, &account, Role::User).await;
        errors.finish()?;
        let user = self
            .hashed(pending.ok_or(Error::invalid("email", "invalid"))?)
            .await?;
        self.commit(vec![Write::User(user.clone())]).await?;
        self.session(user).await
    }

    /// Signs in with e-mail and password. A deactivated account is refused as a wrong password
    /// is, so that the answer never confirms a password.
    pub async fn login(&self, email: &str, password: &str) -> Result<Session> {
        let user = match Email::parse(email) {
            Ok(email) => self.store.user_by_email(email.as_str()).await?,
            Err(_) => None,
        };
        let hash = user
            .as_ref()
            .map_or_else(|| self.decoy_hash.clone(), |u| u.password_hash.clone());
        let matches = self.hasher.verify(password.to_owned(), hash).await;
        match user {
            Some(user) if matches && user.is_active => self.session(user).await,
            _ => Err(Error::Unauthenticated(AuthFailure::BadCredentials)),
        }
    }

    /// The account a verified token speaks for, if it is active and the token's session and
    /// generation still stand.
    async fn holder_of(&self, claims: &crate::auth::Claims) -> Result<User> {
        let user = self
            .store
            .user(claims.sub)
            .await?
            .ok_or(Error::Unauthenticated(AuthFailure::InvalidToken))?;
        if !user.is_active {
            return Err(Error::Unauthenticated(AuthFailure::Deactivated));
        }
        if !user.sessions.admit(claims.generation, claims.sid) {
            return Err(Error::Unauthenticated(AuthFailure::Revoked));
        }
        Ok(user)
    }

    /// Trades a refresh token for a new pair of the same session. The old refresh token stops
    /// working. A refresh token presented again after it was used is taken as stolen: its whole
    /// session ends, the newer tokens refreshed from it included.
    pub async fn refresh(&self, refresh_token: &str) -> Result<Session> {
        let claims = self
            .tokens
            .verify(refresh_token, TokenType::Refresh, self.clock.now())
            .map_err(Error::Unauthenticated)?;
        let live = self.store.take_refresh_session(&claims.jti).await?;
        if live.is_none_or(|s| s.user_id != claims.sub) {
            if let Some(session) = claims.sid {
                // A genuine, unexpired token that was used already: someone else has its pair.
                match self.end_session(claims.sub, session).await {
                    Ok(()) | Err(Error::NotFound) => {}
                    Err(e) => return Err(e),
                }
            }
            return Err(Error::Unauthenticated(AuthFailure::Revoked));
        }
        let user = self.holder_of(&claims).await?;
        match claims.sid {
            Some(session) => self.session_pair(user, session).await,
            None => self.session(user).await,
        }
    }

    /// Ends the session of a refresh token: the refresh token and the session's access tokens
    /// stop working at once. Ending one already ended is not an error.
    pub async fn logout(&self, refresh_token: &str) -> Result<()> {
        let claims = self
            .tokens
            .verify(refresh_token, TokenType::Refresh, self.clock.now())
            .map_err(Error::Unauthenticated)?;
        self.store.take_refresh_session(&claims.jti).await?;
        if let Some(session) = claims.sid {
            match self.end_session(claims.sub, session).await {
                Ok(()) | Err(Error::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// "Log out everywhere": every token of the actor's account stops working at once.
    pub async fn logout_everywhere(&self, actor: &Actor) -> Result<()> {
        self.end_sessions(actor.user_id, None, |user, _| user.sessions.end_all())
            .await
            .map(drop)
    }

    /// Changes the actor's password, given the current one; every token issued before stops
    /// working, and the answer is a new session for the caller.
    pub async fn change_password(
        &self,
        actor: &Actor,
        current_password: &str,
        new_password: &str,
    ) -> Result<Session> {
        let mut errors = FieldErrors::new();
        errors.password(new_password);
        if let Err(crate::fields::Invalid(mut fields)) = errors.finish() {
            for f in &mut fields {
                f.field = "new_password".into();
            }
            return Err(Error::Invalid(fields));
        }
        let user = self
            .store
            .user(actor.user_id)
            .await?
            .ok_or(Error::NotFound)?;
        if !self
            .hasher
            .verify(current_password.to_owned(), user.password_hash.clone())
            .await
        {
            return Err(Error::invalid(
                "current_password",
                "is not the account's password",
            ));
        }
        let hash = self.hasher.hash(new_password.to_owned()).await;
        let user = self
            .end_sessions(actor.user_id, None, move |user, _| {
                user.password_hash = hash.clone();
                user.sessions.end_all();
            })
            .await?;
        self.session(user).await
    }

    /// The actor's own account.
    pub async fn me(&self, actor: &Actor) -> Result<User> {
        self.store.user(actor.user_id).await?.ok_or(Error::NotFound)
    }

    /// Creates an admin account. For operators (first start, command line), not for the API.
    pub async fn create_admin(&self, email: &str, password: &str, full_name: &str) -> Result<User> {
        let mut errors = FieldErrors::new();
        let account = NewAccount {
            email: email.into(),
            password: password.into(),
            full_name: full_name.into(),
            phone: None,
        };
        let pending = self.new_user(&mut errors, &account, Role::Admin).await;
        errors.finish()?;
        let user = self
            .hashed(pending.ok_or(Error::invalid("email", "invalid"))?)
            .await?;
        self.commit(vec![Write::User(user.clone())]).await?;
        Ok(user)
    }

    /// Creates the first admin unless an admin exists already. Returns the new account, if any.
    ///
    /// Instances starting at once on one store take turns under a lease, so that exactly one
    /// admin is created whatever e-mail each was given: while another instance holds it the
    /// answer is [`Conflict::ConcurrentUpdate`], and the caller asks again shortly (it then
    /// finds that admin).
    pub async fn ensure_admin(&self, email: &str, password: &str) -> Result<Option<User>> {
        if self.admin_exists().await? {
            return Ok(None);
        }
        let holder = self.new_id().to_string();
        let now = self.clock.now();
        let until = now + Duration::minutes(1);
        if !self
            .store
            .acquire_lease(LeaseClaim::new(FIRST_ADMIN_LEASE, &holder, now, until))
            .await?
        {
            return Err(Conflict::ConcurrentUpdate.into());
        }
        let created = match self.admin_exists().await {
            Ok(true) => Ok(None),
            Ok(false) => self
                .create_admin(email, password, "Administrator")
                .await
                .map(Some),
            Err(e) => Err(e),
        };
        // An unreleased lease only delays another first start by its minute.
        let _ = self.store.release_lease(FIRST_ADMIN_LEASE, &holder).await;
        created
    }

    async fn admin_exists(&self) -> Result<bool> {
        let query = UserQuery {
            role: Some(Role::Admin),
            is_active: None,
        };
        Ok(!self.store.users(&query, Page::first(1)).await?.is_empty())
    }
}

/// The lease [`MedEx::ensure_admin`] creates the first admin under.
pub const FIRST_ADMIN_LEASE: &str = "first-admin";

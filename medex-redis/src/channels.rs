//! Channel and key names, all under one prefix so that several deployments (or test runs) share
//! a Redis: `{prefix}:vendor:{id}`, `{prefix}:tracking:{sha256 of the token}`,
//! `{prefix}:driver:{id}`, `{prefix}:account:{user id}` (an account's connections, closed when its
//! tokens stop working), `{prefix}:resync` for notices of lost events, and
//! `{prefix}:throttle:{key}` for throttling counts. A tracking token is a secret of its link: its
//! channel is named by its SHA-256, which nobody can turn back into the token.

use medex_core::events::Topic;
use sha2::{Digest, Sha256};

/// The names of one deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Names {
    prefix: String,
}

impl Names {
    pub(crate) fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    /// The channel a topic's events are published on.
    pub(crate) fn channel(&self, topic: &Topic) -> String {
        match topic {
            Topic::Vendor(id) => format!("{}:vendor:{id}", self.prefix),
            Topic::Tracking(token) => {
                let digest = Sha256::digest(token.as_bytes());
                let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
                format!("{}:tracking:{hex}", self.prefix)
            }
            Topic::Driver(id) => format!("{}:driver:{id}", self.prefix),
            Topic::Account(id) => format!("{}:account:{id}", self.prefix),
        }
    }

    /// The channel of notices that events were lost on the way to Redis.
    pub(crate) fn resync(&self) -> String {
        format!("{}:resync", self.prefix)
    }

    /// The key of a throttling count.
    pub(crate) fn count(&self, key: &str) -> String {
        format!("{}:throttle:{key}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_are_prefixed_and_tokens_never_appear() {
        let names = Names::new("medex-test");
        let token = "s3cr3t-Tracking-Token_x";
        let channel = names.channel(&Topic::Tracking(token.into()));
        assert!(channel.starts_with("medex-test:tracking:"), "{channel}");
        assert!(!channel.contains(token) && !channel.contains("s3cr3t"));
        assert_eq!(channel.len(), "medex-test:tracking:".len() + 64);
        assert_eq!(
            channel,
            names.channel(&Topic::Tracking(token.into())),
            "the same token, the same channel"
        );
        assert_ne!(channel, names.channel(&Topic::Tracking("other".into())));
        let id = "0190a0c4-7b6e-7c1f-8a3b-5d2e9f0a1b2c";
        assert_eq!(
            names.channel(&Topic::Vendor(id.parse().unwrap())),
            format!("medex-test:vendor:{id}")
        );
        assert_eq!(
            names.channel(&Topic::Driver(id.parse().unwrap())),
            format!("medex-test:driver:{id}")
        );
        assert_eq!(
            names.channel(&Topic::Account(id.parse().unwrap())),
            format!("medex-test:account:{id}")
        );
        assert_eq!(names.resync(), "medex-test:resync");
        assert_eq!(names.count("account:ab"), "medex-test:throttle:account:ab");
    }
}

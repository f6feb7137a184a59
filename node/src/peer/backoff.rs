//! Reconnect with exponential backoff and jitter, for peers we have channels with.
//!
//! Owns: the delay schedule and the retry loop. Must never retry without a delay or grow
//! the delay past its cap.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bitcoin::secp256k1::PublicKey;
use fulmen_wire::transport::{NoiseIdentity, TransportError};

use super::{connect, DisconnectReason, Peer, PeerConfig};

/// Exponential backoff: `base * 2^attempt`, capped at `max`, with jitter that picks a
/// delay in `[d/2, d]`.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// A schedule starting at `base` and never exceeding `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Backoff {
            base,
            max: max.max(base),
            attempt: 0,
        }
    }

    /// The delay before the next attempt; `jitter` is any random value.
    pub fn next_delay(&mut self, jitter: u64) -> Duration {
        let factor = 1u32 << self.attempt.min(20);
        let d = self.base.saturating_mul(factor).min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let half = d / 2;
        let span = (d - half).as_micros().max(1) as u64;
        half + Duration::from_micros(jitter % span)
    }

    /// Start over (after a connection stayed up).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Attempts made since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

/// Whether retrying can help: a peer proving a different node id, or refusing our
/// features, will not change its mind.
fn retryable(r: &DisconnectReason) -> bool {
    !matches!(
        r,
        DisconnectReason::Transport(TransportError::WrongNodeId { .. })
            | DisconnectReason::Incompatible(_)
    )
}

/// Dials until connected, sleeping per `backoff` between attempts. Gives up after
/// `max_attempts` (if set) or on a non-retryable failure, returning the last reason.
pub async fn connect_with_backoff(
    identity: Arc<NoiseIdentity>,
    node_id: PublicKey,
    addr: SocketAddr,
    cfg: PeerConfig,
    backoff: &mut Backoff,
    max_attempts: Option<u32>,
) -> Result<Peer, DisconnectReason> {
    let mut tries = 0u32;
    loop {
        match connect(identity.clone(), node_id, addr, cfg.clone()).await {
            Ok(p) => {
                backoff.reset();
                return Ok(p);
            }
            Err(e) => {
                tries += 1;
                if !retryable(&e) || max_attempts.is_some_and(|m| tries >= m) {
                    return Err(e);
                }
                let d = backoff.next_delay(rand::random());
                tracing::debug!(%node_id, %addr, error = %e, delay_ms = d.as_millis() as u64, "reconnecting");
                tokio::time::sleep(d).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_cap() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let ds: Vec<_> = (0..6).map(|_| b.next_delay(u64::MAX)).collect();
        for (i, d) in ds.iter().enumerate() {
            let full = Duration::from_millis(100 * (1 << i)).min(Duration::from_secs(1));
            assert!(*d >= full / 2 && *d <= full, "{i}: {d:?}");
        }
        assert!(ds[5] <= Duration::from_secs(1));
        b.reset();
        assert_eq!(b.attempts(), 0);
        assert!(b.next_delay(0) == Duration::from_millis(50));
    }
}

//! Multi-part payment sets at the final node (BOLT 4 "basic_mpp"): collect the HTLCs of
//! one payment hash until they add up to `total_msat`, or time out with `mpp_timeout`.
//!
//! Pure state: the node passes "now" in and stores/persists the set. Bounded: at most
//! [`MAX_MPP_PARTS`] parts per set. Never settles a set whose parts disagree on the total.

use crate::failure::FailureMessage;

/// Recommended time to wait for the rest of a multi-part payment (BOLT 4: 60 seconds).
pub const MPP_TIMEOUT_SECS: u64 = 60;
/// Most parts accepted in one set (bounds memory per payment against hostile payers).
pub const MAX_MPP_PARTS: usize = 128;

/// One HTLC of the set, identified by an id opaque to this module (e.g. channel + htlc id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MppPart {
    /// The node's identifier for the HTLC.
    pub id: u64,
    /// Amount of this HTLC.
    pub amount_msat: u64,
}

/// What the set looks like after adding a part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MppStatus {
    /// Keep holding the parts.
    Waiting {
        /// Sum of the parts so far.
        received_msat: u64,
    },
    /// The parts reach `total_msat`: fulfill every part.
    Complete {
        /// Sum of the parts.
        received_msat: u64,
    },
}

/// The HTLCs of one payment hash received so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MppSet {
    total_msat: u64,
    first_seen_secs: u64,
    parts: Vec<MppPart>,
}

impl MppSet {
    /// Starts a set with the first part's `total_msat`, at time `now_secs`.
    pub fn new(total_msat: u64, now_secs: u64) -> Self {
        MppSet {
            total_msat,
            first_seen_secs: now_secs,
            parts: Vec::new(),
        }
    }

    /// Adds a part whose `payment_data.total_msat` is `total_msat`. A part disagreeing on the
    /// total, a duplicate id, or one part too many is refused with
    /// `incorrect_or_unknown_payment_details` (`height` from the caller); the set is unchanged.
    pub fn add(
        &mut self,
        part: MppPart,
        total_msat: u64,
        height: u32,
    ) -> Result<MppStatus, FailureMessage> {
        let refuse = || FailureMessage::IncorrectOrUnknownPaymentDetails {
            htlc_msat: part.amount_msat,
            height,
        };
        if total_msat != self.total_msat
            || self.parts.len() >= MAX_MPP_PARTS
            || self.parts.iter().any(|p| p.id == part.id)
        {
            return Err(refuse());
        }
        self.parts.push(part);
        Ok(self.status())
    }

    /// Current status.
    pub fn status(&self) -> MppStatus {
        let received_msat = self.received_msat();
        if received_msat >= self.total_msat {
            MppStatus::Complete { received_msat }
        } else {
            MppStatus::Waiting { received_msat }
        }
    }

    /// Sum of the parts (saturating).
    pub fn received_msat(&self) -> u64 {
        self.parts
            .iter()
            .fold(0u64, |acc, p| acc.saturating_add(p.amount_msat))
    }

    /// True if the set is incomplete and `timeout_secs` have passed since its first part:
    /// fail every part with [`crate::forward::mpp_timeout`].
    pub fn timed_out(&self, now_secs: u64, timeout_secs: u64) -> bool {
        matches!(self.status(), MppStatus::Waiting { .. })
            && now_secs.saturating_sub(self.first_seen_secs) >= timeout_secs
    }

    /// The parts held.
    pub fn parts(&self) -> &[MppPart] {
        &self.parts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_complete_the_set() {
        let mut set = MppSet::new(10_000, 100);
        let a = MppPart {
            id: 1,
            amount_msat: 4_000,
        };
        assert_eq!(
            set.add(a, 10_000, 7),
            Ok(MppStatus::Waiting {
                received_msat: 4_000
            })
        );
        // Duplicate id and mismatched total are refused without changing the set.
        assert!(set.add(a, 10_000, 7).is_err());
        assert_eq!(
            set.add(
                MppPart {
                    id: 2,
                    amount_msat: 6_000
                },
                9_999,
                7
            ),
            Err(FailureMessage::IncorrectOrUnknownPaymentDetails {
                htlc_msat: 6_000,
                height: 7
            })
        );
        assert!(!set.timed_out(159, MPP_TIMEOUT_SECS));
        assert!(set.timed_out(160, MPP_TIMEOUT_SECS));
        let b = MppPart {
            id: 2,
            amount_msat: 6_000,
        };
        assert_eq!(
            set.add(b, 10_000, 7),
            Ok(MppStatus::Complete {
                received_msat: 10_000
            })
        );
        assert!(!set.timed_out(1_000, MPP_TIMEOUT_SECS));
        assert_eq!(set.parts().len(), 2);
    }

    #[test]
    fn part_count_is_bounded() {
        let mut set = MppSet::new(u64::MAX, 0);
        for id in 0..MAX_MPP_PARTS as u64 {
            assert!(set.add(MppPart { id, amount_msat: 1 }, u64::MAX, 0).is_ok());
        }
        assert!(set
            .add(
                MppPart {
                    id: 9_999,
                    amount_msat: 1
                },
                u64::MAX,
                0
            )
            .is_err());
    }
}

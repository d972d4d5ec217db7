//! A subscription's mode: whether it is replaying what a failure left unconfirmed.

/// Whether a subscription is replaying events left unconfirmed by a crash or restart.
/// The log persists it (as a `u32`, see `log::cursors`) and `Subscribed` carries it (as
/// a `u8`); both encode normal as 0 and recovering as 1.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum SubscriptionMode {
    /// Live delivery: events flow normally.
    Normal = 0,
    /// Replaying events left unconfirmed by a crash or restart, flagged redelivered.
    Recovering = 1,
}

impl SubscriptionMode {
    /// The mode carried by `value` on the wire, if any.
    pub const fn from_u8(value: u8) -> Option<Self> {
        match value {
            0 => Some(SubscriptionMode::Normal),
            1 => Some(SubscriptionMode::Recovering),
            _ => None,
        }
    }

    /// The value on the wire.
    pub const fn as_u8(self) -> u8 {
        self as u8
    }
}

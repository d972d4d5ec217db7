//! Control: `Status` and `Admin` requests, answered one per connection per turn
//! after the data path. Not on the event path: these allocate freely.
//!
//! Every answer fits one `StatusReply` frame: lists are cut where the next row would
//! not fit, and say so (`shown` below `total`, and where to go on), so that a client
//! pages through them and never waits for an answer that was dropped.

mod admin;
mod manage;
mod rules;
mod status;

pub use status::SubscriptionRow;

use super::core::Core;
use crate::pmem::Medium;
use crate::protocol::{encode, Frame, STATUS_JSON_BYTES_MAX};
use crate::reactor::Reactor;

impl<R: Reactor, M: Medium> Core<R, M> {
    /// Answers every waiting `Status` and `Admin` request.
    pub(super) fn control(&mut self) {
        for slot in 0..self.conns.len() {
            let conn = self.conns.get(slot);
            if !conn.control_requested || !conn.open_for_io() || conn.held_replies > 0 {
                continue;
            }
            let admin_len = conn.admin_len;
            let json = if admin_len > 0 {
                let request = String::from_utf8_lossy(&conn.admin[..admin_len]).into_owned();
                self.admin(&request)
            } else {
                self.status_json()
            };
            let conn = self.conns.get_mut(slot);
            conn.control_requested = false;
            conn.admin_len = 0;
            conn.blocked = false;
            conn.has_input = conn.recv_len > 0;
            // A bug guard: every answer is built within the frame; one that is not is
            // replaced by an error document, never dropped.
            let json = if json.len() > STATUS_JSON_BYTES_MAX {
                tracing::error!(
                    bytes = json.len(),
                    "a control answer exceeded one frame; answering with an error instead"
                );
                serde_json::json!({ "error": "the answer did not fit one frame; ask for fewer rows (limit, after)" }).to_string()
            } else {
                json
            };
            conn.send_free();
            match encode(&Frame::StatusReply { json: &json }, conn.send_tail()) {
                Ok(n) => conn.wrote(n),
                Err(e) => {
                    tracing::error!(error = %e, "a control answer could not be encoded; closing the connection");
                    conn.close_after_flush = true;
                }
            }
        }
    }
}

/// Appends JSON rows to a list while the whole document stays within one frame:
/// `fixed_bytes` is what the document takes without them. Returns how many fit.
pub(crate) fn fit_rows(
    fixed_bytes: usize,
    rows: impl Iterator<Item = serde_json::Value>,
    out: &mut Vec<serde_json::Value>,
) -> usize {
    // Room for the separators and the counts the caller adds after measuring.
    const SLACK_BYTES: usize = 256;
    let mut used = fixed_bytes + SLACK_BYTES;
    let before = out.len();
    for row in rows {
        let bytes = row.to_string().len() + 1;
        if used + bytes > STATUS_JSON_BYTES_MAX {
            break;
        }
        used += bytes;
        out.push(row);
    }
    out.len() - before
}

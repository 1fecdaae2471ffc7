//! Checking the peer's OPEN against our configuration (RFC 4271 6.2, RFC 6286,
//! RFC 6793) and computing what the session runs with.

use crate::bgp::wire::notification::{
    CODE_OPEN_MESSAGE, OPEN_BAD_BGP_IDENTIFIER, OPEN_BAD_PEER_AS, OPEN_UNACCEPTABLE_HOLD_TIME,
};
use crate::bgp::wire::open::{
    AS_TRANS, CAP_ENHANCED_ROUTE_REFRESH, CAP_EXTENDED_MESSAGE, CAP_ROUTE_REFRESH,
};
use crate::bgp::wire::{
    AfiSafi, Capability, GracefulRestart, Notification, Open, MAX_EXTENDED_MESSAGE_LEN,
    MAX_MESSAGE_LEN,
};

use super::config::PeerConfig;

/// What both sides agreed on, computed from our configuration and the peer's
/// OPEN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The peer's AS: the 4-octet AS capability's if present, else My AS.
    /// For dynamic neighbours this is the AS learned.
    pub peer_as: u32,
    /// The peer's BGP Identifier.
    pub peer_id: u32,
    /// True if the peer is in our AS.
    pub internal: bool,
    /// Hold time in seconds: the smaller of both proposals; 0 means no hold
    /// timer and no keepalives.
    pub hold_time: u16,
    /// Seconds between our KEEPALIVEs; 0 when the hold time is 0.
    pub keepalive: u16,
    /// Families both sides advertised (a side without any Multiprotocol
    /// capability counts as IPv4 unicast, RFC 4760 8), in our configured
    /// order. May be empty: the session still comes up, carrying nothing.
    pub families: Vec<AfiSafi>,
    /// Both sides support 4-octet AS numbers (RFC 6793): UPDATE decoding
    /// reads AS_PATH with 4-octet ASes when true, 2-octet plus AS4_PATH
    /// otherwise.
    pub four_octet_as: bool,
    /// Both sides advertised Route Refresh (RFC 2918).
    pub route_refresh: bool,
    /// Both sides advertised Enhanced Route Refresh (RFC 7313).
    pub enhanced_route_refresh: bool,
    /// Both sides advertised Extended Message (RFC 8654).
    pub extended_message: bool,
    /// The peer's Graceful Restart capability, as received (restart time, R
    /// bit, N bit, families with their F bits). After a restart the RIB
    /// drops stale paths of families whose F bit is now clear (RFC 4724 4.2).
    pub peer_graceful_restart: Option<GracefulRestart>,
    /// We advertised Graceful Restart (so we act as helper).
    pub local_graceful_restart: bool,
    /// Both sides set the N bit (RFC 8538): NOTIFICATIONs other than Hard
    /// Reset keep graceful restart, and our Cease for shutdown and
    /// max-prefix goes out wrapped in a Hard Reset.
    pub graceful_notification: bool,
}

impl Negotiated {
    /// The largest message either side may send: 65535 with Extended
    /// Message, 4096 otherwise. Pass it to [`wire::frame`](crate::bgp::wire::frame).
    pub fn max_message_len(&self) -> usize {
        if self.extended_message {
            MAX_EXTENDED_MESSAGE_LEN
        } else {
            MAX_MESSAGE_LEN
        }
    }
}

/// Check the peer's OPEN (RFC 4271 6.2) and negotiate. The version, AS 0, and
/// a zero identifier are already refused by the decoder; they are checked
/// again here so that an `Open` built by hand gets the same answer.
///
/// Returns the NOTIFICATION to send when the OPEN is refused.
pub fn negotiate(config: &PeerConfig, open: &Open) -> Result<Negotiated, Notification> {
    let open_error = |subcode| Notification::new(CODE_OPEN_MESSAGE, subcode, Vec::new());

    if matches!(open.hold_time, 1 | 2) {
        return Err(open_error(OPEN_UNACCEPTABLE_HOLD_TIME));
    }

    // RFC 6793 4.1: the real AS travels in the capability; My AS must then
    // be AS_TRANS if the AS needs 4 octets, or the AS itself if not. Without
    // the capability My AS is the AS, and AS_TRANS is not a real AS.
    let four_octet_cap = open.capabilities().find_map(|c| match c {
        Capability::FourOctetAs(asn) => Some(*asn),
        _ => None,
    });
    let peer_as = four_octet_cap.unwrap_or(u32::from(open.my_as));
    let consistent = match four_octet_cap {
        Some(asn) => match u16::try_from(asn) {
            Ok(short) => short == open.my_as && short != AS_TRANS,
            Err(_) => open.my_as == AS_TRANS,
        },
        None => open.my_as != AS_TRANS,
    };
    if peer_as == 0 || !consistent || !config.peer_as.accepts(peer_as, config.local_as) {
        return Err(open_error(OPEN_BAD_PEER_AS));
    }

    // RFC 6286 2.2: non-zero, and distinct from ours within an AS.
    let internal = peer_as == config.local_as;
    if open.bgp_id == 0 || (internal && open.bgp_id == config.router_id) {
        return Err(open_error(OPEN_BAD_BGP_IDENTIFIER));
    }

    let hold_time = config.proposed_hold_time().min(open.hold_time);
    let keepalive = if hold_time == 0 {
        0
    } else {
        let third = (hold_time / 3).max(1);
        match config.keepalive {
            Some(k) if k > 0 => k.min(third),
            _ => third,
        }
    };

    let mut peer_families: Vec<AfiSafi> = open.multiprotocol_families().collect();
    if peer_families.is_empty() {
        peer_families.push(AfiSafi::IPV4_UNICAST);
    }
    let local_families: &[AfiSafi] = if config.families.is_empty() {
        &[AfiSafi::IPV4_UNICAST]
    } else {
        &config.families
    };
    let mut families = Vec::new();
    for f in local_families {
        if peer_families.contains(f) && !families.contains(f) {
            families.push(*f);
        }
    }

    let peer_gr = open.graceful_restart().cloned();
    let local_gr = config.graceful_restart.as_ref();
    let graceful_notification =
        matches!((local_gr, &peer_gr), (Some(l), Some(p)) if l.notification && p.notification);

    Ok(Negotiated {
        peer_as,
        peer_id: open.bgp_id,
        internal,
        hold_time,
        keepalive,
        families,
        four_octet_as: four_octet_cap.is_some(),
        route_refresh: open.has_capability(CAP_ROUTE_REFRESH),
        enhanced_route_refresh: open.has_capability(CAP_ENHANCED_ROUTE_REFRESH),
        extended_message: config.extended_message && open.has_capability(CAP_EXTENDED_MESSAGE),
        peer_graceful_restart: peer_gr,
        local_graceful_restart: local_gr.is_some(),
        graceful_notification,
    })
}

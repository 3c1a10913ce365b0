//! `<SystemInfo>` as the daemon reads it: the node's status, the XMPP and pubsub domains,
//! each side's address block (with the 12.6(2)+ ports), maintenance mode (12.6+) and the
//! authentication mode.

use super::pull::{XmlError, parse};

/// One node's address block in SystemInfo.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeAddress {
    /// Host name.
    pub host: String,
    /// REST port (12.6(2)+).
    pub https_port: Option<String>,
    /// XMPP STARTTLS port (12.6(2)+).
    pub xmpp_port: Option<String>,
    /// XMPP direct-TLS port (12.6(2)+).
    pub xmpp_secure_port: Option<String>,
}

/// `<SystemInfo>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SystemInfo {
    /// IN_SERVICE, OUT_OF_SERVICE, PARTIAL_SERVICE, or anything else (kept).
    pub status: String,
    /// The XMPP domain (also the TLS name).
    pub xmpp_domain: String,
    /// The pubsub service.
    pub xmpp_pub_sub_domain: String,
    /// Side A.
    pub primary_node: Option<NodeAddress>,
    /// Side B.
    pub secondary_node: Option<NodeAddress>,
    /// `finesseMMode` (12.6+): empty when not in maintenance, else IN_PROGRESS or any other
    /// value (kept).
    pub finesse_m_mode: Option<String>,
    /// `systemAuthMode`: NON_SSO, SSO or HYBRID (kept as written).
    pub system_auth_mode: Option<String>,
}

impl SystemInfo {
    /// Parses a SystemInfo document.
    pub fn parse(xml: &str) -> Result<Self, XmlError> {
        parse("SystemInfo", &["SystemInfo"], xml, SystemInfo::read)
    }

    /// True when the node serves requests.
    pub fn in_service(&self) -> bool {
        self.status.trim().eq_ignore_ascii_case("IN_SERVICE")
    }

    /// True when Finesse maintenance mode is under way on this node: `finesseMMode` set to
    /// anything (IN_PROGRESS, or a value this reader does not know).
    pub fn in_maintenance(&self) -> bool {
        self.finesse_m_mode
            .as_deref()
            .is_some_and(|m| !m.trim().is_empty())
    }

    /// True when the site uses single sign-on (`systemAuthMode` SSO; HYBRID is not).
    pub fn is_sso(&self) -> bool {
        self.system_auth_mode
            .as_deref()
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("SSO"))
    }

    /// The address block whose host is `host` (case-insensitive), primary or secondary;
    /// when both name that host, the one whose `httpsPort` is `port`.
    pub fn node_for_host(&self, host: &str, port: Option<u16>) -> Option<&NodeAddress> {
        let same_host: Vec<&NodeAddress> =
            [self.primary_node.as_ref(), self.secondary_node.as_ref()]
                .into_iter()
                .flatten()
                .filter(|n| n.host.trim().eq_ignore_ascii_case(host))
                .collect();
        match same_host.as_slice() {
            [one] => Some(one),
            [] => None,
            several => several.iter().copied().find(|n| {
                let https = n
                    .https_port
                    .as_deref()
                    .and_then(|p| p.trim().parse::<u16>().ok());
                port.is_some() && https == port
            }),
        }
    }
}

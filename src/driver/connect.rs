//! Asking one node's SystemInfo (the machine decides which node and when to fail over), and
//! bringing the XMPP session up on the chosen node: login, presence, and the full-JID
//! subscriptions.

use tokio::time::Instant;
use tokio_xmpp::jid::Jid;
use tokio_xmpp::xmlstream::Timeouts;
use tracing::{info, warn};

use super::Driver;
use crate::config::Transport;
use crate::finesse::model::SystemInfo;
use crate::finesse::rest::{RestError, error_chain};
use crate::machine::{Input, NodeAnswer};
use crate::vocab::Cause;
use crate::xmpp::link::LinkEvent;
use crate::xmpp::session::{LoginFailed, LoginParams, SaslOptions, is_auth_error, is_sasl_error};
use crate::xmpp::websocket::Endpoint;
use crate::xmpp::{Connector, Error as XmppError, TlsMode};

impl Driver {
    /// GET SystemInfo on node `idx`, as the machine's answer. An IN_SERVICE one is kept for
    /// the XMPP login.
    pub(super) async fn ask_system_info(&mut self, idx: usize) -> Input {
        let url = self.cfg.nodes[idx].clone();
        let result = tokio::select! {
            () = self.shutdown.cancelled() => return Input::Stop,
            r = self.rest.system_info(&url) => r,
        };
        let answer = match result {
            Ok(info) if info.in_service() => {
                self.check_auth_mode(&url, &info);
                let maintenance = info.in_maintenance();
                if maintenance {
                    warn!(node = %url, "node in maintenance mode: moving to the other node");
                }
                self.last_info = Some(info);
                if maintenance {
                    NodeAnswer::Maintenance
                } else {
                    NodeAnswer::InService
                }
            }
            Ok(info) => {
                info!(node = %url, status = %info.status, "node not in service");
                NodeAnswer::NotInService
            }
            Err(e) => {
                warn!(node = %url, error = %e, "SystemInfo failed");
                NodeAnswer::Failed {
                    cause: e.cause(),
                    malformed: matches!(e, RestError::Malformed(_)),
                }
            }
        };
        Input::SystemInfo { node: idx, answer }
    }

    /// The login for node `idx`: its host from the config, the port from the config, else
    /// SystemInfo's entry for this node, else 5223/5222 by TLS mode. The host is resolved
    /// asynchronously, so a slow resolver does not stall the API or the watchdog.
    pub(super) async fn login_params(
        &self,
        idx: usize,
        info: &SystemInfo,
    ) -> Result<LoginParams, XmppError> {
        let url = &self.cfg.nodes[idx];
        let host = url.host_str().unwrap_or("localhost").to_owned();
        let domain = self
            .cfg
            .xmpp
            .domain
            .clone()
            .unwrap_or_else(|| info.xmpp_domain.trim().to_owned());
        if domain.is_empty() {
            return Err(XmppError::NoDomain);
        }
        // The address block whose host is this node's; by position only when none matches.
        let node_info = info
            .node_for_host(&host, url.port_or_known_default())
            .or(if idx == 0 {
                info.primary_node.as_ref()
            } else {
                info.secondary_node.as_ref()
            });
        let from_info = node_info.and_then(|n| {
            let p = if self.cfg.xmpp.tls == TlsMode::Direct {
                &n.xmpp_secure_port
            } else {
                &n.xmpp_port
            };
            p.as_deref().and_then(|p| p.trim().parse::<u16>().ok())
        });
        let websocket = self.cfg.xmpp.transport == Transport::WebSocket;
        let port = if websocket {
            // The node's HTTPS front end: 8445 on Finesse 12.6+, 7443 on 12.0/12.5.
            self.cfg
                .xmpp
                .websocket_port
                .or(url.port_or_known_default())
                .unwrap_or(8445)
        } else {
            self.cfg
                .xmpp
                .port
                .or(from_info)
                .unwrap_or(match self.cfg.xmpp.tls {
                    TlsMode::Direct => 5223,
                    _ => 5222,
                })
        };
        // A bracketed IPv6 literal resolves without them.
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let mut addrs = tokio::net::lookup_host((bare, port))
            .await
            .map_err(|source| XmppError::Resolve {
                host: host.clone(),
                port,
                source,
            })?;
        let addr = addrs.next().ok_or_else(|| XmppError::NoAddress {
            host: host.clone(),
            port,
        })?;
        let more: Vec<_> = addrs.collect();
        let (user, password, mechanisms) = self.xmpp_login();
        let jid: Jid = format!("{user}@{domain}/{}", self.cfg.xmpp.resource)
            .parse()
            .map_err(|e: tokio_xmpp::jid::Error| XmppError::Jid(e.to_string()))?;
        let mut connector = Connector::new(addr, self.cfg.xmpp.tls, self.tls.clone())
            .with_more_addresses(more)
            .with_source(self.cfg.source_address)
            .with_connect_timeout(self.cfg.connect_timeout)
            .with_round_trips(self.shared.metrics.xmpp_round_trips());
        if websocket {
            let endpoint = Endpoint {
                host: bare.to_owned(),
                port,
                path: self.cfg.xmpp.websocket_path.clone(),
            };
            connector = connector.over_websocket(endpoint, self.memo.redirect.clone());
        }
        Ok(LoginParams {
            connector,
            jid,
            password,
            timeouts: Timeouts {
                read_timeout: self.cfg.xmpp.ping_interval,
                response_timeout: self.cfg.xmpp.ping_timeout,
            },
            disable_sm: true,
            sasl: SaslOptions {
                channel_binding: self.cfg.xmpp.channel_binding,
                mechanisms,
                binding_refused: self.memo.binding_refused,
            },
        })
    }

    /// Logs in to node `idx`, sends presence and subscribes, as the machine's answer. With
    /// SSO, a due refresh comes first, and a token refused right after a refresh is refreshed
    /// once more and retried before it counts as a refusal (Cisco documents no XMPP login for
    /// SSO; a server that had not yet seen the newest token is the benign reading).
    pub(super) async fn connect_xmpp(&mut self, idx: usize) -> Input {
        if let Err(cause) = self.before_login(idx).await {
            return Input::ConnectFailed { cause, refusals: 1 };
        }
        let first = self.connect_once(idx).await;
        let refused = matches!(first, Input::ConnectFailed { refusals, .. } if refusals > 0);
        let Some(run) = self.sso.as_mut() else {
            return first;
        };
        // Only a login the server answered settles whether the newest token works.
        if matches!(first, Input::Connected { .. }) {
            run.refreshed_since_login = false;
        }
        if !refused || !std::mem::take(&mut run.refreshed_since_login) {
            return first;
        }
        info!("the XMPP server refused the token right after a refresh: refreshing once more");
        match self.refresh_token(idx).await {
            Ok(()) => match self.connect_once(idx).await {
                Input::ConnectFailed { cause, refusals } if refusals > 0 => Input::ConnectFailed {
                    cause,
                    refusals: crate::vocab::MAX_REFUSALS,
                },
                other => other,
            },
            Err(Some(cause)) => Input::ConnectFailed {
                cause,
                refusals: crate::vocab::MAX_REFUSALS,
            },
            Err(None) => first,
        }
    }

    /// One XMPP login on node `idx` with presence and subscriptions.
    async fn connect_once(&mut self, idx: usize) -> Input {
        let failed = |cause: Cause| Input::ConnectFailed { cause, refusals: 0 };
        let Some(info) = self.last_info.clone() else {
            warn!("no SystemInfo for the XMPP login");
            return failed(Cause::XmppConfig);
        };
        let params = match self.login_params(idx, &info).await {
            Ok(p) => p,
            Err(e) => {
                warn!(error = %e, "cannot build the XMPP login");
                return failed(Cause::XmppConfig);
            }
        };
        self.shared.beat();
        // The pubsub service as SystemInfo names it (Cisco: xmppPubSubDomain), else the
        // conventional `pubsub.<domain>`.
        let named = info.xmpp_pub_sub_domain.trim();
        let pubsub = if named.is_empty() {
            format!("pubsub.{}", params.jid.domain())
        } else {
            named.to_owned()
        };
        let Ok(pubsub) = pubsub.parse::<Jid>() else {
            warn!(%pubsub, "the pubsub service's name is not a JID");
            return failed(Cause::XmppConfig);
        };
        // A fleet's logins come no faster than its cap, and no more at once: the slot is
        // held until the login has its answer.
        let slot = match self.provider.throttle() {
            Some(t) => Some(t.login().await),
            None => None,
        };
        info!(addr = %params.connector_addr(), "XMPP login started");
        self.link.set_max_stanza(self.cfg.xmpp.max_stanza);
        // A server that accepts TCP and then says nothing must not hold us forever.
        let limit = self.cfg.request_timeout + self.cfg.xmpp.ping_timeout;
        let connected = tokio::select! {
            () = self.shutdown.cancelled() => return Input::Stop,
            r = tokio::time::timeout(limit, self.link.connect(&params, &pubsub)) => match r {
                Ok(r) => r,
                Err(_) => {
                    warn!(timeout_ms = limit.as_millis() as u64, "XMPP login timed out");
                    return failed(Cause::XmppTimeout);
                }
            },
        };
        drop(slot);
        self.shared.beat();
        let failed_login = match connected {
            Ok(learnt) => {
                self.memo.binding_refused |= learnt.binding_refused;
                None
            }
            Err(f) => Some(f),
        };
        if let Some(LoginFailed { error: e, refusals }) = failed_login {
            let auth = is_auth_error(&e);
            let error = error_chain(&e);
            match login_hint(&error, self.cfg.xmpp.tls) {
                Some(hint) => {
                    warn!(%error, auth, addr = %params.connector_addr(), hint, "XMPP login failed")
                }
                None => warn!(%error, auth, "XMPP login failed"),
            }
            let cause = if auth {
                Cause::AuthFailed
            } else if is_sasl_error(&e) {
                Cause::XmppSasl
            } else {
                Cause::XmppUnreachable
            };
            // Both passwords a channel-binding fallback sent count (the gate waits each out).
            let refusals = if auth { refusals.max(1) } else { 0 };
            return Input::ConnectFailed { cause, refusals };
        }
        // Wait for the stream to report the new session, then set it up. Events read
        // meanwhile are applied; a wait they ask for is handed to the machine.
        let deadline = Instant::now() + self.cfg.request_timeout;
        let mut up = false;
        let mut pending: Vec<String> = Vec::new();
        let mut optional: Vec<String> = Vec::new();
        // A refused subscription to one of the agent's own nodes means notifications would
        // be lost (e.g. a restarted server that has not recreated its nodes yet): the set-up
        // fails and is retried on the backoff rather than going steady deaf.
        let mut refused = 0usize;
        let mut wait = None;
        while Instant::now() < deadline {
            if up && pending.is_empty() {
                break;
            }
            let ev = tokio::select! {
                () = self.shutdown.cancelled() => return Input::Stop,
                () = tokio::time::sleep_until(deadline) => break,
                ev = self.link.next() => ev,
            };
            self.shared.beat();
            match ev {
                Some(LinkEvent::Up) => {
                    up = true;
                    self.link.send_presence().await;
                    let me = &params.jid;
                    for node in [
                        format!("/finesse/api/User/{}/Media", self.cfg.agent_id),
                        format!("/finesse/api/User/{}/Dialogs/Media", self.cfg.agent_id),
                        "/finesse/api/SystemInfo".to_owned(),
                    ] {
                        pending.push(self.link.subscribe(&pubsub, me, &node).await);
                    }
                    // The per-MRD Media nodes (Cisco's FAQ form; Finesse subscribes users to
                    // them itself): also subscribed, and a refusal is no failure.
                    for m in self.cfg.media.clone() {
                        let node =
                            format!("/finesse/api/User/{}/Media/{}", self.cfg.agent_id, m.id);
                        optional.push(self.link.subscribe(&pubsub, me, &node).await);
                    }
                }
                Some(LinkEvent::IqResult { id, ok }) => {
                    if pending.contains(&id) && !ok {
                        warn!(%id, "a pubsub subscription was refused");
                        refused += 1;
                    }
                    if optional.contains(&id) && !ok {
                        tracing::debug!(%id, "a per-MRD Media node refused the subscription");
                    }
                    pending.retain(|p| *p != id);
                    optional.retain(|p| *p != id);
                }
                Some(LinkEvent::Down { .. }) | None => break,
                Some(other) => {
                    if let Some(cause) = self.apply_during_setup(other) {
                        wait = Some(cause);
                    }
                }
            }
        }
        if !(up && pending.is_empty()) || refused > 0 {
            warn!(
                up,
                pending = pending.len(),
                refused,
                "XMPP session set-up incomplete"
            );
            self.link.drop_session();
            return failed(Cause::XmppSetup);
        }
        info!(jid = %params.jid, addr = %params.connector_addr(), "XMPP session up");
        self.memo.proven_at = Some(Instant::now());
        Input::Connected { pending: wait }
    }
}

impl LoginParams {
    fn connector_addr(&self) -> String {
        format!("{:?}", self.connector)
    }
}

/// What a failed XMPP login most likely means when the error itself does not say it: a
/// plaintext answer to a TLS handshake is a STARTTLS port configured as direct TLS, and a TLS
/// `unrecognized_name` alert is a server with no certificate for the domain asked for.
fn login_hint(error: &str, tls: TlsMode) -> Option<&'static str> {
    let not_tls = error.contains("InvalidContentType") || error.contains("corrupt message");
    if tls == TlsMode::Direct && not_tls {
        return Some(
            "the server did not answer with TLS: this looks like a STARTTLS port (Finesse: 5222); \
             set [xmpp] tls = \"starttls\", or use the direct-TLS port (Finesse: 5223)",
        );
    }
    error.contains("UnrecognisedName").then_some(
        "the server has no certificate for the XMPP domain asked for (TLS unrecognized_name): \
         check [xmpp] domain, or SystemInfo's xmppDomain",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plaintext_answer_to_direct_tls_is_explained_and_nothing_else_is() {
        let seen = "I/O error: received corrupt message of type InvalidContentType";
        let hint = login_hint(seen, TlsMode::Direct).unwrap();
        assert!(hint.contains("tls = \"starttls\""), "{hint}");
        assert_eq!(login_hint(seen, TlsMode::StartTls), None);
        assert_eq!(login_hint("Connection refused", TlsMode::Direct), None);
        let unknown = "I/O error: received fatal alert: UnrecognisedName";
        let hint = login_hint(unknown, TlsMode::StartTls).unwrap();
        assert!(
            hint.contains("no certificate for the XMPP domain"),
            "{hint}"
        );
    }
}

//! Choosing a node (SystemInfo, with failover only after `failover_after`) and bringing the
//! XMPP session up on it: login, presence, and the full-JID subscriptions; and the TLS client
//! configuration the XMPP connector uses (the configured CA, else the platform store).

use std::sync::Arc;

use tokio::time::Instant;
use tokio_xmpp::jid::Jid;
use tokio_xmpp::xmlstream::Timeouts;
use tracing::{info, warn};

use super::Supervisor;
use super::state::Phase;
use crate::finesse::model::SystemInfo;
use crate::finesse::rest::{RestError, error_chain};
use crate::xmpp::link::LinkEvent;
use crate::xmpp::session::{LoginParams, is_auth_error};
use crate::xmpp::{Connector, TlsMode};

impl Supervisor {
    /// SystemInfo on the current node first, then the others; the first in service wins. The
    /// others are only considered once the current node has been down for `failover_after`.
    pub(super) async fn choose_node(&mut self) -> Option<(usize, SystemInfo)> {
        let n = self.cfg.nodes.len();
        let start = self.node.unwrap_or(0);
        let mut cause = "rest_unreachable";
        for k in 0..n {
            let idx = (start + k) % n;
            if k > 0 && self.node.is_some() && !self.may_fail_over() {
                break;
            }
            let url = self.cfg.nodes[idx].clone();
            let result = tokio::select! {
                () = self.shutdown.cancelled() => return None,
                r = self.rest.system_info(&url) => r,
            };
            match result {
                Ok(info) if info.in_service() => {
                    if k == 0 {
                        self.down_since = None;
                    }
                    self.last_info = Some(info.clone());
                    return Some((idx, info));
                }
                Ok(info) => {
                    cause = "out_of_service";
                    info!(node = %url, status = %info.status, "node not in service");
                }
                Err(e) => {
                    cause = e.cause();
                    if matches!(e, RestError::Malformed(_)) {
                        self.shared.with(|v| v.counters.malformed += 1);
                    }
                    warn!(node = %url, error = %e, "SystemInfo failed");
                }
            }
        }
        if self.node.is_some() && self.down_since.is_none() {
            self.down_since = Some(Instant::now());
        }
        self.shared.set_link("rest", false, Some(cause));
        let phase = if self.shared.with(|v| v.counters.resyncs) == 0 {
            Phase::Starting
        } else {
            Phase::Recovering
        };
        self.set_phase(phase, Some(cause));
        None
    }

    /// True once the current node has been down for `failover_after`.
    pub(super) fn may_fail_over(&mut self) -> bool {
        let since = *self.down_since.get_or_insert_with(Instant::now);
        since.elapsed() >= self.cfg.recovery.failover_after
    }

    pub(super) fn login_params(
        &self,
        idx: usize,
        info: &SystemInfo,
    ) -> Result<LoginParams, String> {
        let url = &self.cfg.nodes[idx];
        let host = url.host_str().unwrap_or("localhost");
        let domain = self
            .cfg
            .xmpp
            .domain
            .clone()
            .unwrap_or_else(|| info.xmpp_domain.trim().to_owned());
        if domain.is_empty() {
            return Err("SystemInfo names no xmppDomain and the config sets none".into());
        }
        let node_info = if idx == 0 {
            info.primary_node.as_ref()
        } else {
            info.secondary_node.as_ref()
        };
        let from_info = node_info.and_then(|n| {
            let p = if self.cfg.xmpp.tls == TlsMode::Direct {
                &n.xmpp_secure_port
            } else {
                &n.xmpp_port
            };
            p.as_deref().and_then(|p| p.trim().parse::<u16>().ok())
        });
        let port = self
            .cfg
            .xmpp
            .port
            .or(from_info)
            .unwrap_or(match self.cfg.xmpp.tls {
                TlsMode::Direct => 5223,
                _ => 5222,
            });
        let addr = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
            .map_err(|e| format!("{host}:{port}: {e}"))?
            .next()
            .ok_or_else(|| format!("{host}:{port}: no address"))?;
        let jid: Jid = format!("{}@{domain}/{}", self.cfg.agent_id, self.cfg.xmpp.resource)
            .parse()
            .map_err(|e| format!("JID: {e}"))?;
        Ok(LoginParams {
            connector: Connector::new(addr, self.cfg.xmpp.tls, self.tls.clone())
                .with_round_trips(self.shared.metrics.xmpp_round_trips()),
            jid,
            password: self.cfg.password.expose().to_owned(),
            timeouts: Timeouts {
                read_timeout: self.cfg.xmpp.ping_interval,
                response_timeout: self.cfg.xmpp.ping_timeout,
            },
            disable_sm: true,
        })
    }

    /// Logs in, sends presence and subscribes. `Err(true)` = credentials rejected.
    pub(super) async fn connect_xmpp(&mut self, idx: usize, info: &SystemInfo) -> Result<(), bool> {
        let params = match self.login_params(idx, info) {
            Ok(p) => p,
            Err(e) => {
                warn!(error = %e, "cannot build the XMPP login");
                self.set_phase(Phase::Recovering, Some("xmpp_config"));
                return Err(false);
            }
        };
        // A server that accepts TCP and then says nothing must not hold us forever.
        let limit = self.cfg.request_timeout + self.cfg.xmpp.ping_timeout;
        let connected = tokio::select! {
            () = self.shutdown.cancelled() => return Err(false),
            r = tokio::time::timeout(limit, self.link.connect(&params)) => match r {
                Ok(r) => r,
                Err(_) => {
                    warn!(timeout_ms = limit.as_millis() as u64, "XMPP login timed out");
                    self.set_phase(Phase::Recovering, Some("xmpp_timeout"));
                    return Err(false);
                }
            },
        };
        if let Err(e) = connected {
            let auth = is_auth_error(&e);
            let error = error_chain(&e);
            match login_hint(&error, self.cfg.xmpp.tls) {
                Some(hint) => {
                    warn!(%error, auth, addr = %params.connector_addr(), hint, "XMPP login failed")
                }
                None => warn!(%error, auth, "XMPP login failed"),
            }
            if !auth {
                self.set_phase(Phase::Recovering, Some("xmpp_unreachable"));
            }
            return Err(auth);
        }
        // Wait for the stream to report the new session, then set it up.
        let deadline = Instant::now() + self.cfg.request_timeout;
        let mut up = false;
        let mut pending: Vec<String> = Vec::new();
        while Instant::now() < deadline {
            if up && pending.is_empty() {
                break;
            }
            let ev = tokio::select! {
                () = self.shutdown.cancelled() => return Err(false),
                () = tokio::time::sleep_until(deadline) => break,
                ev = self.link.next() => ev,
            };
            match ev {
                Some(LinkEvent::Up) => {
                    up = true;
                    self.shared.set_link("xmpp", true, None);
                    self.link.send_presence().await;
                    let pubsub: Jid = match format!("pubsub.{}", params.jid.domain()).parse() {
                        Ok(j) => j,
                        Err(_) => return Err(false),
                    };
                    let me = &params.jid;
                    for node in [
                        format!("/finesse/api/User/{}/Media", self.cfg.agent_id),
                        format!("/finesse/api/User/{}/Dialogs/Media", self.cfg.agent_id),
                        "/finesse/api/SystemInfo".to_owned(),
                    ] {
                        pending.push(self.link.subscribe(&pubsub, me, &node).await);
                    }
                }
                Some(LinkEvent::IqResult { id, ok }) => {
                    if pending.contains(&id) && !ok {
                        warn!(%id, "a pubsub subscription was refused");
                    }
                    pending.retain(|p| *p != id);
                }
                Some(LinkEvent::Down) | None => break,
                Some(other) => self.link_requeue(other),
            }
        }
        if !(up && pending.is_empty()) {
            warn!(
                up,
                pending = pending.len(),
                "XMPP session set-up incomplete"
            );
            self.link.drop_session();
            self.shared.set_link("xmpp", false, Some("xmpp_setup"));
            self.set_phase(Phase::Recovering, Some("xmpp_setup"));
            return Err(false);
        }
        info!(jid = %params.jid, addr = %params.connector_addr(), "XMPP session up");
        Ok(())
    }
}

impl LoginParams {
    fn connector_addr(&self) -> String {
        format!("{:?}", self.connector)
    }
}

/// What a failed XMPP login most likely means when the error itself does not say it: a
/// plaintext answer to a TLS handshake is a STARTTLS port configured as direct TLS.
fn login_hint(error: &str, tls: TlsMode) -> Option<&'static str> {
    let not_tls = error.contains("InvalidContentType") || error.contains("corrupt message");
    (tls == TlsMode::Direct && not_tls).then_some(
        "the server did not answer with TLS: this looks like a STARTTLS port (Finesse: 5222); \
         set [xmpp] tls = \"starttls\", or use the direct-TLS port (Finesse: 5223)",
    )
}

/// The XMPP TLS client configuration: the configured CA, else the platform store.
pub(super) fn tls_config(
    ca_pem: Option<&[u8]>,
) -> Result<Arc<tokio_xmpp::rustls::ClientConfig>, String> {
    match ca_pem {
        Some(pem) => Connector::client_config_from_pem(pem).map_err(|e| format!("ca_file: {e}")),
        None => {
            let mut roots = tokio_xmpp::rustls::RootCertStore::empty();
            // No extra CA: trust the platform store, as tokio-xmpp itself would.
            for cert in rustls_native_certs_fallback() {
                let _ = roots.add(cert);
            }
            let provider = Arc::new(tokio_xmpp::rustls::crypto::aws_lc_rs::default_provider());
            let cfg = tokio_xmpp::rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Ok(Arc::new(cfg))
        }
    }
}

fn rustls_native_certs_fallback() -> Vec<tokio_xmpp::rustls::pki_types::CertificateDer<'static>> {
    let path = std::path::Path::new("/etc/ssl/certs/ca-certificates.crt");
    let Ok(pem) = std::fs::read(path) else {
        return Vec::new();
    };
    use tokio_xmpp::rustls::pki_types::pem::PemObject;
    tokio_xmpp::rustls::pki_types::CertificateDer::pem_slice_iter(&pem)
        .filter_map(Result::ok)
        .collect()
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
    }
}

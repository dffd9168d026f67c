//! Delivery of one notification to one channel: `log` (overseer's own log), `webhook` (POST
//! JSON, optional HMAC-SHA256 signature, Slack-compatible `text`), `email` (SMTP via lettre,
//! STARTTLS or TLS, optional auth). Every delivery carries the notification's id so the
//! receiver can drop the duplicate an at-least-once retry may cause: `Idempotency-Key` for a
//! webhook, the `Message-ID` for an email.
//!
//! Outcomes are classified here: 2xx sent; 408, 429, 5xx, timeouts and connection errors are
//! transient (retried with backoff); any other 4xx, a redirect left unresolved, or a permanent
//! SMTP reply is permanent. Error texts never contain a webhook's URL path or a secret.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message as Email, Tokio1Executor};
use serde_json::{json, Value};
use sha2::Sha256;
use uuid::Uuid;

use super::settings::{ChannelConfig, ChannelType, SmtpTls};
use super::Routing;

/// A notification on its way out (a claimed outbox row).
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub id: Uuid,
    pub event: String,
    pub severity: String,
    pub subject: String,
    pub body: String,
    pub data: Value,
    pub channel: String,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// Retrying cannot help (a 4xx, a rejected recipient, an unknown channel).
    #[error("{0}")]
    Permanent(String),
    /// Worth another attempt later.
    #[error("{0}")]
    Transient(String),
}

#[derive(Debug, thiserror::Error)]
pub enum ChannelSetupError {
    #[error("notify channel `{channel}`: {message}")]
    Invalid { channel: String, message: String },
}

/// A URL without its path and query: `https://hooks.slack.com/…` (tokens live in the path).
pub fn redact_url(u: &str) -> String {
    match url::Url::parse(u) {
        Ok(url) => {
            let host = url.host_str().unwrap_or("");
            let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
            let tail = if url.path() == "/" && url.query().is_none() {
                "/"
            } else {
                "/…"
            };
            format!("{}://{host}{port}{tail}", url.scheme())
        }
        Err(_) => "<invalid URL>".to_string(),
    }
}

/// Sends notifications; built once per notifier incarnation (SMTP transports are made here).
pub struct Deliverer {
    routing: Arc<Routing>,
    http: reqwest::Client,
    smtp: HashMap<String, AsyncSmtpTransport<Tokio1Executor>>,
}

impl Deliverer {
    pub fn new(routing: Arc<Routing>) -> Result<Self, ChannelSetupError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("overseer/", env!("CARGO_PKG_VERSION")))
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|e| ChannelSetupError::Invalid {
                channel: "*".into(),
                message: e.to_string(),
            })?;
        let mut smtp = HashMap::new();
        for ch in routing.channels() {
            if ch.kind == ChannelType::Email {
                smtp.insert(ch.name.clone(), smtp_transport(ch)?);
            }
        }
        Ok(Self {
            routing,
            http,
            smtp,
        })
    }

    pub async fn deliver(&self, n: &Outgoing) -> Result<(), DeliveryError> {
        let Some(ch) = self.routing.channel(&n.channel) else {
            return Err(DeliveryError::Permanent(format!(
                "channel `{}` is not configured on this node",
                n.channel
            )));
        };
        match ch.kind {
            ChannelType::Log => {
                tracing::info!(
                    target: "overseer::notify",
                    notification_id = %n.id,
                    channel = %n.channel,
                    event = %n.event,
                    severity = %n.severity,
                    body = %n.body,
                    "{}",
                    n.subject
                );
                Ok(())
            }
            ChannelType::Webhook => self.webhook(ch, n).await,
            ChannelType::Email => self.email(ch, n).await,
        }
    }

    async fn webhook(&self, ch: &ChannelConfig, n: &Outgoing) -> Result<(), DeliveryError> {
        let url = ch
            .url
            .as_deref()
            .ok_or_else(|| DeliveryError::Permanent("webhook channel without url".into()))?;
        let body = webhook_body(n);
        let mut req = self
            .http
            .post(url)
            .timeout(ch.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", n.id.to_string())
            .header("X-Overseer-Event", n.event.as_str())
            .header("X-Overseer-Attempt", n.attempts.to_string());
        if let Some(secret) = &ch.secret {
            req = req.header("X-Overseer-Signature", signature(secret, &body));
        }
        for (k, v) in &ch.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let resp = req.body(body).send().await.map_err(|e| {
            let e = e.without_url();
            let what = if e.is_timeout() {
                format!("timed out after {} ms", ch.timeout.as_millis())
            } else if e.is_connect() {
                format!("cannot connect to {}", redact_url(url))
            } else {
                format!("request to {} failed: {e}", redact_url(url))
            };
            DeliveryError::Transient(what)
        })?;
        classify_status(resp.status().as_u16())
    }

    async fn email(&self, ch: &ChannelConfig, n: &Outgoing) -> Result<(), DeliveryError> {
        let transport = self.smtp.get(&ch.name).ok_or_else(|| {
            DeliveryError::Permanent(format!("email channel `{}` has no transport", ch.name))
        })?;
        let mut b = Email::builder()
            .from(parse_mailbox(ch.from.as_deref().unwrap_or(""))?)
            .subject(n.subject.as_str())
            .message_id(Some(format!("<{}@overseer>", n.id)))
            .header(ContentType::TEXT_PLAIN);
        for to in &ch.to {
            b = b.to(parse_mailbox(to)?);
        }
        let mail = b
            .body(format!(
                "{}\n\n-- \noverseer · {} · {}\n",
                n.body, n.event, n.severity
            ))
            .map_err(|e| DeliveryError::Permanent(format!("cannot build the email: {e}")))?;
        match transport.send(mail).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => {
                Err(DeliveryError::Permanent(format!("SMTP refused: {e}")))
            }
            Err(e) => Err(DeliveryError::Transient(format!("SMTP: {e}"))),
        }
    }
}

fn parse_mailbox(s: &str) -> Result<lettre::message::Mailbox, DeliveryError> {
    s.parse()
        .map_err(|e| DeliveryError::Permanent(format!("bad address `{s}`: {e}")))
}

fn smtp_transport(
    ch: &ChannelConfig,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, ChannelSetupError> {
    let bad = |message: String| ChannelSetupError::Invalid {
        channel: ch.name.clone(),
        message,
    };
    let host = ch.host.as_deref().unwrap_or("localhost");
    let mut b = match ch.tls {
        SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host).port(25),
        SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
            .map_err(|e| bad(e.to_string()))?,
        SmtpTls::Tls => {
            AsyncSmtpTransport::<Tokio1Executor>::relay(host).map_err(|e| bad(e.to_string()))?
        }
    };
    if let Some(port) = ch.port {
        b = b.port(port);
    }
    if let Some(file) = &ch.ca_file {
        use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
        let pem = std::fs::read(file).map_err(|e| bad(format!("ca_file {file}: {e}")))?;
        let cert = Certificate::from_pem(&pem).map_err(|e| bad(format!("ca_file {file}: {e}")))?;
        let params = TlsParameters::builder(host.to_string())
            .add_root_certificate(cert)
            .build_rustls()
            .map_err(|e| bad(e.to_string()))?;
        b = match ch.tls {
            SmtpTls::Starttls => b.tls(Tls::Required(params)),
            SmtpTls::Tls => b.tls(Tls::Wrapper(params)),
            SmtpTls::None => b,
        };
    }
    b = b.timeout(Some(ch.timeout));
    if let (Some(u), Some(p)) = (&ch.username, &ch.password) {
        b = b.credentials(Credentials::new(u.clone(), p.clone()));
    }
    Ok(b.build())
}

/// The JSON a webhook receives. `text` makes it a valid Slack (and Mattermost) message.
pub fn webhook_body(n: &Outgoing) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "id": n.id,
        "event": n.event,
        "severity": n.severity,
        "subject": n.subject,
        "body": n.body,
        "text": format!("*{}*\n{}", n.subject, n.body),
        "data": n.data,
        "channel": n.channel,
        "created_at": n.created_at,
    }))
    .unwrap_or_default()
}

/// `sha256=<hex HMAC-SHA256 of the exact body bytes>`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length; the error case cannot happen.
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

pub fn classify_status(status: u16) -> Result<(), DeliveryError> {
    match status {
        200..=299 => Ok(()),
        408 | 429 | 500..=599 => Err(DeliveryError::Transient(format!("HTTP {status}"))),
        _ => Err(DeliveryError::Permanent(format!("HTTP {status}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(classify_status(204), Ok(()));
        assert!(matches!(
            classify_status(408),
            Err(DeliveryError::Transient(_))
        ));
        assert!(matches!(
            classify_status(429),
            Err(DeliveryError::Transient(_))
        ));
        assert!(matches!(
            classify_status(503),
            Err(DeliveryError::Transient(_))
        ));
        assert!(matches!(
            classify_status(400),
            Err(DeliveryError::Permanent(_))
        ));
        assert!(matches!(
            classify_status(410),
            Err(DeliveryError::Permanent(_))
        ));
        assert!(matches!(
            classify_status(302),
            Err(DeliveryError::Permanent(_))
        ));
    }

    #[test]
    fn urls_lose_their_path() {
        assert_eq!(
            redact_url("https://hooks.slack.com/services/T0/B0/secret"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(
            redact_url("http://127.0.0.1:9000/"),
            "http://127.0.0.1:9000/"
        );
        assert_eq!(redact_url("http://h/x?token=1"), "http://h/…");
    }

    #[test]
    fn hmac_matches_a_known_vector() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}

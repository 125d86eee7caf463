//! TLS failures in words a PLC engineer can act on: which certificate problem (with its
//! dates), which alert the peer sent (by its RFC 8446 name), what was wrong with a record.

use rustls::pki_types::UnixTime;
use rustls::{AlertDescription, CertificateError};

use crate::error::Error;

/// What was happening when rustls failed, for the words around its error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// The handshake.
    Handshake,
    /// Application data (after the handshake).
    Data,
}

/// The error for a rustls failure. `asked_for_identity`: the server asked us for a client
/// certificate and we have none, which explains most refusals that follow.
pub fn tls_failure(e: &rustls::Error, stage: Stage, asked_for_identity: bool) -> Error {
    let mut text = describe(e);
    if asked_for_identity && matches!(e, rustls::Error::AlertReceived(_)) {
        text.push_str(
            " (the server asked for a client certificate and none is set: set the identity files)",
        );
    }
    if stage == Stage::Handshake && !text.starts_with("handshake") {
        text = format!("handshake failed: {text}");
    }
    Error::Tls(text)
}

/// The words for one rustls error.
pub fn describe(e: &rustls::Error) -> String {
    use rustls::Error as E;
    match e {
        E::AlertReceived(alert) => format!("the peer sent the alert {}", alert_name(*alert)),
        E::InvalidCertificate(c) => format!("the peer's certificate was rejected: {}", certificate(c)),
        E::NoCertificatesPresented => {
            "the client presented no certificate, and this server requires one (a CA file or a pin is set)".into()
        }
        E::General(text) => text.clone(),
        E::DecryptError => {
            "a record failed to decrypt (bad authentication tag): the data was changed on the way or the peer's keys differ".into()
        }
        E::PeerSentOversizedRecord => "the peer sent a record above the TLS maximum".into(),
        E::InvalidMessage(m) => format!("a malformed TLS message from the peer ({m:?})"),
        E::PeerMisbehaved(m) => format!("the peer broke the TLS protocol ({m:?})"),
        E::PeerIncompatible(m) => format!(
            "the peer offers nothing in common with us ({m:?}): check the TLS versions and ciphers it allows"
        ),
        E::InappropriateMessage { expect_types, got_type } => format!(
            "an unexpected TLS message from the peer: a {got_type:?} record where {expect_types:?} was expected"
        ),
        E::InappropriateHandshakeMessage { expect_types, got_type } => format!(
            "an unexpected TLS handshake message from the peer: {got_type:?} where {expect_types:?} was expected"
        ),
        other => other.to_string(),
    }
}

/// A certificate problem in words, with the dates when rustls gives them.
pub fn certificate(c: &CertificateError) -> String {
    use CertificateError as C;
    match c {
        C::Expired => "it has expired".into(),
        C::ExpiredContext { time, not_after } => format!(
            "it expired on {} (notAfter; now is {})",
            date(*not_after),
            date(*time)
        ),
        C::NotValidYet => "it is not valid yet".into(),
        C::NotValidYetContext { time, not_before } => format!(
            "it is not valid before {} (notBefore; now is {}): check the clocks",
            date(*not_before),
            date(*time)
        ),
        C::UnknownIssuer => {
            "unknown issuer: it is not signed by a CA in the CA file (or its chain is incomplete)"
                .into()
        }
        C::BadSignature => "bad signature: its signature does not verify".into(),
        C::NotValidForName => "wrong name: it is not valid for the server name set".into(),
        C::NotValidForNameContext {
            expected,
            presented,
        } => format!(
            "wrong name: it is not valid for {:?}; it names {}",
            expected.to_str(),
            if presented.is_empty() {
                "nothing".to_owned()
            } else {
                presented
                    .iter()
                    .map(|p| bare_name(p))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        ),
        C::BadEncoding => "it is not a well-formed certificate".into(),
        C::Revoked => "it is revoked".into(),
        C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
            "it is not meant for this use (its extended key usage)".into()
        }
        C::Other(other) => other.to_string(),
        other => format!("{other:?}"),
    }
}

/// A presented name without its kind: `DnsName("plc.example")` is `plc.example`.
fn bare_name(presented: &str) -> &str {
    presented
        .split_once("(\"")
        .and_then(|(_, rest)| rest.strip_suffix("\")"))
        .unwrap_or(presented)
}

/// An alert's name as RFC 8446 writes it ("handshake_failure"), or its number when unknown.
pub fn alert_name(alert: AlertDescription) -> String {
    if let AlertDescription::Unknown(n) = alert {
        return format!("{n} (unknown)");
    }
    // The Debug name in CamelCase, acronyms in capitals: "UnknownCA", "UnknownPSKIdentity".
    let camel: Vec<char> = format!("{alert:?}").chars().collect();
    let mut name = String::with_capacity(camel.len() + 4);
    for (i, &ch) in camel.iter().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            let after_lower = camel[i - 1].is_ascii_lowercase();
            let ends_acronym = camel[i - 1].is_ascii_uppercase()
                && camel.get(i + 1).is_some_and(|c| c.is_ascii_lowercase());
            if after_lower || ends_acronym {
                name.push('_');
            }
        }
        name.push(ch.to_ascii_lowercase());
    }
    name
}

/// A UTC date and time, "2026-12-05 22:27:37 UTC".
fn date(t: UnixTime) -> String {
    let secs = t.as_secs();
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a (year, month, day) of the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn alerts_have_their_rfc_names() {
        assert_eq!(
            alert_name(AlertDescription::HandshakeFailure),
            "handshake_failure"
        );
        assert_eq!(alert_name(AlertDescription::CloseNotify), "close_notify");
        assert_eq!(
            alert_name(AlertDescription::CertificateRequired),
            "certificate_required"
        );
        assert_eq!(alert_name(AlertDescription::UnknownCA), "unknown_ca");
        assert_eq!(
            alert_name(AlertDescription::UnknownPSKIdentity),
            "unknown_psk_identity"
        );
        assert_eq!(
            alert_name(AlertDescription::BadCertificateStatusResponse),
            "bad_certificate_status_response"
        );
        assert_eq!(alert_name(AlertDescription::Unknown(200)), "200 (unknown)");
    }

    #[test]
    fn dates_are_utc_calendar_dates() {
        assert_eq!(
            date(UnixTime::since_unix_epoch(Duration::ZERO)),
            "1970-01-01 00:00:00 UTC"
        );
        assert_eq!(
            date(UnixTime::since_unix_epoch(Duration::from_secs(
                1_764_974_857
            ))),
            "2025-12-05 22:47:37 UTC"
        );
        assert_eq!(
            date(UnixTime::since_unix_epoch(Duration::from_secs(951_782_400))),
            "2000-02-29 00:00:00 UTC"
        );
    }
}

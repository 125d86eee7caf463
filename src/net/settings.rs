//! Settings, validated in one place: what a connection sends in its CR ([`Config`]), what a
//! listener grants ([`ListenerConfig`]), and the limits and timings both kinds of connection
//! share ([`TransferSettings`]).
//!
//! Every field is private and every setter checks its value, so a configuration that exists
//! is one the library can use: an invalid value is refused with [`Error::Invalid`] and leaves
//! the settings as they were.

use std::time::Duration;

use super::listener::CrFilter;
use super::socket;
use crate::error::{Error, Result};
use crate::proto::handshake::{self, ConnectRequest};
use crate::proto::segment::Limits;
use crate::proto::tsap::{self, S7Route, Tsap};

/// Default maximum message size (send and receive), in bytes.
pub const DEFAULT_MAX_MESSAGE: usize = 65_536;
/// Largest settable maximum message size, in bytes.
pub const MAX_MAX_MESSAGE: usize = 16 << 20;
/// Smallest settable maximum message size, in bytes.
pub const MIN_MAX_MESSAGE: usize = 128;
/// Default limit on bytes held by non-blocking sends beyond the first queued message.
pub const DEFAULT_MAX_QUEUED: usize = 256 << 10;
/// Largest settable send-queue limit, in bytes.
pub const MAX_MAX_QUEUED: usize = 256 << 20;
/// Default limit on DTs per received message.
pub const DEFAULT_MAX_FRAGMENTS: u32 = 4096;
/// Largest settable limit on DTs per received message.
pub const MAX_MAX_FRAGMENTS: u32 = 1 << 20;
/// Default time each send may take.
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest keep-alive time or probe count (the largest value every system accepts).
pub const MAX_KEEPALIVE: u32 = 32_767;

/// Longest settable [`UserTimeout::After`]: 24 days, within what Linux (an int of
/// milliseconds) and Windows can hold.
pub const MAX_USER_TIMEOUT: Duration = Duration::from_secs(24 * 24 * 3600);

/// Every TPDU size a CR may offer, in bytes.
pub const TPDU_SIZES: [u32; 7] = [128, 256, 512, 1024, 2048, 4096, 8192];

/// TCP keep-alive: after `idle` without traffic the system sends a probe every `interval`,
/// and `count` unanswered probes end the connection. Default: on, 60 s, 10 s, 3.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keepalive {
    /// `None`: off.
    on: Option<(u32, u32, u32)>,
}

impl Keepalive {
    /// Keep-alive off: a silent peer is never noticed while the connection is idle.
    pub const OFF: Keepalive = Keepalive { on: None };

    /// Keep-alive on, with times in whole seconds and a probe count, each 1 to
    /// [`MAX_KEEPALIVE`]. Windows ignores `count` (it always sends 10 probes).
    pub fn new(idle_s: u32, interval_s: u32, count: u32) -> Result<Keepalive> {
        if [idle_s, interval_s, count]
            .iter()
            .any(|&v| v == 0 || v > MAX_KEEPALIVE)
        {
            return Err(Error::Invalid(format!(
                "keep-alive idle, interval and count must be 1..{MAX_KEEPALIVE}"
            )));
        }
        Ok(Keepalive {
            on: Some((idle_s, interval_s, count)),
        })
    }

    /// Whether keep-alive is on.
    pub fn enabled(&self) -> bool {
        self.on.is_some()
    }

    /// Seconds of silence before the first probe (0 when off).
    pub fn idle_s(&self) -> u32 {
        self.on.map_or(0, |k| k.0)
    }

    /// Seconds between probes (0 when off).
    pub fn interval_s(&self) -> u32 {
        self.on.map_or(0, |k| k.1)
    }

    /// Unanswered probes that end the connection (0 when off).
    pub fn count(&self) -> u32 {
        self.on.map_or(0, |k| k.2)
    }
}

impl Default for Keepalive {
    fn default() -> Self {
        Keepalive {
            on: Some((60, 10, 3)),
        }
    }
}

/// How long the system lets sent data go unacknowledged before it gives up on the connection
/// (`TCP_USER_TIMEOUT` on Linux, `TCP_MAXRT` on Windows). Keep-alive finds a silent peer only
/// while nothing is in flight; this bound finds one that vanished under a pending request,
/// which the system would otherwise retransmit to for about 15 minutes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum UserTimeout {
    /// The keep-alive settings' idle + interval x count while keep-alive is on, so that one
    /// setting governs both the idle and the busy case; the system's default when it is off.
    #[default]
    FromKeepalive,
    /// The system's default.
    System,
    /// This long (rounded up to milliseconds on Linux, to whole seconds on Windows).
    After(Duration),
}

/// Limits and timings of a connection once it is up; the same for one that connects and for
/// the connections a listener accepts.
#[derive(Clone, Debug)]
pub struct TransferSettings {
    max_message: usize,
    max_fragments: u32,
    max_queued: usize,
    send_timeout: Duration,
    keepalive: Keepalive,
    user_timeout: UserTimeout,
}

impl Default for TransferSettings {
    fn default() -> Self {
        TransferSettings {
            max_message: DEFAULT_MAX_MESSAGE,
            max_fragments: DEFAULT_MAX_FRAGMENTS,
            max_queued: DEFAULT_MAX_QUEUED,
            send_timeout: DEFAULT_SEND_TIMEOUT,
            keepalive: Keepalive::default(),
            user_timeout: UserTimeout::default(),
        }
    }
}

impl TransferSettings {
    /// Largest message sent or received, in bytes.
    pub fn max_message(&self) -> usize {
        self.max_message
    }

    /// Sets the largest message sent or received, [`MIN_MAX_MESSAGE`] to [`MAX_MAX_MESSAGE`]
    /// bytes (default [`DEFAULT_MAX_MESSAGE`]). A larger message from the peer closes the
    /// connection with [`Error::TooLarge`].
    pub fn set_max_message(&mut self, bytes: usize) -> Result<()> {
        if !(MIN_MAX_MESSAGE..=MAX_MAX_MESSAGE).contains(&bytes) {
            return Err(Error::Invalid(format!(
                "maximum message {bytes} is outside {MIN_MAX_MESSAGE}..{MAX_MAX_MESSAGE}"
            )));
        }
        self.max_message = bytes;
        Ok(())
    }

    /// Most DTs one received message may have.
    pub fn max_fragments(&self) -> u32 {
        self.max_fragments
    }

    /// Sets the most DTs one received message may have, 1 to [`MAX_MAX_FRAGMENTS`] (default
    /// [`DEFAULT_MAX_FRAGMENTS`]). More closes the connection with [`Error::TooLarge`].
    pub fn set_max_fragments(&mut self, fragments: u32) -> Result<()> {
        if !(1..=MAX_MAX_FRAGMENTS).contains(&fragments) {
            return Err(Error::Invalid(format!(
                "fragment limit {fragments} is outside 1..{MAX_MAX_FRAGMENTS}"
            )));
        }
        self.max_fragments = fragments;
        Ok(())
    }

    /// Most bytes non-blocking sends may hold queued (beyond one message).
    pub fn max_queued(&self) -> usize {
        self.max_queued
    }

    /// Sets how many bytes non-blocking sends may hold queued, 0 to [`MAX_MAX_QUEUED`]
    /// (default [`DEFAULT_MAX_QUEUED`]). A message is always accepted when nothing is queued,
    /// so the bound is this limit plus one message.
    pub fn set_max_queued(&mut self, bytes: usize) -> Result<()> {
        if bytes > MAX_MAX_QUEUED {
            return Err(Error::Invalid(format!(
                "send-queue limit {bytes} is above {MAX_MAX_QUEUED}"
            )));
        }
        self.max_queued = bytes;
        Ok(())
    }

    /// Time each send may take.
    pub fn send_timeout(&self) -> Duration {
        self.send_timeout
    }

    /// Sets the time each send may take (default [`DEFAULT_SEND_TIMEOUT`]). Zero means "never
    /// wait": a send the socket cannot take at once fails with [`Error::WouldBlock`].
    pub fn set_send_timeout(&mut self, timeout: Duration) {
        self.send_timeout = timeout;
    }

    /// TCP keep-alive.
    pub fn keepalive(&self) -> Keepalive {
        self.keepalive
    }

    /// Sets TCP keep-alive ([`Keepalive::new`] has already checked the values).
    pub fn set_keepalive(&mut self, keepalive: Keepalive) {
        self.keepalive = keepalive;
    }

    /// The bound on unacknowledged data.
    pub fn user_timeout(&self) -> UserTimeout {
        self.user_timeout
    }

    /// Sets the bound on unacknowledged data (default [`UserTimeout::FromKeepalive`]).
    /// `After` takes 1 ms to 24 days (what every system can hold).
    pub fn set_user_timeout(&mut self, timeout: UserTimeout) -> Result<()> {
        if let UserTimeout::After(t) = timeout {
            if t < Duration::from_millis(1) || t > MAX_USER_TIMEOUT {
                return Err(Error::Invalid(format!(
                    "user timeout {} ms is outside 1..{} (0 is the system's default)",
                    t.as_millis(),
                    MAX_USER_TIMEOUT.as_millis()
                )));
            }
        }
        self.user_timeout = timeout;
        Ok(())
    }

    /// The bound in force on a socket: `None` for the system's default.
    pub(crate) fn effective_user_timeout(&self) -> Option<Duration> {
        match self.user_timeout {
            UserTimeout::After(t) => Some(t),
            UserTimeout::System => None,
            UserTimeout::FromKeepalive => self.keepalive.enabled().then(|| {
                let k = self.keepalive;
                Duration::from_secs(
                    u64::from(k.idle_s()) + u64::from(k.interval_s()) * u64::from(k.count()),
                )
            }),
        }
    }

    /// The receive limits the protocol core enforces.
    pub(crate) fn limits(&self) -> Limits {
        Limits {
            max_message: self.max_message,
            max_fragments: self.max_fragments,
        }
    }
}

/// Everything a connection needs before it connects: where to, what its CR says, and its
/// [`TransferSettings`]. Defaults match python-snap7's ISOTCPConnection: local TSAP 0x0100,
/// remote TSAP 0x0102 (rack 0, slot 2), TPDU size 1024.
///
/// ```
/// use isotcp::net::Config;
/// use isotcp::proto::tsap::Tsap;
///
/// let mut config = Config::new("plc.example", 102)?;
/// config.set_tsaps(Tsap::from_u16(0x0100), Tsap::from_u16(0x0301))?;
/// config.set_tpdu_size(2048)?;
/// assert!(config.set_tpdu_size(1000).is_err());
/// assert_eq!(config.tpdu_size(), 2048);
/// # Ok::<(), isotcp::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Config {
    host: String,
    port: u16,
    calling: Tsap,
    called: Tsap,
    tpdu_size: u32,
    extra_params: Vec<(u8, Vec<u8>)>,
    attempt_delay: Duration,
    transfer: TransferSettings,
}

/// Longest settable delay between connection attempts.
pub const MAX_ATTEMPT_DELAY: Duration = Duration::from_secs(10);

impl Config {
    /// Settings for `host` (a name, an IPv4 literal, or an IPv6 literal with or without
    /// brackets) and TCP `port` (102 for S7). Checks the host's form; no network I/O.
    pub fn new(host: &str, port: u16) -> Result<Config> {
        socket::validate_host(host)?;
        Ok(Config {
            host: host.to_owned(),
            port,
            calling: Tsap::from_u16(0x0100),
            called: Tsap::from_u16(0x0102),
            tpdu_size: 1024,
            extra_params: Vec::new(),
            attempt_delay: super::socket::DEFAULT_ATTEMPT_DELAY,
            transfer: TransferSettings::default(),
        })
    }

    /// The settings of a connection a listener accepted: its peer, the TSAPs the CR had (empty
    /// when absent) and the size granted. Never sent as a CR.
    pub(crate) fn accepted(
        peer: std::net::SocketAddr,
        calling: Option<Tsap>,
        called: Option<Tsap>,
        tpdu_size: u32,
        transfer: TransferSettings,
    ) -> Config {
        Config {
            host: peer.ip().to_string(),
            port: peer.port(),
            calling: calling.unwrap_or_else(|| Tsap::from_wire(&[])),
            called: called.unwrap_or_else(|| Tsap::from_wire(&[])),
            tpdu_size,
            extra_params: Vec::new(),
            attempt_delay: super::socket::DEFAULT_ATTEMPT_DELAY,
            transfer,
        }
    }

    /// The host to connect to.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The TCP port to connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The calling (local, C1) TSAP.
    pub fn calling(&self) -> &Tsap {
        &self.calling
    }

    /// The called (remote, C2) TSAP.
    pub fn called(&self) -> &Tsap {
        &self.called
    }

    /// The TPDU size the CR offers, in bytes.
    pub fn tpdu_size(&self) -> u32 {
        self.tpdu_size
    }

    /// Parameters the CR carries after C0 (python-snap7's routing), as code and value.
    pub fn extra_params(&self) -> &[(u8, Vec<u8>)] {
        &self.extra_params
    }

    /// The limits and timings of the connection once up.
    pub fn transfer(&self) -> &TransferSettings {
        &self.transfer
    }

    /// Delay between the starts of TCP connects to successive addresses of the host.
    pub fn attempt_delay(&self) -> Duration {
        self.attempt_delay
    }

    /// Sets the delay between the starts of TCP connects to successive addresses of a host
    /// that resolves to several (IPv6 and IPv4, the two CPUs of a redundant pair), 0 to
    /// [`MAX_ATTEMPT_DELAY`] (default 250 ms, RFC 8305's): an attempt not complete by then is
    /// kept running while the next starts, and the first to complete TCP and the CC wins.
    pub fn set_attempt_delay(&mut self, delay: Duration) -> Result<()> {
        if delay > MAX_ATTEMPT_DELAY {
            return Err(Error::Invalid(format!(
                "connection attempt delay {} ms is above {}",
                delay.as_millis(),
                MAX_ATTEMPT_DELAY.as_millis()
            )));
        }
        self.attempt_delay = delay;
        Ok(())
    }

    /// The limits and timings, to change them (each setter checks its value).
    pub fn transfer_mut(&mut self) -> &mut TransferSettings {
        &mut self.transfer
    }

    /// Sets both TSAPs. Each must be 1 to 255 bytes (what a parameter can hold; S7 uses 2,
    /// S7CommPlus up to 32, S7 routing 28 and more), and the CR they make at most 128 bytes.
    pub fn set_tsaps(&mut self, calling: Tsap, called: Tsap) -> Result<()> {
        for (t, which) in [(&calling, "local"), (&called, "remote")] {
            if t.as_bytes().is_empty() || t.as_bytes().len() > 255 {
                return Err(Error::Invalid(format!(
                    "{which} TSAP of {} bytes is outside 1..255",
                    t.as_bytes().len()
                )));
            }
        }
        self.change(|c| {
            c.calling = calling;
            c.called = called;
        })
    }

    /// Sets the TPDU size the CR offers: one of [`TPDU_SIZES`] (default 1024). The peer's CC
    /// may lower it.
    pub fn set_tpdu_size(&mut self, size: u32) -> Result<()> {
        if handshake::tpdu_code_for(size).is_none() {
            return Err(Error::Invalid(format!(
                "TPDU size {size} is not one of 128, 256, 512, 1024, 2048, 4096, 8192"
            )));
        }
        self.change(|c| c.tpdu_size = size)
    }

    /// Routing in python-snap7 3.x's form: the CR gets `C6 02 <subnet_id>` and
    /// `C7 02 01 <rack << 5 | slot>` after C0; the TSAPs stay as set. Rack 0..7, slot 0..31.
    pub fn set_snap7_routing(&mut self, subnet_id: u16, rack: u8, slot: u8) -> Result<()> {
        let params = tsap::snap7_routing_params(subnet_id, rack, slot)
            .map_err(|e| Error::Invalid(e.to_string()))?;
        self.change(|c| c.extra_params = params)
    }

    /// S7 routing through a Siemens gateway: both TSAPs become the route's extended TSAPs and
    /// any extra CR parameters are dropped.
    pub fn set_s7_routing(&mut self, route: &S7Route) -> Result<()> {
        if !(1..=0x10).contains(&route.conn_type) {
            return Err(Error::Invalid(format!(
                "connection type 0x{:02X} is outside 1..0x10 (1 PG, 2 OP, 3..0x10 S7 basic)",
                route.conn_type
            )));
        }
        let (calling, called) = route.tsaps().map_err(|e| Error::Invalid(e.to_string()))?;
        self.change(|c| {
            c.calling = calling;
            c.called = called;
            c.extra_params.clear();
        })
    }

    /// Sets the CR's parameters after C0 as they are (code, value); the CR must stay within
    /// 128 bytes. C0, C1 and C2 are written by the library and cannot be given here.
    pub fn set_extra_params(&mut self, params: Vec<(u8, Vec<u8>)>) -> Result<()> {
        use crate::proto::cotp::param;
        if let Some((code, _)) = params
            .iter()
            .find(|(c, _)| [param::TPDU_SIZE, param::CALLING_TSAP, param::CALLED_TSAP].contains(c))
        {
            return Err(Error::Invalid(format!(
                "CR parameter 0x{code:02X} is written by the library: set it with its own setter"
            )));
        }
        self.change(|c| c.extra_params = params)
    }

    /// The CR this configuration sends.
    pub fn connect_request(&self) -> ConnectRequest {
        ConnectRequest {
            calling: self.calling.clone(),
            called: self.called.clone(),
            tpdu_size: self.tpdu_size,
            extra: self.extra_params.clone(),
        }
    }

    /// Applies `f` to a copy and keeps it only if the CR it makes can be sent.
    fn change(&mut self, f: impl FnOnce(&mut Config)) -> Result<()> {
        let mut new = self.clone();
        f(&mut new);
        new.connect_request()
            .encode()
            .map_err(|e| Error::Invalid(e.to_string()))?;
        *self = new;
        Ok(())
    }
}

/// Settings of a listener, and the [`TransferSettings`] of the connections it accepts.
pub struct ListenerConfig {
    max_tpdu: u32,
    cr_timeout: Duration,
    max_pending: usize,
    allowed_called: Vec<Tsap>,
    filter: Option<CrFilter>,
    transfer: TransferSettings,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig {
            max_tpdu: 8192,
            cr_timeout: Duration::from_secs(5),
            max_pending: 64,
            allowed_called: Vec::new(),
            filter: None,
            transfer: TransferSettings::default(),
        }
    }
}

impl std::fmt::Debug for ListenerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerConfig")
            .field("max_tpdu", &self.max_tpdu)
            .field("cr_timeout", &self.cr_timeout)
            .field("max_pending", &self.max_pending)
            .field("allowed_called", &self.allowed_called)
            .field("filter", &self.filter.is_some())
            .field("transfer", &self.transfer)
            .finish()
    }
}

/// Longest CR timeout a listener accepts.
pub const MAX_CR_TIMEOUT: Duration = Duration::from_secs(3600);
/// Most handshakes a listener lets wait at once.
pub const MAX_MAX_PENDING: usize = 65_536;

impl ListenerConfig {
    /// Largest TPDU size granted, in bytes.
    pub fn max_tpdu(&self) -> u32 {
        self.max_tpdu
    }

    /// Sets the largest TPDU size granted: one of [`TPDU_SIZES`] (default 8192).
    pub fn set_max_tpdu(&mut self, size: u32) -> Result<()> {
        if handshake::tpdu_code_for(size).is_none() {
            return Err(Error::Invalid(format!(
                "TPDU size {size} is not one of 128, 256, 512, 1024, 2048, 4096, 8192"
            )));
        }
        self.max_tpdu = size;
        Ok(())
    }

    /// Time a client has to send its CR after TCP connect.
    pub fn cr_timeout(&self) -> Duration {
        self.cr_timeout
    }

    /// Sets the time a client has to send its CR after TCP connect: 1 ms to
    /// [`MAX_CR_TIMEOUT`] (default 5 s).
    pub fn set_cr_timeout(&mut self, timeout: Duration) -> Result<()> {
        if timeout < Duration::from_millis(1) || timeout > MAX_CR_TIMEOUT {
            return Err(Error::Invalid(format!(
                "CR timeout {} ms is outside 1..{}",
                timeout.as_millis(),
                MAX_CR_TIMEOUT.as_millis()
            )));
        }
        self.cr_timeout = timeout;
        Ok(())
    }

    /// Most handshakes waiting for their CR at once.
    pub fn max_pending(&self) -> usize {
        self.max_pending
    }

    /// Sets the most handshakes waiting for their CR at once, 1 to [`MAX_MAX_PENDING`]
    /// (default 64); beyond it the oldest is closed.
    pub fn set_max_pending(&mut self, count: usize) -> Result<()> {
        if !(1..=MAX_MAX_PENDING).contains(&count) {
            return Err(Error::Invalid(format!(
                "pending limit {count} is outside 1..{MAX_MAX_PENDING}"
            )));
        }
        self.max_pending = count;
        Ok(())
    }

    /// Called TSAPs served; empty: any.
    pub fn allowed_called(&self) -> &[Tsap] {
        &self.allowed_called
    }

    /// Adds a called TSAP (1 to 255 bytes) to those served. While the list is empty every
    /// TSAP is served; once it has entries, a CR calling another is refused with DR 0x03.
    pub fn allow_called(&mut self, tsap: Tsap) -> Result<()> {
        if tsap.as_bytes().is_empty() || tsap.as_bytes().len() > 255 {
            return Err(Error::Invalid(format!(
                "TSAP of {} bytes is outside 1..255",
                tsap.as_bytes().len()
            )));
        }
        if !self.allowed_called.contains(&tsap) {
            self.allowed_called.push(tsap);
        }
        Ok(())
    }

    /// The decision on each valid CR after the TSAP list, if one is installed.
    pub(crate) fn filter(&self) -> Option<&CrFilter> {
        self.filter.as_ref()
    }

    /// Installs (or with `None` removes) a decision on each valid CR, made after the TSAP
    /// list: `Ok(())` accepts, `Err(reason)` refuses with that DR reason.
    pub fn set_filter(&mut self, filter: Option<CrFilter>) {
        self.filter = filter;
    }

    /// The limits and timings of accepted connections.
    pub fn transfer(&self) -> &TransferSettings {
        &self.transfer
    }

    /// The limits and timings of connections accepted from now on, to change them.
    pub fn transfer_mut(&mut self) -> &mut TransferSettings {
        &mut self.transfer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_setting_leaves_the_config_as_it_was() {
        let mut c = Config::new("127.0.0.1", 102).unwrap();
        let long = Tsap::from_wire(&[7; 60]);
        assert!(c.set_tsaps(long.clone(), long).is_err());
        assert_eq!(c.calling().as_bytes(), [1, 0]);
        assert!(c.set_extra_params(vec![(0xC6, vec![0; 200])]).is_err());
        assert!(c.extra_params().is_empty());
        assert!(c.transfer_mut().set_max_message(10).is_err());
        assert_eq!(c.transfer().max_message(), DEFAULT_MAX_MESSAGE);
    }

    #[test]
    fn keepalive_values_are_bounded() {
        assert!(Keepalive::new(0, 1, 1).is_err());
        assert!(Keepalive::new(1, 1, MAX_KEEPALIVE + 1).is_err());
        let k = Keepalive::new(1, 2, 3).unwrap();
        assert_eq!((k.idle_s(), k.interval_s(), k.count()), (1, 2, 3));
        assert!(!Keepalive::OFF.enabled());
    }

    #[test]
    fn the_user_timeout_follows_keepalive_unless_set() {
        let mut t = TransferSettings::default();
        assert_eq!(t.effective_user_timeout(), Some(Duration::from_secs(90)));
        t.set_keepalive(Keepalive::new(1, 1, 2).unwrap());
        assert_eq!(t.effective_user_timeout(), Some(Duration::from_secs(3)));
        t.set_keepalive(Keepalive::OFF);
        assert_eq!(t.effective_user_timeout(), None);
        t.set_user_timeout(UserTimeout::After(Duration::from_millis(1500)))
            .unwrap();
        assert_eq!(
            t.effective_user_timeout(),
            Some(Duration::from_millis(1500))
        );
        assert!(t
            .set_user_timeout(UserTimeout::After(Duration::ZERO))
            .is_err());
        t.set_user_timeout(UserTimeout::System).unwrap();
        assert_eq!(t.effective_user_timeout(), None);
    }
}

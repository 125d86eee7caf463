/*
 * isotcp.hpp: header-only C++ wrapper of isotcp.h (C++17 or later).
 *
 *   isotcp::Connection   a client connection or an accepted one; owns an iso_conn, move-only
 *   isotcp::Listener     the passive side; owns an iso_listener, move-only
 *   isotcp::TlsConfig    TLS settings for Connection::start_tls; owns an iso_tls_config,
 *                        move-only
 *   isotcp::Error        thrown for every negative result code: code() is the ISO_E_* value,
 *                        message() the library's last-error text, what() both with the
 *                        function that failed, os_error() the OS error code behind it (0 if
 *                        none), phase() where a failed connect or reconnect stopped.
 *                        Subclasses: TimeoutError (ISO_E_TIMEOUT, ISO_E_WOULD_BLOCK),
 *                        ClosedError (ISO_E_CLOSED), BufferTooSmallError
 *                        (ISO_E_BUFFER_TOO_SMALL, with needed()), TlsError (ISO_E_TLS).
 *   isotcp::ConnectPhase where the last connect failed: none, resolve, tcp or cotp.
 *
 * Byte ranges are passed as isotcp::const_bytes / isotcp::mutable_bytes: std::span under C++20,
 * a minimal span-like type under C++17 (built from a pointer and a size, a std::vector, a
 * std::array or a C array). Functions taking a pointer and a size exist beside them.
 *
 * A moved-from or default-constructed object owns nothing: destroying it does nothing, valid()
 * is false, and every other member function throws isotcp::Error with ISO_E_INVALID.
 * The thread rules of isotcp.h apply unchanged (one thread may send while another receives on
 * the same Connection). Link as for isotcp.h: -lisotcp, or libisotcp.a -lpthread -ldl -lm.
 */
#ifndef ISOTCP_HPP
#define ISOTCP_HPP

#include "isotcp.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#if defined(_MSVC_LANG)
#define ISOTCP_CPLUSPLUS _MSVC_LANG
#else
#define ISOTCP_CPLUSPLUS __cplusplus
#endif

#if ISOTCP_CPLUSPLUS < 201703L
#error "isotcp.hpp needs C++17 or later"
#endif

#if ISOTCP_CPLUSPLUS >= 202002L && defined(__has_include)
#if __has_include(<span>)
#include <span>
#endif
#endif
#if defined(__cpp_lib_span)
#define ISOTCP_HAS_STD_SPAN 1
#else
#define ISOTCP_HAS_STD_SPAN 0
#endif

namespace isotcp {

// ---------------------------------------------------------------------------------------------
// Byte ranges
// ---------------------------------------------------------------------------------------------

#if ISOTCP_HAS_STD_SPAN

/** Bytes read by the library (a message to send, a TSAP). */
using const_bytes = std::span<const std::uint8_t>;
/** Bytes written by the library (a receive buffer). */
using mutable_bytes = std::span<std::uint8_t>;

#else

/** Bytes written by the library (a receive buffer): a pointer and a size, not owning. */
class mutable_bytes {
public:
    constexpr mutable_bytes() noexcept = default;
    constexpr mutable_bytes(std::uint8_t *data, std::size_t size) noexcept : data_(data), size_(size) {}
    template <std::size_t N>
    constexpr mutable_bytes(std::uint8_t (&array)[N]) noexcept : data_(array), size_(N) {}
    template <std::size_t N>
    constexpr mutable_bytes(std::array<std::uint8_t, N> &array) noexcept : data_(array.data()), size_(N) {}
    mutable_bytes(std::vector<std::uint8_t> &vector) noexcept : data_(vector.data()), size_(vector.size()) {}

    constexpr std::uint8_t *data() const noexcept { return data_; }
    constexpr std::size_t size() const noexcept { return size_; }
    constexpr bool empty() const noexcept { return size_ == 0; }
    constexpr std::uint8_t *begin() const noexcept { return data_; }
    constexpr std::uint8_t *end() const noexcept { return data_ + size_; }
    constexpr std::uint8_t &operator[](std::size_t i) const noexcept { return data_[i]; }

private:
    std::uint8_t *data_ = nullptr;
    std::size_t size_ = 0;
};

/** Bytes read by the library (a message to send, a TSAP): a pointer and a size, not owning. */
class const_bytes {
public:
    constexpr const_bytes() noexcept = default;
    constexpr const_bytes(const std::uint8_t *data, std::size_t size) noexcept : data_(data), size_(size) {}
    template <std::size_t N>
    constexpr const_bytes(const std::uint8_t (&array)[N]) noexcept : data_(array), size_(N) {}
    template <std::size_t N>
    constexpr const_bytes(const std::array<std::uint8_t, N> &array) noexcept : data_(array.data()), size_(N) {}
    const_bytes(const std::vector<std::uint8_t> &vector) noexcept : data_(vector.data()), size_(vector.size()) {}
    constexpr const_bytes(mutable_bytes bytes) noexcept : data_(bytes.data()), size_(bytes.size()) {}

    constexpr const std::uint8_t *data() const noexcept { return data_; }
    constexpr std::size_t size() const noexcept { return size_; }
    constexpr bool empty() const noexcept { return size_ == 0; }
    constexpr const std::uint8_t *begin() const noexcept { return data_; }
    constexpr const std::uint8_t *end() const noexcept { return data_ + size_; }
    constexpr const std::uint8_t &operator[](std::size_t i) const noexcept { return data_[i]; }

private:
    const std::uint8_t *data_ = nullptr;
    std::size_t size_ = 0;
};

#endif

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/** Where the last connect or reconnect of a Connection failed (iso_get_connect_phase). */
enum class ConnectPhase : std::int32_t {
    /** The last connect succeeded, or none ran (also: the failure was not a connect). */
    none = ISO_PHASE_NONE,
    /** Resolving the host name failed. */
    resolve = ISO_PHASE_RESOLVE,
    /** No address completed the TCP connect: the PLC is unreachable. */
    tcp = ISO_PHASE_TCP,
    /** TCP was up and the CR sent, but no CC confirmed it: the PLC is reachable and refused
     *  (usually TSAP, rack or slot) or did not answer. */
    cotp = ISO_PHASE_COTP,
};

/** A negative result code of an isotcp function, with the library's message. */
class Error : public std::runtime_error {
public:
    Error(std::int32_t code, const std::string &operation, const std::string &message, std::int32_t os_error = 0,
          ConnectPhase phase = ConnectPhase::none)
        : std::runtime_error(operation + ": " + iso_strerror(code) + " (" + std::to_string(code) +
                             "): " + message),
          code_(code), os_error_(os_error), phase_(phase), message_(std::make_shared<const std::string>(message)) {}

    /** The ISO_E_* code. */
    std::int32_t code() const noexcept { return code_; }
    /** The library's last-error message for the failed call (the detail of what()). */
    const char *message() const noexcept { return message_->c_str(); }
    /** The OS error code behind the failure (errno; the WSA code on Windows), e.g. 111
     *  (ECONNREFUSED) for a refused connect; 0 when it had none (iso_thread_last_os_error). */
    std::int32_t os_error() const noexcept { return os_error_; }
    /** For a failed connect() or reconnect(): the phase it stopped in (resolve, tcp, cotp).
     *  ConnectPhase::none for every other failure. */
    ConnectPhase phase() const noexcept { return phase_; }

private:
    std::int32_t code_;
    std::int32_t os_error_;
    ConnectPhase phase_;
    std::shared_ptr<const std::string> message_;
};

/** ISO_E_TIMEOUT (the deadline passed) or ISO_E_WOULD_BLOCK (timeout 0 and nothing ready).
 *  Nothing received is lost: the connection stays usable. */
class TimeoutError : public Error {
public:
    using Error::Error;
};

/** ISO_E_CLOSED: the peer closed or reset the connection, or sent DR/ER. */
class ClosedError : public Error {
public:
    using Error::Error;
};

/** ISO_E_BUFFER_TOO_SMALL: the message did not fit; it stays queued. */
class BufferTooSmallError : public Error {
public:
    BufferTooSmallError(std::int32_t code, const std::string &operation, const std::string &message,
                        std::size_t needed, std::int32_t os_error = 0)
        : Error(code, operation, message, os_error), needed_(needed) {}

    /** The size the message needs. */
    std::size_t needed() const noexcept { return needed_; }

private:
    std::size_t needed_;
};

/** ISO_E_TLS: TLS failed: the handshake, the peer's certificate (not the pinned one, no chain
 *  to the CA file), a bad record or an alert; message() says which. A failed handshake closes
 *  the connection. */
class TlsError : public Error {
public:
    using Error::Error;
};

namespace detail {

/** This thread's last error message (every failing isotcp call records one). */
inline std::string thread_last_error() {
    std::size_t needed = 0;
    iso_thread_last_error(nullptr, 0, &needed);
    std::string text(needed > 0 ? needed : 1, '\0');
    iso_thread_last_error(text.data(), text.size(), &needed);
    text.resize(std::strlen(text.c_str()));
    return text;
}

/** This thread's last OS error code (0 when the last failure had none). */
inline std::int32_t thread_last_os_error() noexcept {
    std::int32_t code = 0;
    iso_thread_last_os_error(&code);
    return code;
}

/** The connect phase of `conn` (ConnectPhase::none for NULL). */
inline ConnectPhase connect_phase(const iso_conn *conn) noexcept {
    std::int32_t phase = ISO_PHASE_NONE;
    if (conn != nullptr) iso_get_connect_phase(conn, &phase);
    return static_cast<ConnectPhase>(phase);
}

/** Throws the exception class that fits `code`, with this thread's last error message and OS
 *  error, both read right after the failed call on the same thread. */
[[noreturn]] inline void raise(std::int32_t code, const char *operation, std::size_t needed = 0,
                               ConnectPhase phase = ConnectPhase::none) {
    std::string message = thread_last_error();
    const std::int32_t os_error = thread_last_os_error();
    switch (code) {
    case ISO_E_TIMEOUT:
    case ISO_E_WOULD_BLOCK:
        throw TimeoutError(code, operation, message, os_error, phase);
    case ISO_E_CLOSED:
        throw ClosedError(code, operation, message, os_error, phase);
    case ISO_E_BUFFER_TOO_SMALL:
        throw BufferTooSmallError(code, operation, message, needed, os_error);
    case ISO_E_TLS:
        throw TlsError(code, operation, message, os_error, phase);
    default:
        throw Error(code, operation, message, os_error, phase);
    }
}

/** Returns `rc` when it is not negative, else throws. */
inline std::int32_t check(std::int32_t rc, const char *operation) {
    if (rc < 0) raise(rc, operation);
    return rc;
}

/** As check, for iso_connect / iso_reconnect on `conn`: the exception also has the phase the
 *  connect failed in. */
inline void check_connect(std::int32_t rc, const char *operation, const iso_conn *conn) {
    if (rc < 0) raise(rc, operation, 0, connect_phase(conn));
}

/** Throws ISO_E_INVALID for a call on an object that owns no handle. */
[[noreturn]] inline void raise_empty(const char *type, const char *operation) {
    throw Error(ISO_E_INVALID, operation,
                std::string("empty ") + type + " (moved from or default-constructed)");
}

/** A TSAP copied out by iso_get_remote_tsap / iso_get_calling_tsap. */
template <typename Getter>
std::vector<std::uint8_t> copy_tsap(const iso_conn *conn, Getter getter, const char *operation) {
    std::vector<std::uint8_t> tsap(32);
    std::size_t len = 0;
    std::int32_t rc = getter(conn, tsap.data(), tsap.size(), &len);
    if (rc == ISO_E_BUFFER_TOO_SMALL) {
        tsap.resize(len);
        rc = getter(conn, tsap.data(), tsap.size(), &len);
    }
    check(rc, operation);
    tsap.resize(len);
    return tsap;
}

/** A last-error text copied out by iso_last_error / iso_listener_last_error. */
template <typename Handle, typename Getter>
std::string copy_last_error(const Handle *handle, Getter getter, const char *operation) {
    std::size_t needed = 0;
    std::int32_t rc = getter(handle, nullptr, 0, &needed);
    if (rc != ISO_OK && rc != ISO_E_BUFFER_TOO_SMALL) raise(rc, operation);
    std::string text(needed > 0 ? needed : 1, '\0');
    rc = getter(handle, text.data(), text.size(), &needed);
    if (rc != ISO_OK && rc != ISO_E_BUFFER_TOO_SMALL) raise(rc, operation);
    text.resize(std::strlen(text.c_str()));
    return text;
}

} // namespace detail

// ---------------------------------------------------------------------------------------------
// Free functions
// ---------------------------------------------------------------------------------------------

/** The library's version text, e.g. "0.1.0". */
inline const char *version() noexcept { return iso_version(); }

/** True when the library linked at run time has the version of the header compiled against. */
inline bool version_matches() noexcept { return iso_version_number() == ISO_VERSION_NUMBER; }

/** Static text for a result code (iso_strerror). */
inline const char *error_text(std::int32_t code) noexcept { return iso_strerror(code); }

/** An S7 remote TSAP: (conn_type << 8) | rack << 5 | slot. Throws for values out of range. */
inline std::uint16_t s7_tsap(std::uint8_t conn_type, std::uint8_t rack, std::uint8_t slot) {
    std::uint16_t tsap = 0;
    detail::check(iso_s7_tsap(conn_type, rack, slot, &tsap), "iso_s7_tsap");
    return tsap;
}

// ---------------------------------------------------------------------------------------------
// TLS settings
// ---------------------------------------------------------------------------------------------

/** What Connection::start_tls verifies and presents (secure S7 communication: TLS inside COTP).
 *  Verification is by a CA file or a SHA-256 pin of the peer's certificate; with neither, and
 *  without the explicit set_insecure(true), start_tls throws Error with ISO_E_INVALID. Files are
 *  read by start_tls, which copies the settings: the object may change or go afterwards. */
class TlsConfig {
public:
    /** TLS versions for set_versions. */
    static constexpr std::uint16_t tls1_2 = 0x0303;
    static constexpr std::uint16_t tls1_3 = 0x0304;

    /** A configuration that verifies nothing yet. */
    TlsConfig() { detail::check(iso_tls_config_create(&cfg_), "iso_tls_config_create"); }
    ~TlsConfig() { iso_tls_config_destroy(cfg_); }

    TlsConfig(TlsConfig &&other) noexcept : cfg_(std::exchange(other.cfg_, nullptr)) {}
    TlsConfig &operator=(TlsConfig &&other) noexcept {
        if (this != &other) {
            iso_tls_config_destroy(cfg_);
            cfg_ = std::exchange(other.cfg_, nullptr);
        }
        return *this;
    }
    TlsConfig(const TlsConfig &) = delete;
    TlsConfig &operator=(const TlsConfig &) = delete;

    /** True when the object owns a configuration (false once moved from). */
    bool valid() const noexcept { return cfg_ != nullptr; }
    /** The C handle (still owned by this object). */
    iso_tls_config *native_handle() const noexcept { return cfg_; }

    /** PEM file of CA certificates the peer's chain must verify against. */
    TlsConfig &set_ca_file(const std::string &pem_path) {
        return set(iso_tls_config_set_ca_file, "iso_tls_config_set_ca_file", pem_path.c_str());
    }
    /** The SHA-256 (32 bytes) of the peer's certificate (DER) that it must match. */
    TlsConfig &set_pin_sha256(const_bytes digest) {
        return set(iso_tls_config_set_pin_sha256, "iso_tls_config_set_pin_sha256", digest.data(), digest.size());
    }
    /** true: accept any peer certificate (labs only: anyone on the path can read and change
     *  the traffic); false: verify (the default). */
    TlsConfig &set_insecure(bool no_verification) {
        return set(iso_tls_config_set_insecure, "iso_tls_config_set_insecure", no_verification ? 1 : 0);
    }
    /** The name the peer's certificate must carry, also sent as SNI (default: no name check,
     *  as PLC certificates rarely name their address). */
    TlsConfig &set_server_name(const std::string &name) {
        return set(iso_tls_config_set_server_name, "iso_tls_config_set_server_name", name.c_str());
    }
    /** Our certificate chain and key (PEM files): needed by the server role, optional for a
     *  client. */
    TlsConfig &set_identity_files(const std::string &cert_chain_pem, const std::string &key_pem) {
        return set(iso_tls_config_set_identity_files, "iso_tls_config_set_identity_files", cert_chain_pem.c_str(),
                   key_pem.c_str());
    }
    /** The versions allowed, tls1_2 to tls1_3 (the default both). */
    TlsConfig &set_versions(std::uint16_t min, std::uint16_t max) {
        return set(iso_tls_config_set_versions, "iso_tls_config_set_versions", min, max);
    }
    /** A file each session appends its secrets to (NSS key log format, for Wireshark); anyone
     *  who can read it can read the traffic. */
    TlsConfig &set_keylog_file(const std::string &path) {
        return set(iso_tls_config_set_keylog_file, "iso_tls_config_set_keylog_file", path.c_str());
    }
    /** The largest TLS record in bytes; 0 (the default) sizes each record to fill one DT of
     *  the negotiated TPDU, larger records are split over several DTs of one message. */
    TlsConfig &set_max_record_size(std::uint32_t bytes) {
        return set(iso_tls_config_set_max_record_size, "iso_tls_config_set_max_record_size", bytes);
    }

private:
    /** Runs one iso_tls_config_set_* function; a new setter is one line calling this. */
    template <typename Setter, typename... Args>
    TlsConfig &set(Setter setter, const char *operation, Args... args) {
        if (cfg_ == nullptr) detail::raise_empty("isotcp::TlsConfig", operation);
        detail::check(setter(cfg_, args...), operation);
        return *this;
    }

    iso_tls_config *cfg_ = nullptr;
};

// ---------------------------------------------------------------------------------------------
// Connection
// ---------------------------------------------------------------------------------------------

/** An ISO-on-TCP connection: created for a host and port (client), or by Listener::accept. */
class Connection {
public:
    /** An empty object; assign a real one to use it. */
    Connection() noexcept = default;

    /** A client handle for `host` (name, IPv4 or IPv6 literal) and `port` (102 for S7); no
     *  network I/O happens until connect(). */
    Connection(const std::string &host, std::uint16_t port) {
        detail::check(iso_create(host.c_str(), port, &conn_), "iso_create");
    }

    /** Takes ownership of a handle from the C API (NULL gives an empty object). */
    explicit Connection(iso_conn *handle) noexcept : conn_(handle) {}

    ~Connection() { iso_destroy(conn_); }

    Connection(Connection &&other) noexcept : conn_(std::exchange(other.conn_, nullptr)) {}
    Connection &operator=(Connection &&other) noexcept {
        if (this != &other) {
            iso_destroy(conn_);
            conn_ = std::exchange(other.conn_, nullptr);
        }
        return *this;
    }
    Connection(const Connection &) = delete;
    Connection &operator=(const Connection &) = delete;

    /** True when the object owns a handle. */
    bool valid() const noexcept { return conn_ != nullptr; }
    explicit operator bool() const noexcept { return valid(); }
    /** The C handle (still owned by this object), for functions the wrapper does not cover. */
    iso_conn *native_handle() const noexcept { return conn_; }
    /** Gives up ownership: the caller destroys the returned handle with iso_destroy. */
    iso_conn *release() noexcept { return std::exchange(conn_, nullptr); }

    // --- settings (before connect) ----------------------------------------------------------

    /** Local (calling) and remote (called) TSAPs, e.g. 0x0100 and s7_tsap(1, 0, 2). */
    Connection &set_tsap(std::uint16_t local, std::uint16_t remote) {
        detail::check(iso_set_tsap(handle("iso_set_tsap"), local, remote), "iso_set_tsap");
        return *this;
    }
    /** TSAPs as 1..32 bytes each, e.g. "SIMATIC-ROOT-HMI". */
    Connection &set_tsap_bytes(const_bytes local, const_bytes remote) {
        detail::check(iso_set_tsap_bytes(handle("iso_set_tsap_bytes"), local.data(), local.size(),
                                         remote.data(), remote.size()),
                      "iso_set_tsap_bytes");
        return *this;
    }
    /** TPDU size offered: 128, 256, ..., 8192 (default 1024). */
    Connection &set_tpdu_size(std::uint32_t size) {
        detail::check(iso_set_tpdu_size(handle("iso_set_tpdu_size"), size), "iso_set_tpdu_size");
        return *this;
    }
    /** python-snap7's routing parameters (see iso_set_routing). */
    Connection &set_routing(std::uint16_t subnet_id, std::uint16_t rack, std::uint16_t slot) {
        detail::check(iso_set_routing(handle("iso_set_routing"), subnet_id, rack, slot), "iso_set_routing");
        return *this;
    }
    /** S7 routing through a Siemens gateway (see iso_set_routing_s7). */
    Connection &set_routing_s7(std::uint16_t subnet_high, std::uint16_t subnet_low, const_bytes dest_addr,
                               std::uint8_t conn_type, std::uint16_t rack, std::uint16_t slot) {
        detail::check(iso_set_routing_s7(handle("iso_set_routing_s7"), subnet_high, subnet_low, dest_addr.data(),
                                         dest_addr.size(), conn_type, rack, slot),
                      "iso_set_routing_s7");
        return *this;
    }
    /** Deadline of each send (default 5000 ms). */
    Connection &set_send_timeout(std::uint32_t timeout_ms) {
        detail::check(iso_set_send_timeout(handle("iso_set_send_timeout"), timeout_ms), "iso_set_send_timeout");
        return *this;
    }
    /** Largest message sent or received, 128..16 MiB (default 65536). */
    Connection &set_max_message(std::uint32_t bytes) {
        detail::check(iso_set_max_message(handle("iso_set_max_message"), bytes), "iso_set_max_message");
        return *this;
    }
    /** Most DTs in one received message (default 4096). */
    Connection &set_max_fragments(std::uint32_t fragments) {
        detail::check(iso_set_max_fragments(handle("iso_set_max_fragments"), fragments), "iso_set_max_fragments");
        return *this;
    }
    /** TCP keep-alive (default on, 60 s idle, 10 s interval, 3 probes). */
    Connection &set_keepalive(bool enable, std::uint32_t idle_s = 60, std::uint32_t interval_s = 10,
                              std::uint32_t count = 3) {
        detail::check(iso_set_keepalive(handle("iso_set_keepalive"), enable ? 1 : 0, idle_s, interval_s, count),
                      "iso_set_keepalive");
        return *this;
    }
    /** Send-queue limit of queue_send (default 256 KiB). */
    Connection &set_max_queued(std::uint32_t bytes) {
        detail::check(iso_set_max_queued(handle("iso_set_max_queued"), bytes), "iso_set_max_queued");
        return *this;
    }
    /** Value of set_user_timeout that makes the bound follow the keep-alive settings (the
     *  default). */
    static constexpr std::uint32_t user_timeout_from_keepalive = ISO_USER_TIMEOUT_FROM_KEEPALIVE;
    /** How long sent data may stay unacknowledged before the system gives up on the connection
     *  (TCP_USER_TIMEOUT; whole seconds on Windows), so a peer that vanished under a pending
     *  request is found (ISO_E_IO, os_error() ETIMEDOUT) instead of after about 15 minutes of
     *  retransmissions: 1..2073600000 ms; 0 for the system's default;
     *  user_timeout_from_keepalive (the default) for idle + interval x count of set_keepalive
     *  while keep-alive is on. Error ISO_E_INVALID above the range. */
    Connection &set_user_timeout(std::uint32_t timeout_ms) {
        detail::check(iso_set_user_timeout(handle("iso_set_user_timeout"), timeout_ms), "iso_set_user_timeout");
        return *this;
    }
    /** Delay between the starts of TCP connects to successive addresses of a host name with
     *  several (IPv6 and IPv4, a redundant CPU pair): 0..10000 ms, default 250 (RFC 8305).
     *  Error ISO_E_INVALID above the range. */
    Connection &set_connect_attempt_delay(std::uint32_t delay_ms) {
        detail::check(iso_set_connect_attempt_delay(handle("iso_set_connect_attempt_delay"), delay_ms),
                      "iso_set_connect_attempt_delay");
        return *this;
    }

    // --- connection ---------------------------------------------------------------------------

    /** Resolves, opens TCP and exchanges CR/CC within one deadline. The exception of a
     *  failure has phase(): where it stopped (also connect_phase()). */
    void connect(std::uint32_t timeout_ms) {
        iso_conn *conn = handle("iso_connect");
        detail::check_connect(iso_connect(conn, timeout_ms), "iso_connect", conn);
    }

    /** Ends the connection (a DR first while COTP is up, so the PLC releases its side at once)
     *  and connects again with the same settings, all within one deadline; not connected: just
     *  connects. Errors as connect(); ISO_E_STATE on an accepted connection. */
    void reconnect(std::uint32_t timeout_ms) {
        iso_conn *conn = handle("iso_reconnect");
        detail::check_connect(iso_reconnect(conn, timeout_ms), "iso_reconnect", conn);
    }

    /** Closes the connection and wakes blocked calls; the object may connect again. */
    void disconnect() { detail::check(iso_disconnect(handle("iso_disconnect")), "iso_disconnect"); }

    /** True when the connection can carry a new request; never blocks. */
    [[nodiscard]] bool check() const {
        return detail::check(iso_check_connection(handle("iso_check_connection")), "iso_check_connection") == 1;
    }

    // --- sending --------------------------------------------------------------------------------

    /** Sends one whole message, segmented into DTs as needed, within the send timeout. */
    void send(const_bytes message) { send(message.data(), message.size()); }
    void send(const std::uint8_t *data, std::size_t len) {
        detail::check(iso_send(handle("iso_send"), data, len), "iso_send");
    }

    /** Sends one whole message without blocking; what the socket does not take is queued.
     *  Returns false (nothing queued) when the send queue is full: flush first. */
    [[nodiscard]] bool queue_send(const_bytes message) { return queue_send(message.data(), message.size()); }
    [[nodiscard]] bool queue_send(const std::uint8_t *data, std::size_t len) {
        std::int32_t rc = iso_queue_send(handle("iso_queue_send"), data, len);
        if (rc == ISO_E_WOULD_BLOCK) return false;
        detail::check(rc, "iso_queue_send");
        return true;
    }

    /** Writes queued bytes for up to `timeout_ms`. True when none remain queued. */
    bool flush(std::uint32_t timeout_ms) {
        std::int32_t rc = iso_flush(handle("iso_flush"), timeout_ms);
        if (rc == ISO_E_WOULD_BLOCK || rc == ISO_E_TIMEOUT) return false;
        detail::check(rc, "iso_flush");
        return true;
    }

    /** Queued bytes not yet written. */
    [[nodiscard]] std::size_t send_pending() const {
        std::size_t n = 0;
        detail::check(iso_get_send_pending(handle("iso_get_send_pending"), &n), "iso_get_send_pending");
        return n;
    }

    // --- receiving ------------------------------------------------------------------------------

    /** True when a whole message is ready (receive returns it at once), false when none came
     *  within the timeout. */
    [[nodiscard]] bool poll(std::uint32_t timeout_ms) {
        return detail::check(iso_poll(handle("iso_poll"), timeout_ms), "iso_poll") == 1;
    }

    /** Receives one whole message, waiting up to `timeout_ms` (TimeoutError when none came). */
    [[nodiscard]] std::vector<std::uint8_t> receive(std::uint32_t timeout_ms) {
        iso_conn *conn = handle("iso_recv");
        std::vector<std::uint8_t> message(4096);
        std::size_t len = 0;
        std::int32_t rc = iso_recv(conn, message.data(), message.size(), &len, timeout_ms);
        // The message stays queued when it does not fit; another receiver on another thread may
        // take it meanwhile, hence the loop.
        while (rc == ISO_E_BUFFER_TOO_SMALL) {
            message.resize(len);
            rc = iso_recv(conn, message.data(), message.size(), &len, timeout_ms);
        }
        detail::check(rc, "iso_recv");
        message.resize(len);
        return message;
    }

    /** Receives one whole message into `buffer`; returns its length. BufferTooSmallError (with
     *  the size needed) when it does not fit: the message then stays queued. */
    [[nodiscard]] std::size_t receive(mutable_bytes buffer, std::uint32_t timeout_ms) {
        return receive(buffer.data(), buffer.size(), timeout_ms);
    }
    [[nodiscard]] std::size_t receive(std::uint8_t *buffer, std::size_t capacity, std::uint32_t timeout_ms) {
        std::size_t len = 0;
        std::int32_t rc = iso_recv(handle("iso_recv"), buffer, capacity, &len, timeout_ms);
        if (rc < 0) detail::raise(rc, "iso_recv", rc == ISO_E_BUFFER_TOO_SMALL ? len : 0);
        return len;
    }

    // --- properties -----------------------------------------------------------------------------

    /** The socket, for select/poll/epoll (do not read, write or close it). */
    [[nodiscard]] std::int64_t fd() const {
        std::int64_t fd = -1;
        detail::check(iso_get_fd(handle("iso_get_fd"), &fd), "iso_get_fd");
        return fd;
    }
    /** The negotiated TPDU size. */
    [[nodiscard]] std::uint32_t tpdu_size() const {
        std::uint32_t size = 0;
        detail::check(iso_get_tpdu_size(handle("iso_get_tpdu_size"), &size), "iso_get_tpdu_size");
        return size;
    }
    /** The called TSAP (C2) of the connection. */
    [[nodiscard]] std::vector<std::uint8_t> remote_tsap() const {
        return detail::copy_tsap(handle("iso_get_remote_tsap"), iso_get_remote_tsap, "iso_get_remote_tsap");
    }
    /** The calling TSAP (C1) of the connection. */
    [[nodiscard]] std::vector<std::uint8_t> calling_tsap() const {
        return detail::copy_tsap(handle("iso_get_calling_tsap"), iso_get_calling_tsap, "iso_get_calling_tsap");
    }
    /** The handle's last error message ("no error" before the first). */
    [[nodiscard]] std::string last_error() const {
        return detail::copy_last_error(handle("iso_last_error"), iso_last_error, "iso_last_error");
    }
    /** The OS error code behind the handle's last failure (errno; the WSA code on Windows), e.g.
     *  111 (ECONNREFUSED); 0 when it had none or before the first. */
    [[nodiscard]] std::int32_t last_os_error() const {
        std::int32_t code = 0;
        detail::check(iso_last_os_error(handle("iso_last_os_error"), &code), "iso_last_os_error");
        return code;
    }
    /** Where the handle's last connect or reconnect failed; ConnectPhase::none after a
     *  successful one or before any. */
    [[nodiscard]] ConnectPhase connect_phase() const {
        std::int32_t phase = ISO_PHASE_NONE;
        detail::check(iso_get_connect_phase(handle("iso_get_connect_phase"), &phase), "iso_get_connect_phase");
        return static_cast<ConnectPhase>(phase);
    }

    // --- secure communication: TLS inside COTP ---------------------------------------------------

    /** Runs the TLS handshake within `timeout_ms`: the client role after connect() (for
     *  S7CommPlus: after the plaintext InitSSL request and response), the server role on a
     *  connection Listener::accept returned (which needs set_identity_files). From then on
     *  send() and receive() carry TLS. TlsError when the handshake fails or the certificate is
     *  rejected (the connection is then closed); Error with ISO_E_INVALID when `config` can
     *  verify nothing or TLS is already started. No other thread may use the connection while
     *  the handshake runs. */
    void start_tls(const TlsConfig &config, std::uint32_t timeout_ms) {
        if (!config.valid()) detail::raise_empty("isotcp::TlsConfig", "iso_start_tls");
        detail::check(iso_start_tls(handle("iso_start_tls"), config.native_handle(), timeout_ms), "iso_start_tls");
    }

    /** True when TLS is started on the current connection. */
    [[nodiscard]] bool tls_active() const {
        return detail::check(iso_tls_active(handle("iso_tls_active")), "iso_tls_active") == 1;
    }

    /** `length` (1..255) bytes from the TLS exporter (RFC 5705, RFC 8446 section 7.5) for
     *  `label`, with no context: S7CommPlus's password login uses label "EXPERIMENTAL_OMS", 32
     *  bytes. */
    [[nodiscard]] std::vector<std::uint8_t> export_keying_material(std::string_view label, std::size_t length) const {
        return export_keying_material(label, nullptr, 0, length);
    }
    /** As above with a context, which may be empty (in TLS 1.2 an empty context differs from
     *  none). */
    [[nodiscard]] std::vector<std::uint8_t> export_keying_material(std::string_view label, const_bytes context,
                                                                   std::size_t length) const {
        static const std::uint8_t empty = 0;
        return export_keying_material(label, context.empty() ? &empty : context.data(), context.size(), length);
    }

    /** The certificate (DER) the peer presented in the TLS handshake. */
    [[nodiscard]] std::vector<std::uint8_t> peer_certificate() const {
        const iso_conn *conn = handle("iso_tls_peer_certificate");
        std::size_t needed = 0;
        std::vector<std::uint8_t> der;
        std::int32_t rc = iso_tls_peer_certificate(conn, nullptr, 0, &needed);
        while (rc == ISO_E_BUFFER_TOO_SMALL) {
            der.resize(needed);
            rc = iso_tls_peer_certificate(conn, der.data(), der.size(), &needed);
        }
        detail::check(rc, "iso_tls_peer_certificate");
        der.resize(needed);
        return der;
    }

private:
    std::vector<std::uint8_t> export_keying_material(std::string_view label, const std::uint8_t *context,
                                                     std::size_t context_len, std::size_t length) const {
        std::vector<std::uint8_t> out(length);
        detail::check(iso_tls_export_keying_material(handle("iso_tls_export_keying_material"),
                                                     reinterpret_cast<const std::uint8_t *>(label.data()),
                                                     label.size(), context, context_len, out.data(), out.size()),
                      "iso_tls_export_keying_material");
        return out;
    }

    iso_conn *handle(const char *operation) const {
        if (conn_ == nullptr) detail::raise_empty("isotcp::Connection", operation);
        return conn_;
    }

    iso_conn *conn_ = nullptr;
};

// ---------------------------------------------------------------------------------------------
// Listener
// ---------------------------------------------------------------------------------------------

/** A listening endpoint (the PLC or gateway side). */
class Listener {
public:
    /** Decides on a valid CR from its calling and called TSAPs (empty when absent): 0 accepts,
     *  1..255 refuses with that DR reason (e.g. 0x03 address unknown, 0x81 congestion). */
    using Filter = std::function<std::int32_t(const_bytes calling, const_bytes called)>;

    /** An empty object; assign a real one to use it. */
    Listener() noexcept = default;

    /** Listens on `bind_host` ("" or "::": every IPv6 and IPv4 address; "0.0.0.0": every IPv4
     *  address; or one address or name) and `port` (0 picks a free one, see port()). */
    Listener(const std::string &bind_host, std::uint16_t port) {
        detail::check(iso_listen(bind_host.c_str(), port, &listener_), "iso_listen");
    }

    /** Takes ownership of a handle from the C API (NULL gives an empty object). */
    explicit Listener(iso_listener *handle) noexcept : listener_(handle) {}

    ~Listener() { iso_listener_destroy(listener_); }

    Listener(Listener &&other) noexcept
        : listener_(std::exchange(other.listener_, nullptr)), filters_(std::move(other.filters_)) {}
    Listener &operator=(Listener &&other) noexcept {
        if (this != &other) {
            iso_listener_destroy(listener_);
            listener_ = std::exchange(other.listener_, nullptr);
            filters_ = std::move(other.filters_);
        }
        return *this;
    }
    Listener(const Listener &) = delete;
    Listener &operator=(const Listener &) = delete;

    /** True when the object owns a handle. */
    bool valid() const noexcept { return listener_ != nullptr; }
    explicit operator bool() const noexcept { return valid(); }
    /** The C handle (still owned by this object). */
    iso_listener *native_handle() const noexcept { return listener_; }

    /** The port listened on. */
    [[nodiscard]] std::uint16_t port() const {
        std::uint16_t port = 0;
        detail::check(iso_listener_port(handle("iso_listener_port"), &port), "iso_listener_port");
        return port;
    }

    /** Waits up to `timeout_ms` for a client with an accepted CR and answers it with a CC.
     *  TimeoutError when none came (refused CRs are counted and the wait goes on). */
    [[nodiscard]] Connection accept(std::uint32_t timeout_ms) {
        iso_conn *conn = nullptr;
        detail::check(iso_accept(handle("iso_accept"), timeout_ms, &conn), "iso_accept");
        return Connection(conn);
    }

    /** A descriptor for event loops (see iso_listener_get_fd). */
    [[nodiscard]] std::int64_t fd() const {
        std::int64_t fd = -1;
        detail::check(iso_listener_get_fd(handle("iso_listener_get_fd"), &fd), "iso_listener_get_fd");
        return fd;
    }
    /** Milliseconds until the earliest pending handshake times out; UINT32_MAX when none. */
    [[nodiscard]] std::uint32_t next_timeout() const {
        std::uint32_t ms = 0;
        detail::check(iso_listener_next_timeout(handle("iso_listener_next_timeout"), &ms),
                      "iso_listener_next_timeout");
        return ms;
    }

    Listener &set_max_tpdu(std::uint32_t size) {
        detail::check(iso_listener_set_max_tpdu(handle("iso_listener_set_max_tpdu"), size),
                      "iso_listener_set_max_tpdu");
        return *this;
    }
    Listener &set_cr_timeout(std::uint32_t timeout_ms) {
        detail::check(iso_listener_set_cr_timeout(handle("iso_listener_set_cr_timeout"), timeout_ms),
                      "iso_listener_set_cr_timeout");
        return *this;
    }
    Listener &set_max_pending(std::uint32_t count) {
        detail::check(iso_listener_set_max_pending(handle("iso_listener_set_max_pending"), count),
                      "iso_listener_set_max_pending");
        return *this;
    }
    Listener &set_max_message(std::uint32_t bytes) {
        detail::check(iso_listener_set_max_message(handle("iso_listener_set_max_message"), bytes),
                      "iso_listener_set_max_message");
        return *this;
    }
    Listener &set_max_queued(std::uint32_t bytes) {
        detail::check(iso_listener_set_max_queued(handle("iso_listener_set_max_queued"), bytes),
                      "iso_listener_set_max_queued");
        return *this;
    }
    /** Adds a called TSAP to the ones served (while none is added, every TSAP is). */
    Listener &allow_tsap(const_bytes tsap) {
        detail::check(iso_listener_allow_tsap(handle("iso_listener_allow_tsap"), tsap.data(), tsap.size()),
                      "iso_listener_allow_tsap");
        return *this;
    }

    /** Installs a function deciding on each valid CR (an empty one removes it). It runs on the
     *  thread calling accept() and must not use this listener; an exception it throws refuses
     *  the CR with DR reason 0x03. Every function installed stays alive until the listener is
     *  destroyed, so an accept() running on another thread never calls a destroyed one. */
    Listener &set_filter(Filter filter) {
        iso_listener *l = handle("iso_listener_set_filter");
        if (!filter) {
            detail::check(iso_listener_set_filter(l, nullptr, nullptr), "iso_listener_set_filter");
            return *this;
        }
        filters_.push_back(std::make_unique<Filter>(std::move(filter)));
        detail::check(iso_listener_set_filter(l, &Listener::call_filter, filters_.back().get()),
                      "iso_listener_set_filter");
        return *this;
    }

    /** Handshakes refused or dropped so far. */
    [[nodiscard]] std::uint64_t refused_count() const {
        std::uint64_t n = 0;
        detail::check(iso_listener_refused_count(handle("iso_listener_refused_count"), &n),
                      "iso_listener_refused_count");
        return n;
    }
    /** The last error or refusal ("no error" before the first). */
    [[nodiscard]] std::string last_error() const {
        return detail::copy_last_error(handle("iso_listener_last_error"), iso_listener_last_error,
                                       "iso_listener_last_error");
    }

private:
    iso_listener *handle(const char *operation) const {
        if (listener_ == nullptr) detail::raise_empty("isotcp::Listener", operation);
        return listener_;
    }

    static std::int32_t call_filter(void *user, const std::uint8_t *calling, std::size_t calling_len,
                                    const std::uint8_t *called, std::size_t called_len) {
        try {
            const Filter &filter = *static_cast<const Filter *>(user);
            return filter(const_bytes(calling, calling_len), const_bytes(called, called_len));
        } catch (...) {
            return 0x03;
        }
    }

    iso_listener *listener_ = nullptr;
    std::vector<std::unique_ptr<Filter>> filters_;
};

} // namespace isotcp

#endif /* ISOTCP_HPP */

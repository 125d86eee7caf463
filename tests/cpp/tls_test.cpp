// Test of the TLS part of include/isotcp.hpp (isotcp::TlsConfig, Connection::start_tls and what a
// started session offers), built and run by tests/cpp_wrapper.rs against s7commplus's S7-1500
// emulator (tests/peers/s7commplus_server.py: protocol V2, TLS inside COTP, Python's ssl module on
// the other side). The driver passes ISOTCP_S7CP_PORT, ISOTCP_S7CP_PIN (SHA-256 of the emulator's
// certificate, hex) and ISOTCP_S7CP_CERT (the certificate, PEM).
//
// Connects with the HMI TSAPs, exchanges the plaintext InitSSL request and response, starts TLS
// pinned to the certificate and sends encrypted CreateObject requests, whose answers carry a new
// session. Also: the peer's certificate equals the PEM file's, the exporter, a wrong pin
// (TlsError, ISO_E_TLS), a config that verifies nothing, TlsConfig's argument errors, and the
// server role on loopback with the emulator's certificate and key.
// Prints "tls_test: N checks passed" and exits 0, or lists the failed checks and exits 1.

#include "isotcp.hpp"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace {

int checks = 0;
int failures = 0;

void fail(int line, const std::string &what) {
    std::fprintf(stderr, "tls_test.cpp:%d: FAILED: %s\n", line, what.c_str());
    failures++;
}

#define CHECK(cond)                                                                                                    \
    do {                                                                                                               \
        checks++;                                                                                                      \
        if (!(cond)) fail(__LINE__, #cond);                                                                            \
    } while (0)

// Runs `f`, which must throw E with `code`; returns the message (empty when it did not).
template <typename E, typename F>
std::string expect_error(int line, std::int32_t code, F &&f) {
    checks++;
    try {
        f();
        fail(line, "no exception");
    } catch (const E &e) {
        if (e.code() != code) fail(line, "code " + std::to_string(e.code()) + " (" + e.what() + ")");
        return e.message();
    } catch (const std::exception &e) {
        fail(line, std::string("another exception: ") + e.what());
    }
    return {};
}

// Runs `f`, which must throw isotcp::Error saying that TLS is not started.
template <typename F>
void expect_not_started(int line, F &&f) {
    checks++;
    try {
        f();
        fail(line, "no exception");
    } catch (const isotcp::Error &e) {
        const bool code_ok = e.code() == ISO_E_STATE || e.code() == ISO_E_INVALID;
        if (!code_ok || std::string(e.message()).find("not started") == std::string::npos)
            fail(line, std::string("not a 'TLS not started' error: ") + e.what());
    }
}

using Bytes = std::vector<std::uint8_t>;

std::string env(const char *name) {
    const char *value = std::getenv(name);
    if (value == nullptr) {
        std::fprintf(stderr, "tls_test: %s is not set (tests/cpp_wrapper.rs sets it)\n", name);
        std::exit(2);
    }
    return value;
}

Bytes from_hex(const std::string &hex) {
    Bytes out;
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
        out.push_back(static_cast<std::uint8_t>(std::stoul(hex.substr(i, 2), nullptr, 16)));
    return out;
}

// The DER inside a PEM file (base64 between the BEGIN and END lines).
Bytes pem_to_der(const std::string &path) {
    std::ifstream file(path);
    std::string line, base64;
    while (std::getline(file, line))
        if (line.rfind("-----", 0) != 0) base64 += line;
    static const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    Bytes out;
    std::uint32_t bits = 0;
    int count = 0;
    for (char c : base64) {
        std::size_t value = alphabet.find(c);
        if (value == std::string::npos) continue; // '=' padding, line ends
        bits = (bits << 6) | static_cast<std::uint32_t>(value);
        count += 6;
        if (count >= 8) {
            count -= 8;
            out.push_back(static_cast<std::uint8_t>((bits >> count) & 0xFF));
        }
    }
    return out;
}

// An S7CommPlus request with no data: header 72 01 <len>, the 14-byte request header, 4 bytes
// of fill, trailer 72 01 00 00.
Bytes request(std::uint16_t function, std::uint16_t sequence, std::uint32_t session, std::uint8_t flags) {
    Bytes b = {0x72, 0x01, 0x00, 0x12, 0x31, 0x00, 0x00};
    b.push_back(static_cast<std::uint8_t>(function >> 8));
    b.push_back(static_cast<std::uint8_t>(function));
    b.insert(b.end(), {0x00, 0x00, static_cast<std::uint8_t>(sequence >> 8), static_cast<std::uint8_t>(sequence)});
    for (int shift = 24; shift >= 0; shift -= 8) b.push_back(static_cast<std::uint8_t>(session >> shift));
    b.push_back(flags);
    b.insert(b.end(), {0x00, 0x00, 0x00, 0x00, 0x72, 0x01, 0x00, 0x00});
    return b;
}

constexpr std::uint16_t init_ssl = 0x05B3;
constexpr std::uint16_t create_object = 0x04CA;

// Checks a response frame: protocol version, opcode 0x32, function and sequence.
bool is_response(const Bytes &r, std::uint8_t version, std::uint16_t function, std::uint16_t sequence) {
    return r.size() >= 14 && r[0] == 0x72 && r[1] == version && r[4] == 0x32 &&
           r[7] == static_cast<std::uint8_t>(function >> 8) && r[8] == static_cast<std::uint8_t>(function) &&
           r[11] == static_cast<std::uint8_t>(sequence >> 8) && r[12] == static_cast<std::uint8_t>(sequence);
}

struct Peer {
    std::uint16_t port;
    Bytes pin;
    std::string cert;
};

// A connection that has exchanged the plaintext InitSSL request and response.
isotcp::Connection connect_hmi(const Peer &peer) {
    isotcp::Connection c("127.0.0.1", peer.port);
    const std::uint8_t calling[] = {0x06, 0x00};
    const std::string called = "SIMATIC-ROOT-HMI";
    c.set_tsap_bytes(calling, isotcp::const_bytes(reinterpret_cast<const std::uint8_t *>(called.data()), called.size()));
    c.connect(5000);
    c.send(request(init_ssl, 0, 0, 0x30));
    CHECK(is_response(c.receive(5000), 0x02, init_ssl, 0));
    CHECK(!c.tls_active());
    return c;
}

// An encrypted CreateObject: the answer has return value 0 and one (non-zero) object id.
void check_session_created(isotcp::Connection &c, std::uint16_t sequence) {
    c.send(request(create_object, sequence, 288, 0x36));
    Bytes r = c.receive(5000);
    CHECK(is_response(r, 0x02, create_object, sequence));
    CHECK(r.size() > 17 && r[14] == 0x00 && r[15] == 0x01 && r[16] != 0x00);
}

void test_config_errors() {
    isotcp::TlsConfig cfg;
    CHECK(cfg.valid());
    const std::uint8_t short_pin[31] = {};
    expect_error<isotcp::Error>(__LINE__, ISO_E_INVALID, [&] { cfg.set_pin_sha256(short_pin); });
    expect_error<isotcp::Error>(__LINE__, ISO_E_INVALID,
                                [&] { cfg.set_versions(isotcp::TlsConfig::tls1_3, isotcp::TlsConfig::tls1_2); });
    expect_error<isotcp::Error>(__LINE__, ISO_E_INVALID, [&] { cfg.set_versions(0x0302, isotcp::TlsConfig::tls1_3); });
    cfg.set_versions(isotcp::TlsConfig::tls1_2, isotcp::TlsConfig::tls1_3).set_insecure(false).set_server_name("plc");
    isotcp::TlsConfig moved = std::move(cfg);
    CHECK(moved.valid() && !cfg.valid());
    expect_error<isotcp::Error>(__LINE__, ISO_E_INVALID, [&] { cfg.set_insecure(true); });
    isotcp::Connection not_connected("127.0.0.1", 1);
    expect_error<isotcp::Error>(__LINE__, ISO_E_STATE, [&] { not_connected.start_tls(moved, 1000); });
    CHECK(!not_connected.tls_active());
}

void test_pinned_session(const Peer &peer) {
    isotcp::Connection c = connect_hmi(peer);
    // Before TLS: nothing to export, no certificate (ISO_E_STATE or, from older libraries,
    // ISO_E_INVALID, saying TLS is not started).
    expect_not_started(__LINE__, [&] { (void)c.export_keying_material("EXPERIMENTAL_OMS", 32); });
    expect_not_started(__LINE__, [&] { (void)c.peer_certificate(); });

    isotcp::TlsConfig cfg;
    cfg.set_pin_sha256(peer.pin);
    c.start_tls(cfg, 5000);
    CHECK(c.tls_active());
    check_session_created(c, 1);
    check_session_created(c, 2);

    // The certificate presented is the one in the emulator's PEM file.
    const Bytes der = c.peer_certificate();
    CHECK(!der.empty() && der == pem_to_der(peer.cert));

    const Bytes oms = c.export_keying_material("EXPERIMENTAL_OMS", 32);
    CHECK(oms.size() == 32 && oms != Bytes(32));
    CHECK(c.export_keying_material("EXPERIMENTAL_OMS", 32) == oms);
    CHECK(c.export_keying_material("EXPERIMENTAL_OMT", 32) != oms);
    const std::uint8_t context[] = {1, 2, 3};
    CHECK(c.export_keying_material("EXPERIMENTAL_OMS", context, 32) != oms);
    // TLS 1.3 (what the emulator negotiates) defines no context as the empty one.
    CHECK(c.export_keying_material("EXPERIMENTAL_OMS", isotcp::const_bytes(), 32) == oms);
    CHECK(c.export_keying_material("EXPERIMENTAL_OMS", 255).size() == 255);
    expect_error<isotcp::Error>(__LINE__, ISO_E_INVALID, [&] { (void)c.export_keying_material("EXPERIMENTAL_OMS", 0); });
    expect_error<isotcp::Error>(__LINE__, ISO_E_INVALID, [&] { (void)c.export_keying_material("EXPERIMENTAL_OMS", 256); });
    // Starting again is refused, and the session goes on.
    expect_error<isotcp::Error>(__LINE__, ISO_E_INVALID, [&] { c.start_tls(cfg, 5000); });
    check_session_created(c, 3);
}

void test_ca_file(const Peer &peer) {
    // The self-signed certificate is its own CA; no name is checked unless one is set.
    isotcp::Connection c = connect_hmi(peer);
    c.start_tls(isotcp::TlsConfig().set_ca_file(peer.cert), 5000);
    CHECK(c.tls_active());
    check_session_created(c, 1);
}

void test_wrong_pin(const Peer &peer) {
    isotcp::Connection c = connect_hmi(peer);
    Bytes wrong = peer.pin;
    wrong[0] ^= 0x01;
    isotcp::TlsConfig cfg;
    cfg.set_pin_sha256(wrong);
    const std::string message = expect_error<isotcp::TlsError>(__LINE__, ISO_E_TLS, [&] { c.start_tls(cfg, 5000); });
    CHECK(message.find("pin") != std::string::npos);
    CHECK(!c.tls_active());
    // The failed handshake closed the connection.
    expect_error<isotcp::Error>(__LINE__, ISO_E_STATE, [&] { c.send(request(create_object, 1, 288, 0x36)); });
}

void test_unverified(const Peer &peer) {
    isotcp::Connection c = connect_hmi(peer);
    const std::string message =
        expect_error<isotcp::Error>(__LINE__, ISO_E_INVALID, [&] { c.start_tls(isotcp::TlsConfig(), 5000); });
    CHECK(message.find("verify") != std::string::npos);
    CHECK(!c.tls_active());
    // insecure, named as such, is accepted.
    c.start_tls(isotcp::TlsConfig().set_insecure(true), 5000);
    CHECK(c.tls_active());
    CHECK(c.last_error().find("insecure") != std::string::npos);
    check_session_created(c, 1);
}

// The server role: our listener presents the emulator's certificate and key (plc.key beside
// it) to our client, which pins it; messages cross both ways and both ends export the same key.
void test_server_role(const Peer &peer) {
    const std::string key = peer.cert.substr(0, peer.cert.rfind('/') + 1) + "plc.key";
    isotcp::Listener listener("127.0.0.1", 0);
    isotcp::Connection client("127.0.0.1", listener.port());
    std::exception_ptr server_error;
    isotcp::Connection server;
    std::thread accepting([&] {
        try {
            server = listener.accept(5000);
            server.start_tls(isotcp::TlsConfig().set_identity_files(peer.cert, key), 5000);
        } catch (...) {
            server_error = std::current_exception();
        }
    });
    try {
        client.connect(5000);
        client.start_tls(isotcp::TlsConfig().set_pin_sha256(peer.pin), 5000);
    } catch (...) {
        accepting.join();
        throw;
    }
    accepting.join();
    if (server_error) std::rethrow_exception(server_error);
    CHECK(client.tls_active() && server.tls_active());
    Bytes big(5000);
    for (std::size_t i = 0; i < big.size(); i++) big[i] = static_cast<std::uint8_t>(i * 7);
    client.send(big);
    CHECK(server.receive(5000) == big);
    const Bytes reply = {'o', 'k'};
    server.send(reply);
    CHECK(client.receive(5000) == reply);
    CHECK(client.export_keying_material("EXPERIMENTAL_OMS", 32) == server.export_keying_material("EXPERIMENTAL_OMS", 32));
    CHECK(client.peer_certificate() == pem_to_der(peer.cert));
}

} // namespace

int main() {
    const Peer peer{static_cast<std::uint16_t>(std::stoi(env("ISOTCP_S7CP_PORT"))), from_hex(env("ISOTCP_S7CP_PIN")),
                    env("ISOTCP_S7CP_CERT")};
    struct Step {
        const char *name;
        void (*run)(const Peer &);
    };
    const Step steps[] = {{"config", [](const Peer &) { test_config_errors(); }},
                          {"pinned session", test_pinned_session},
                          {"CA file", test_ca_file},
                          {"wrong pin", test_wrong_pin},
                          {"unverified", test_unverified},
                          {"server role", test_server_role}};
    for (const Step &step : steps) {
        try {
            step.run(peer);
        } catch (const std::exception &e) {
            fail(0, std::string(step.name) + ": unexpected exception: " + e.what());
        }
    }
    if (failures != 0) {
        std::fprintf(stderr, "tls_test: %d of %d checks FAILED\n", failures, checks);
        return 1;
    }
    std::printf("tls_test: %d checks passed\n", checks);
    return 0;
}

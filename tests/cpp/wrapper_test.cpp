// Test of include/isotcp.hpp, built as C++17 and as C++20 against libisotcp.a by
// tests/cpp_wrapper.rs. A Listener and client Connections in one process (the accepting side on
// its own thread): messages echoed (a 10 KB one segmented into DTs), receive into a buffer,
// queue_send/flush, poll, the exceptions (refused connection, timeout, would-block, buffer too
// small, invalid argument, rejected CR) with the OS error and connect phase they carry, a CR
// filter, reconnect() five times in a row, the user-timeout and attempt-delay setters, and
// moved-from objects that are inert.
// Prints "wrapper_test: N checks passed" and exits 0, or lists the failed checks and exits 1.

#include "isotcp.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <stdexcept>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

namespace {

std::atomic<int> checks{0};
std::atomic<int> failures{0};
std::mutex print_lock;

void fail(int line, const std::string &what) {
    std::lock_guard<std::mutex> guard(print_lock);
    std::fprintf(stderr, "wrapper_test.cpp:%d: FAILED: %s\n", line, what.c_str());
    failures++;
}

#define CHECK(cond)                                                                                                    \
    do {                                                                                                               \
        checks++;                                                                                                      \
        if (!(cond)) fail(__LINE__, #cond);                                                                            \
    } while (0)

// Runs `f`, which must throw exactly the class E (not a subclass of it unless Exact is false)
// with `code` and a non-empty message. Returns the exception when it was one of E.
template <typename E, bool Exact = true, typename F>
std::optional<E> expect_error(int line, const char *what, std::int32_t code, F &&f) {
    checks++;
    try {
        f();
        fail(line, std::string(what) + ": no exception");
    } catch (const E &e) {
        if (e.code() != code) {
            fail(line, std::string(what) + ": code " + std::to_string(e.code()) + ", expected " + std::to_string(code) +
                           " (" + e.what() + ")");
        } else if (std::strlen(e.message()) == 0 || std::string(e.what()).find(e.message()) == std::string::npos) {
            fail(line, std::string(what) + ": message missing from what(): " + e.what());
        } else if (Exact && typeid(e) != typeid(E)) {
            fail(line, std::string(what) + ": thrown as a subclass: " + e.what());
        }
        return e;
    } catch (const std::exception &e) {
        fail(line, std::string(what) + ": other exception: " + e.what());
    }
    return std::nullopt;
}

#define EXPECT_ERROR(type, code, ...) expect_error<type>(__LINE__, #__VA_ARGS__, code, [&] { __VA_ARGS__; })

std::vector<std::uint8_t> pattern(std::size_t len, std::uint8_t seed) {
    std::vector<std::uint8_t> v(len);
    for (std::size_t i = 0; i < len; i++) v[i] = static_cast<std::uint8_t>((i * 7 + seed) & 0xFF);
    return v;
}

const std::vector<std::uint8_t> tsap_0100{0x01, 0x00};
const std::vector<std::uint8_t> tsap_0102{0x01, 0x02};

// Echoes every message back until the client closes; records what it saw.
struct EchoServer {
    isotcp::Listener listener{"127.0.0.1", 0};
    std::thread thread;
    int echoed = 0;
    std::size_t largest = 0;
    std::uint32_t tpdu = 0;
    std::vector<std::uint8_t> calling, called;
    bool closed_cleanly = false;

    void start() {
        thread = std::thread([this] {
            try {
                isotcp::Connection conn = listener.accept(5000);
                tpdu = conn.tpdu_size();
                calling = conn.calling_tsap();
                called = conn.remote_tsap();
                for (;;) {
                    std::vector<std::uint8_t> msg;
                    try {
                        msg = conn.receive(10000);
                    } catch (const isotcp::ClosedError &) {
                        closed_cleanly = true;
                        return;
                    }
                    if (msg.size() > largest) largest = msg.size();
                    conn.send(msg);
                    echoed++;
                }
            } catch (const std::exception &e) {
                fail(__LINE__, std::string("echo server: ") + e.what());
            }
        });
    }
};

void test_types() {
    static_assert(!std::is_copy_constructible_v<isotcp::Connection>, "Connection is move-only");
    static_assert(!std::is_copy_assignable_v<isotcp::Connection>, "Connection is move-only");
    static_assert(std::is_nothrow_move_constructible_v<isotcp::Connection>, "noexcept move");
    static_assert(std::is_nothrow_move_assignable_v<isotcp::Connection>, "noexcept move");
    static_assert(!std::is_copy_constructible_v<isotcp::Listener>, "Listener is move-only");
    static_assert(!std::is_copy_assignable_v<isotcp::Listener>, "Listener is move-only");
    static_assert(std::is_nothrow_move_constructible_v<isotcp::Listener>, "noexcept move");
    static_assert(std::is_nothrow_move_assignable_v<isotcp::Listener>, "noexcept move");
    static_assert(std::is_base_of_v<std::runtime_error, isotcp::Error>, "Error is a runtime_error");
    static_assert(std::is_base_of_v<isotcp::Error, isotcp::TimeoutError>, "TimeoutError is an Error");
    static_assert(std::is_base_of_v<isotcp::Error, isotcp::ClosedError>, "ClosedError is an Error");
    static_assert(std::is_base_of_v<isotcp::Error, isotcp::BufferTooSmallError>, "BufferTooSmallError is an Error");
    static_assert(std::is_nothrow_copy_constructible_v<isotcp::Error>, "exceptions copy without throwing");

    CHECK(std::string(isotcp::version()) == ISO_VERSION);
    CHECK(isotcp::version_matches());
    CHECK(std::string(isotcp::error_text(ISO_E_REFUSED)).size() > 0);
    CHECK(isotcp::s7_tsap(1, 0, 2) == 0x0102);
    CHECK(isotcp::s7_tsap(2, 1, 3) == 0x0223);
    EXPECT_ERROR(isotcp::Error, ISO_E_INVALID, (void)isotcp::s7_tsap(1, 8, 2));
}

void test_exchange() {
    EchoServer server;
    server.start();
    const std::uint16_t port = server.listener.port();
    CHECK(port != 0);
    CHECK(server.listener.fd() >= 0);

    isotcp::Connection client("127.0.0.1", port);
    client.set_tsap(0x0100, isotcp::s7_tsap(1, 0, 2)).set_tpdu_size(1024).set_send_timeout(5000);
    client.connect(3000);
    CHECK(client.valid());
    CHECK(client.check());
    CHECK(client.tpdu_size() == 1024);
    CHECK(client.fd() >= 0);
    CHECK(client.calling_tsap() == tsap_0100);
    CHECK(client.remote_tsap() == tsap_0102);
    CHECK(!client.poll(0));

    // A small message as a vector, back as a vector.
    const std::vector<std::uint8_t> hello = pattern(18, 1);
    client.send(hello);
    CHECK(client.receive(5000) == hello);

    // Pointer and size out, into a std::array back.
    const std::array<std::uint8_t, 5> five{{1, 2, 3, 4, 5}};
    client.send(five.data(), five.size());
    std::array<std::uint8_t, 64> buf{};
    const std::size_t n = client.receive(buf, 5000);
    CHECK(n == five.size());
    CHECK(std::memcmp(buf.data(), five.data(), five.size()) == 0);

#if ISOTCP_HAS_STD_SPAN
    // C++20: std::span in and out.
    const std::vector<std::uint8_t> spanned = pattern(300, 2);
    client.send(std::span<const std::uint8_t>(spanned));
    std::vector<std::uint8_t> span_buf(512);
    const std::size_t got = client.receive(std::span<std::uint8_t>(span_buf), 5000);
    CHECK(got == spanned.size());
    CHECK(std::equal(spanned.begin(), spanned.end(), span_buf.begin()));
#else
    // C++17: the span-like type from a pointer and a size, and from a vector.
    const std::vector<std::uint8_t> spanned = pattern(300, 2);
    client.send(isotcp::const_bytes(spanned.data(), spanned.size()));
    std::vector<std::uint8_t> span_buf(512);
    const std::size_t got = client.receive(isotcp::mutable_bytes(span_buf), 5000);
    CHECK(got == spanned.size());
    CHECK(std::memcmp(span_buf.data(), spanned.data(), spanned.size()) == 0);
#endif

    // 10 KB: 11 DTs of at most 1021 bytes each way, reassembled on both sides. A 100-byte
    // buffer is too small: the exception says how much is needed and the message stays queued.
    const std::vector<std::uint8_t> big = pattern(10 * 1024, 3);
    client.send(big);
    CHECK(client.poll(5000));
    checks++;
    try {
        std::array<std::uint8_t, 100> small{};
        (void)client.receive(small, 5000);
        fail(__LINE__, "receive into 100 bytes: no exception");
    } catch (const isotcp::BufferTooSmallError &e) {
        if (e.code() != ISO_E_BUFFER_TOO_SMALL || e.needed() != big.size())
            fail(__LINE__, std::string("BufferTooSmallError: ") + e.what() + ", needed " + std::to_string(e.needed()));
    }
    CHECK(client.poll(0));
    CHECK(client.receive(5000) == big);

    // Non-blocking send path.
    const std::vector<std::uint8_t> queued = pattern(2000, 4);
    CHECK(client.queue_send(queued));
    CHECK(client.flush(5000));
    CHECK(client.send_pending() == 0);
    CHECK(client.receive(5000) == queued);

    // Nothing arrives: TimeoutError with ISO_E_TIMEOUT after about the timeout, ISO_E_WOULD_BLOCK
    // for timeout 0; the connection stays usable.
    const auto t0 = std::chrono::steady_clock::now();
    expect_error<isotcp::TimeoutError>(__LINE__, "receive(200)", ISO_E_TIMEOUT, [&] { (void)client.receive(200); });
    const auto waited = std::chrono::steady_clock::now() - t0;
    CHECK(waited >= std::chrono::milliseconds(150));
    CHECK(waited < std::chrono::milliseconds(3000));
    expect_error<isotcp::TimeoutError>(__LINE__, "receive(0)", ISO_E_WOULD_BLOCK, [&] { (void)client.receive(0); });
    CHECK(client.last_error().size() > 0);
    CHECK(client.check());
    client.send(hello);
    CHECK(client.receive(5000) == hello);

    // A setter after connect: ISO_E_STATE.
    EXPECT_ERROR(isotcp::Error, ISO_E_STATE, client.set_tpdu_size(512));

    // Moving: the moved-from object is inert, the moved-to one carries the connection.
    isotcp::Connection moved(std::move(client));
    CHECK(!client.valid());
    CHECK(!static_cast<bool>(client));
    CHECK(client.native_handle() == nullptr);
    EXPECT_ERROR(isotcp::Error, ISO_E_INVALID, client.send(hello));
    EXPECT_ERROR(isotcp::Error, ISO_E_INVALID, (void)client.receive(100));
    EXPECT_ERROR(isotcp::Error, ISO_E_INVALID, (void)client.check());
    EXPECT_ERROR(isotcp::Error, ISO_E_INVALID, client.disconnect());
    EXPECT_ERROR(isotcp::Error, ISO_E_INVALID, (void)client.fd());
    EXPECT_ERROR(isotcp::Error, ISO_E_INVALID, client.connect(100));
    CHECK(moved.valid());
    moved.send(hello);
    CHECK(moved.receive(5000) == hello);

    isotcp::Connection assigned;
    CHECK(!assigned.valid());
    assigned = std::move(moved);
    CHECK(!moved.valid());
    CHECK(assigned.valid());
    assigned.send(big);
    CHECK(assigned.receive(5000) == big);

    // Disconnect: the server sees the close; the handle stays valid but not connected.
    assigned.disconnect();
    CHECK(!assigned.check());
    EXPECT_ERROR(isotcp::Error, ISO_E_STATE, assigned.send(hello));
    server.thread.join();
    CHECK(server.closed_cleanly);
    CHECK(server.echoed == 8);
    CHECK(server.largest == big.size());
    CHECK(server.tpdu == 1024);
    CHECK(server.calling == tsap_0100);
    CHECK(server.called == tsap_0102);

    // The moved-from listener is inert too.
    isotcp::Listener other(std::move(server.listener));
    CHECK(!server.listener.valid());
    CHECK(other.valid());
    CHECK(other.port() == port);
    EXPECT_ERROR(isotcp::Error, ISO_E_INVALID, (void)server.listener.port());
    EXPECT_ERROR(isotcp::Error, ISO_E_INVALID, (void)server.listener.accept(0));
}

void test_errors() {
    // A port nobody listens on: the listener that had it is gone.
    std::uint16_t port = 0;
    {
        isotcp::Listener gone("127.0.0.1", 0);
        port = gone.port();
    }
    isotcp::Connection refused("127.0.0.1", port);
    CHECK(refused.connect_phase() == isotcp::ConnectPhase::none);
    CHECK(refused.last_os_error() == 0);
    // Refused: the TCP phase failed, with the system's ECONNREFUSED (111 on Linux), both on the
    // exception and on the handle; the same again through reconnect().
    const auto e = EXPECT_ERROR(isotcp::Error, ISO_E_REFUSED, refused.connect(3000));
    CHECK(e && e->os_error() == ECONNREFUSED);
    CHECK(e && e->phase() == isotcp::ConnectPhase::tcp);
    CHECK(refused.connect_phase() == isotcp::ConnectPhase::tcp);
    CHECK(refused.last_os_error() == ECONNREFUSED);
    CHECK(!refused.check());
    const auto again = EXPECT_ERROR(isotcp::Error, ISO_E_REFUSED, refused.reconnect(3000));
    CHECK(again && again->os_error() == ECONNREFUSED);
    CHECK(again && again->phase() == isotcp::ConnectPhase::tcp);

    const auto empty_host = EXPECT_ERROR(isotcp::Error, ISO_E_INVALID, isotcp::Connection("", 102));
    CHECK(empty_host && empty_host->os_error() == 0);
    CHECK(empty_host && empty_host->phase() == isotcp::ConnectPhase::none);
    isotcp::Connection unused("127.0.0.1", 102);
    EXPECT_ERROR(isotcp::Error, ISO_E_INVALID, unused.set_tpdu_size(1000));

    // The user timeout: 0 (the system's), 1..2073600000 ms, and the keep-alive-derived default.
    unused.set_user_timeout(0).set_user_timeout(1).set_user_timeout(30000).set_user_timeout(2073600000);
    unused.set_user_timeout(isotcp::Connection::user_timeout_from_keepalive);
    CHECK(isotcp::Connection::user_timeout_from_keepalive == UINT32_MAX);
    const auto ut = EXPECT_ERROR(isotcp::Error, ISO_E_INVALID, unused.set_user_timeout(2073600001));
    CHECK(ut && ut->os_error() == 0 && ut->phase() == isotcp::ConnectPhase::none);
    // The attempt delay: 0..10000 ms.
    unused.set_connect_attempt_delay(0).set_connect_attempt_delay(250).set_connect_attempt_delay(10000);
    EXPECT_ERROR(isotcp::Error, ISO_E_INVALID, unused.set_connect_attempt_delay(10001));
    EXPECT_ERROR(isotcp::Error, ISO_E_STATE, unused.send(std::vector<std::uint8_t>{1, 2, 3}));
    EXPECT_ERROR(isotcp::Error, ISO_E_STATE, (void)unused.tpdu_size());

    // No client: accept times out.
    isotcp::Listener idle("127.0.0.1", 0);
    expect_error<isotcp::TimeoutError>(__LINE__, "accept(100)", ISO_E_TIMEOUT, [&] { (void)idle.accept(100); });
    expect_error<isotcp::TimeoutError>(__LINE__, "accept(0)", ISO_E_WOULD_BLOCK, [&] { (void)idle.accept(0); });
}

void test_filter() {
    isotcp::Listener listener("127.0.0.1", 0);
    // Called TSAP 0x0102: refused with 0x81; 0x0104: the filter throws; others accepted.
    listener.set_filter([](isotcp::const_bytes calling, isotcp::const_bytes called) -> std::int32_t {
        if (calling.size() != 2 || called.size() != 2) return 0x03;
        if (called[1] == 0x02) return 0x81;
        if (called[1] == 0x04) throw std::runtime_error("filter failure");
        return 0;
    });
    const std::uint16_t port = listener.port();

    isotcp::Connection accepted;
    std::thread server([&] {
        try {
            accepted = listener.accept(10000);
        } catch (const std::exception &e) {
            fail(__LINE__, std::string("accept: ") + e.what());
        }
    });

    isotcp::Connection a("127.0.0.1", port);
    a.set_tsap(0x0100, 0x0102);
    // Refused by DR: the COTP phase failed (TCP was up), and no OS error is behind it.
    const auto rejected = EXPECT_ERROR(isotcp::Error, ISO_E_REJECTED, a.connect(5000));
    CHECK(rejected && rejected->phase() == isotcp::ConnectPhase::cotp);
    CHECK(rejected && rejected->os_error() == 0);
    CHECK(a.connect_phase() == isotcp::ConnectPhase::cotp);
    isotcp::Connection b("127.0.0.1", port);
    b.set_tsap(0x0100, 0x0104);
    EXPECT_ERROR(isotcp::Error, ISO_E_REJECTED, b.connect(5000));
    isotcp::Connection c("127.0.0.1", port);
    c.set_tsap(0x0100, 0x0103);
    c.connect(5000);
    server.join();

    CHECK(accepted.valid());
    if (accepted.valid()) {
        CHECK(accepted.remote_tsap() == (std::vector<std::uint8_t>{0x01, 0x03}));
        const std::vector<std::uint8_t> ping{0x32, 0x01};
        c.send(ping);
        CHECK(accepted.receive(5000) == ping);
    }
    CHECK(listener.refused_count() == 2);
    CHECK(listener.last_error().find("0x03") != std::string::npos);

    // Removing the filter: 0x0102 is accepted now.
    listener.set_filter(nullptr);
    std::thread server2([&] {
        try {
            accepted = listener.accept(10000);
        } catch (const std::exception &e) {
            fail(__LINE__, std::string("accept: ") + e.what());
        }
    });
    isotcp::Connection d("127.0.0.1", port);
    d.connect(5000);
    server2.join();
    CHECK(accepted.valid());
    CHECK(listener.refused_count() == 2);
}

void test_reconnect() {
    // A listener that accepts six connections in turn and echoes on each until it closes.
    isotcp::Listener listener("127.0.0.1", 0);
    constexpr int rounds = 6;
    std::atomic<int> accepted{0};
    std::atomic<int> echoed{0};
    std::thread server([&] {
        try {
            for (int i = 0; i < rounds; i++) {
                isotcp::Connection conn = listener.accept(10000);
                accepted++;
                // A reconnect on an accepted connection is refused: it has nothing to dial.
                expect_error<isotcp::Error>(__LINE__, "accepted.reconnect", ISO_E_STATE,
                                            [&] { conn.reconnect(1000); });
                for (;;) {
                    std::vector<std::uint8_t> msg;
                    try {
                        msg = conn.receive(10000);
                    } catch (const isotcp::ClosedError &) {
                        break;
                    }
                    conn.send(msg);
                    echoed++;
                }
            }
        } catch (const std::exception &e) {
            fail(__LINE__, std::string("reconnect server: ") + e.what());
        }
    });

    isotcp::Connection client("127.0.0.1", listener.port());
    client.set_tsap(0x0100, 0x0102).set_user_timeout(20000).set_connect_attempt_delay(100);
    client.connect(5000);
    CHECK(client.connect_phase() == isotcp::ConnectPhase::none);
    const std::vector<std::uint8_t> ping = pattern(40, 9);
    client.send(ping);
    CHECK(client.receive(5000) == ping);
    // Settings stay fixed while connected.
    EXPECT_ERROR(isotcp::Error, ISO_E_STATE, client.set_user_timeout(1000));
    EXPECT_ERROR(isotcp::Error, ISO_E_STATE, client.set_connect_attempt_delay(0));
    for (int i = 1; i < rounds; i++) {
        client.reconnect(5000);
        CHECK(client.check());
        CHECK(client.connect_phase() == isotcp::ConnectPhase::none);
        CHECK(client.tpdu_size() == 1024);
        const std::vector<std::uint8_t> msg = pattern(static_cast<std::size_t>(100 * i), static_cast<std::uint8_t>(i));
        client.send(msg);
        CHECK(client.receive(5000) == msg);
    }
    client.disconnect();
    server.join();
    CHECK(accepted.load() == rounds);
    CHECK(echoed.load() == rounds);
}

} // namespace

int main() {
    struct Step {
        const char *name;
        void (*run)();
    };
    const Step steps[] = {{"types", test_types}, {"exchange", test_exchange}, {"errors", test_errors},
                          {"filter", test_filter}, {"reconnect", test_reconnect}};
    for (const Step &step : steps) {
        try {
            step.run();
        } catch (const std::exception &e) {
            fail(0, std::string(step.name) + ": unexpected exception: " + e.what());
        }
    }
    const long standard = ISOTCP_CPLUSPLUS;
    if (failures.load() != 0) {
        std::fprintf(stderr, "wrapper_test (C++ %ld): %d of %d checks FAILED\n", standard, failures.load(),
                     checks.load());
        return 1;
    }
    std::printf("wrapper_test (C++ %ld): %d checks passed\n", standard, checks.load());
    return 0;
}

// Tests of the C# bindings, as one program (no test framework needed under Mono):
//
//   mono BindingTests.exe [--python <venv python>] [--server <tests/peers/server.py>] [--require-peers]
//
// In-process: an IsoListener and IsoConnections on loopback (segmented messages both ways,
// TSAPs, refused port with its OS error and connect phase, timeouts, wake-up by Dispose, TSAP
// filtering, tracing, the user-timeout and attempt-delay settings, Reconnect). With --python:
// python-snap7's S7 server started through server.py, S7 setup communication and DB reads with
// the data checked, then five Reconnects each followed by the same. TlsTests.cs: TLS against
// s7commplus's S7-1500 emulator, given in ISOTCP_S7CP_PORT / _PIN / _CERT. Prints PASS/FAIL/SKIP per test and a closing "N passed, N failed" line; the
// exit status is 1 when a test failed.

using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Net;
using System.Net.Sockets;
using System.Threading;
using Isotcp;

static partial class BindingTests
{
    static string python;
    static string serverScript;
    static bool requirePeers;

    // errno of a refused TCP connect on Linux, where these tests run.
    const int ECONNREFUSED = 111;

    class SkipException : Exception
    {
        public SkipException(string why) : base(why) { }
    }

    static int Main(string[] args)
    {
        for (int i = 0; i < args.Length; i++)
        {
            if (args[i] == "--python" && i + 1 < args.Length) python = args[++i];
            else if (args[i] == "--server" && i + 1 < args.Length) serverScript = args[++i];
            else if (args[i] == "--require-peers") requirePeers = true;
            else
            {
                Console.Error.WriteLine("unknown argument " + args[i]);
                return 2;
            }
        }

        try
        {
            Native.iso_version_number();
        }
        catch (DllNotFoundException e)
        {
            Console.WriteLine("cannot load the native library \"" + Native.Library + "\" (libisotcp.so): " + e.Message);
            Console.WriteLine("put its directory in LD_LIBRARY_PATH, or map it in Isotcp.dll.config");
            return 2;
        }

        var tests = new List<KeyValuePair<string, Action>>
        {
            T("version_and_strerror", VersionAndStrError),
            T("loopback_segmented_messages", LoopbackSegmentedMessages),
            T("refused_port", RefusedPort),
            T("connect_timeout", ConnectTimeout),
            T("receive_timeout_loses_nothing", ReceiveTimeoutLosesNothing),
            T("dispose_wakes_blocked_receive", DisposeWakesBlockedReceive),
            T("dispose_wakes_blocked_accept", DisposeWakesBlockedAccept),
            T("listener_tsap_filter", ListenerTsapFilter),
            T("listener_filter_callback", ListenerFilterCallback),
            T("peer_close_and_buffer_too_small", PeerCloseAndBufferTooSmall),
            T("queued_send_and_trace", QueuedSendAndTrace),
            T("argument_and_state_errors", ArgumentAndStateErrors),
            T("user_timeout_and_attempt_delay", UserTimeoutAndAttemptDelay),
            T("reconnect_loopback", ReconnectLoopback),
            T("python_snap7_server_db_read", PythonSnap7Server),
            T("tls_config_errors", TlsConfigErrors),
            T("tls_s7commplus_pinned_session", TlsPinnedSession),
            T("tls_s7commplus_ca_file", TlsCaFile),
            T("tls_s7commplus_wrong_pin", TlsWrongPin),
            T("tls_s7commplus_unverified", TlsUnverified),
            T("tls_loopback_server_role", TlsLoopbackServerRole),
        };

        int passed = 0, failed = 0, skipped = 0;
        foreach (var test in tests)
        {
            var watch = Stopwatch.StartNew();
            try
            {
                test.Value();
                passed++;
                Console.WriteLine("PASS {0} ({1} ms)", test.Key, watch.ElapsedMilliseconds);
            }
            catch (SkipException e)
            {
                skipped++;
                Console.WriteLine("SKIP {0}: {1}", test.Key, e.Message);
            }
            catch (Exception e)
            {
                failed++;
                Console.WriteLine("FAIL {0}: {1}", test.Key, e);
            }
        }
        Console.WriteLine("{0} passed, {1} failed, {2} skipped", passed, failed, skipped);
        return failed == 0 ? 0 : 1;
    }

    static KeyValuePair<string, Action> T(string name, Action body)
    {
        return new KeyValuePair<string, Action>(name, body);
    }

    // -----------------------------------------------------------------------------------------
    // Assertions
    // -----------------------------------------------------------------------------------------

    static void Assert(bool condition, string what)
    {
        if (!condition) throw new Exception("assertion failed: " + what);
    }

    static void Equal<TValue>(TValue expected, TValue actual, string what)
    {
        if (!EqualityComparer<TValue>.Default.Equals(expected, actual))
            throw new Exception(string.Format("{0}: expected {1}, got {2}", what, expected, actual));
    }

    static void BytesEqual(byte[] expected, byte[] actual, string what)
    {
        if (expected.Length != actual.Length || !expected.SequenceEqual(actual))
            throw new Exception(string.Format("{0}: expected {1}, got {2}", what, Hex(expected), Hex(actual)));
    }

    static string Hex(byte[] b)
    {
        var s = BitConverter.ToString(b).Replace("-", "").ToLowerInvariant();
        return s.Length > 80 ? s.Substring(0, 80) + "... (" + b.Length + " bytes)" : s;
    }

    static TException Throws<TException>(Action action, string what) where TException : Exception
    {
        try
        {
            action();
        }
        catch (TException e)
        {
            return e;
        }
        catch (Exception e)
        {
            throw new Exception(string.Format("{0}: expected {1}, got {2}", what, typeof(TException).Name, e));
        }
        throw new Exception(string.Format("{0}: expected {1}, nothing thrown", what, typeof(TException).Name));
    }

    static byte[] Pattern(int n, int seed)
    {
        var b = new byte[n];
        for (int i = 0; i < n; i++) b[i] = (byte)(i * seed + (i >> 8));
        return b;
    }

    // -----------------------------------------------------------------------------------------
    // Helpers
    // -----------------------------------------------------------------------------------------

    /// <summary>A listener on 127.0.0.1, a client connected to it, the accepted side.</summary>
    sealed class Pair : IDisposable
    {
        public IsoListener Listener;
        public IsoConnection Client;
        public IsoConnection Server;

        public Pair(int requestedTpdu, ushort remoteTsap = 0x0102)
        {
            Listener = new IsoListener("127.0.0.1", 0);
            Client = new IsoConnection("127.0.0.1", Listener.Port);
            Client.SetTsap(0x0100, remoteTsap);
            Client.RequestedTpduSize = requestedTpdu;
            IsoConnection accepted = null;
            Exception acceptError = null;
            var acceptor = new Thread(() =>
            {
                try { accepted = Listener.Accept(5000); }
                catch (Exception e) { acceptError = e; }
            });
            acceptor.Start();
            Client.Connect(5000);
            acceptor.Join();
            if (acceptError != null) throw acceptError;
            Server = accepted;
        }

        public void Dispose()
        {
            if (Client != null) Client.Dispose();
            if (Server != null) Server.Dispose();
            Listener.Dispose();
        }
    }

    static ushort FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        ushort port = (ushort)((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    // -----------------------------------------------------------------------------------------
    // In-process tests
    // -----------------------------------------------------------------------------------------

    static void VersionAndStrError()
    {
        uint number = Native.iso_version_number();
        Equal(string.Format("{0}.{1}.{2}", number >> 16, (number >> 8) & 0xFF, number & 0xFF), Native.Version(), "iso_version");
        Equal(Native.AbiMajor, (int)(number >> 16), "major version");
        Equal(Native.AbiMinor, (int)((number >> 8) & 0xFF), "minor version");
        foreach (IsoError code in Enum.GetValues(typeof(IsoError)))
            Assert(Native.StrError((int)code).Length > 0, "strerror of " + code);
        Assert(Native.StrError(-9999).Length > 0, "strerror of an unknown code");
        // The same static text twice: nothing was freed by the marshaller.
        Equal(Native.StrError(-5), Native.StrError(-5), "strerror is stable");
        Equal((ushort)0x0123, IsoConnection.S7Tsap(1, 1, 3), "S7Tsap(1, 1, 3)");
        Equal(0x0004, IsoConnection.Snap7Error(IsoError.Timeout), "snap7 value of Timeout");
    }

    static void LoopbackSegmentedMessages()
    {
        using (var pair = new Pair(128))
        {
            Equal(128, pair.Client.TpduSize, "client TPDU size");
            Equal(128, pair.Server.TpduSize, "server TPDU size");
            BytesEqual(new byte[] { 0x01, 0x02 }, pair.Server.RemoteTsap, "called TSAP seen by the listener");
            BytesEqual(new byte[] { 0x01, 0x00 }, pair.Server.CallingTsap, "calling TSAP seen by the listener");
            Assert(pair.Client.CheckConnection(), "client connection alive");
            Assert(pair.Client.SocketHandle >= 0, "socket handle");
            Assert(pair.Server.IsAccepted && !pair.Client.IsAccepted, "IsAccepted");

            // 1000 bytes in DTs of 125 payload bytes, reassembled on the other side.
            var request = Pattern(1000, 7);
            pair.Client.Send(request);
            Assert(pair.Server.Poll(5000), "server poll sees the whole message");
            BytesEqual(request, pair.Server.Receive(5000), "request received whole");

            var reply = Pattern(3000, 13);
            pair.Server.Send(reply);
            var buffer = new byte[4000];
            int n = pair.Client.Receive(buffer, 500, 3500, 5000);
            Equal(3000, n, "reply length");
            BytesEqual(reply, buffer.Skip(500).Take(n).ToArray(), "reply received whole at the offset");

            // Offsets on send.
            pair.Client.Send(buffer, 500, 10);
            BytesEqual(reply.Take(10).ToArray(), pair.Server.Receive(5000), "send from an offset");
            Assert(!pair.Client.Poll(0), "nothing more buffered");
        }
    }

    static void RefusedPort()
    {
        using (var c = new IsoConnection("127.0.0.1", FreePort()))
        {
            var e = Throws<IsoException>(() => c.Connect(3000), "connect to a closed port");
            Equal(IsoError.Refused, e.Code, "code");
            Equal(-4, e.NativeCode, "native code");
            Assert(!(e is IsoTimeoutException), "not a timeout");
            Assert(e.Detail.Contains("refused"), "detail names the refusal: " + e.Detail);
            Assert(c.LastError.Contains("refused"), "LastError: " + c.LastError);
            Equal(ECONNREFUSED, e.OsError, "OS error of the refusal");
            Equal(IsoConnectPhase.Tcp, e.Phase, "phase of the refusal");
            Equal(ECONNREFUSED, c.LastOsError, "LastOsError");
            Equal(IsoConnectPhase.Tcp, c.ConnectPhase, "ConnectPhase");
            Assert(!c.CheckConnection(), "not connected");
            var again = Throws<IsoException>(() => c.Reconnect(3000), "reconnect to a closed port");
            Equal(IsoError.Refused, again.Code, "code of the reconnect");
            Equal(ECONNREFUSED, again.OsError, "OS error of the reconnect");
            Equal(IsoConnectPhase.Tcp, again.Phase, "phase of the reconnect");
        }
    }

    static void ConnectTimeout()
    {
        // A TCP listener that never reads: the CR is never answered.
        var silent = new TcpListener(IPAddress.Loopback, 0);
        silent.Start();
        try
        {
            ushort port = (ushort)((IPEndPoint)silent.LocalEndpoint).Port;
            using (var c = new IsoConnection("127.0.0.1", port))
            {
                var watch = Stopwatch.StartNew();
                var e = Throws<IsoTimeoutException>(() => c.Connect(300), "connect to a silent peer");
                Equal(IsoError.Timeout, e.Code, "code");
                Assert(watch.ElapsedMilliseconds >= 250 && watch.ElapsedMilliseconds < 3000,
                    "one deadline of 300 ms, took " + watch.ElapsedMilliseconds);
                Assert(e is IOException, "IsoException is an IOException");
                // TCP was accepted; the CR went unanswered: the COTP phase, no OS error.
                Equal(IsoConnectPhase.Cotp, e.Phase, "phase of the unanswered CR");
                Equal(0, e.OsError, "no OS error behind our own deadline");
                Equal(IsoConnectPhase.Cotp, c.ConnectPhase, "ConnectPhase");
            }
        }
        finally
        {
            silent.Stop();
        }
    }

    static void ReceiveTimeoutLosesNothing()
    {
        using (var pair = new Pair(1024))
        {
            var watch = Stopwatch.StartNew();
            var e = Throws<IsoTimeoutException>(() => pair.Client.Receive(200), "receive with nothing sent");
            Equal(IsoError.Timeout, e.Code, "code");
            Assert(watch.ElapsedMilliseconds >= 190, "waited the timeout");
            var wb = Throws<IsoTimeoutException>(() => pair.Client.Receive(0), "receive with timeout 0");
            Equal(IsoError.WouldBlock, wb.Code, "code for timeout 0");
            Assert(!pair.Client.Poll(50), "poll times out with false");

            // The connection is intact after the timeouts.
            var msg = Pattern(100, 3);
            pair.Server.Send(msg);
            BytesEqual(msg, pair.Client.Receive(5000), "message after timeouts");
            Assert(pair.Client.CheckConnection(), "still alive");
        }
    }

    static void DisposeWakesBlockedAccept()
    {
        var listener = new IsoListener("127.0.0.1", 0);
        Exception caught = null;
        long elapsed = -1;
        var acceptor = new Thread(() =>
        {
            var watch = Stopwatch.StartNew();
            try { listener.Accept(20000); }
            catch (Exception e) { caught = e; }
            elapsed = watch.ElapsedMilliseconds;
        });
        acceptor.Start();
        Thread.Sleep(200);
        listener.Dispose();
        Assert(acceptor.Join(5000), "acceptor woke up");
        Assert(caught is IsoException, "acceptor got an IsoException: " + caught);
        Equal(IsoError.State, ((IsoException)caught).Code, "code of the woken accept");
        Assert(elapsed < 5000, "woke promptly: " + elapsed + " ms");
    }

    static void DisposeWakesBlockedReceive()
    {
        using (var pair = new Pair(1024))
        {
            Exception caught = null;
            long elapsed = -1;
            var receiver = new Thread(() =>
            {
                var watch = Stopwatch.StartNew();
                try { pair.Client.Receive(20000); }
                catch (Exception e) { caught = e; }
                elapsed = watch.ElapsedMilliseconds;
            });
            receiver.Start();
            Thread.Sleep(200);
            pair.Client.Dispose();
            Assert(receiver.Join(5000), "receiver woke up");
            Assert(caught is IsoException, "receiver got an IsoException: " + caught);
            Equal(IsoError.State, ((IsoException)caught).Code, "code of the woken receive");
            Assert(elapsed < 5000, "woke promptly: " + elapsed + " ms");
            Throws<ObjectDisposedException>(() => pair.Client.Send(new byte[] { 1 }), "send after Dispose");
            pair.Client.Dispose(); // twice is fine
            pair.Client = null;
        }
    }

    static void ListenerTsapFilter()
    {
        using (var listener = new IsoListener("127.0.0.1", 0))
        {
            listener.AllowTsap(0x0102);
            IsoConnection accepted = null;
            var acceptor = new Thread(() => listener.TryAccept(1500, out accepted));
            acceptor.Start();
            using (var c = new IsoConnection("127.0.0.1", listener.Port))
            {
                c.SetTsap(0x0100, 0x0103);
                var e = Throws<IsoException>(() => c.Connect(3000), "connect with a TSAP not served");
                Equal(IsoError.Rejected, e.Code, "code");
                Assert(e.Detail.Contains("0x03"), "DR reason in the detail: " + e.Detail);
                Equal(IsoConnectPhase.Cotp, e.Phase, "phase of a DR refusal");
                Equal(0, e.OsError, "no OS error behind a DR");
            }
            acceptor.Join();
            Assert(accepted == null, "nothing accepted");
            Equal(1UL, listener.RefusedCount, "refused count");
            Assert(listener.LastError.Contains("0x03"), "listener last error: " + listener.LastError);
            Equal(uint.MaxValue, listener.NextTimeoutMs, "no handshake pending");
            Assert(listener.EventHandle >= 0, "event handle");
            var t = Throws<IsoTimeoutException>(() => listener.Accept(0), "accept with nothing pending");
            Equal(IsoError.WouldBlock, t.Code, "code for timeout 0");
        }
    }

    static void ListenerFilterCallback()
    {
        using (var listener = new IsoListener("127.0.0.1", 0))
        {
            var seen = new List<string>();
            listener.SetFilter((calling, called) =>
            {
                lock (seen) seen.Add(Hex(calling) + "/" + Hex(called));
                return called.Length == 2 && called[1] == 0x02 ? 0 : 0x81;
            });
            for (int round = 0; round < 2; round++)
            {
                ushort remote = round == 0 ? (ushort)0x0103 : (ushort)0x0102;
                IsoConnection accepted = null;
                var acceptor = new Thread(() => listener.TryAccept(round == 0 ? 1000 : 5000, out accepted));
                acceptor.Start();
                using (var c = new IsoConnection("127.0.0.1", listener.Port))
                {
                    c.SetTsap(0x0100, remote);
                    if (round == 0)
                    {
                        var e = Throws<IsoException>(() => c.Connect(3000), "connect refused by the filter");
                        Equal(IsoError.Rejected, e.Code, "code");
                        Assert(e.Detail.Contains("0x81"), "DR reason 0x81: " + e.Detail);
                        acceptor.Join();
                    }
                    else
                    {
                        c.Connect(3000);
                        acceptor.Join();
                        Assert(accepted != null, "accepted by the filter");
                        accepted.Dispose();
                    }
                }
            }
            lock (seen)
            {
                Equal(2, seen.Count, "filter calls");
                Equal("0100/0103", seen[0], "TSAPs given to the filter");
            }
            listener.SetFilter(null);
        }
    }

    static void PeerCloseAndBufferTooSmall()
    {
        using (var pair = new Pair(1024))
        {
            pair.Server.Send(Pattern(600, 5));
            var small = new byte[100];
            var e = Throws<IsoBufferTooSmallException>(() => pair.Client.Receive(small, 0, small.Length, 5000), "receive into a small buffer");
            Equal(600L, e.Needed, "needed size");
            BytesEqual(Pattern(600, 5), pair.Client.Receive(5000), "message kept after BufferTooSmall");

            pair.Server.Send(new byte[] { 9, 8, 7 });
            pair.Server.Dispose();
            pair.Server = null;
            // The buffered message is still delivered, then Closed.
            BytesEqual(new byte[] { 9, 8, 7 }, pair.Client.Receive(5000), "message sent before closing");
            var closed = Throws<IsoException>(() => pair.Client.Receive(5000), "receive after the peer closed");
            Equal(IsoError.Closed, closed.Code, "code");
            Assert(!pair.Client.CheckConnection(), "CheckConnection after the peer closed");
            pair.Client.Disconnect();
            Throws<IsoException>(() => pair.Client.Send(new byte[] { 1 }), "send after Disconnect");
        }
    }

    static void QueuedSendAndTrace()
    {
        using (var pair = new Pair(256))
        {
            var frames = new List<KeyValuePair<IsoTraceDirection, byte[]>>();
            pair.Client.SetTrace((dir, frame) => { lock (frames) frames.Add(new KeyValuePair<IsoTraceDirection, byte[]>(dir, frame)); });
            var msg = Pattern(600, 11);
            Assert(pair.Client.QueueSend(msg, 0, msg.Length), "queued");
            Assert(pair.Client.Flush(5000), "flushed");
            Equal(0L, pair.Client.SendPending, "nothing pending");
            BytesEqual(msg, pair.Server.Receive(5000), "queued message received");
            pair.Server.Send(new byte[] { 0x32, 0x03 });
            pair.Client.Receive(5000);
            pair.Client.SetTrace(null);
            lock (frames)
            {
                // 600 bytes in DTs of 253: 3 frames sent, 1 received.
                Equal(3, frames.Count(f => f.Key == IsoTraceDirection.Sent), "frames sent");
                Equal(1, frames.Count(f => f.Key == IsoTraceDirection.Received), "frames received");
                Equal((byte)0x03, frames[0].Value[0], "TPKT version in the trace");
            }
        }
    }

    static void ArgumentAndStateErrors()
    {
        var e = Throws<IsoException>(() => new IsoConnection("", 102), "empty host");
        Equal(IsoError.Invalid, e.Code, "code for an empty host");
        Assert(e.Detail.Length > 0, "thread last error carried: " + e.Detail);
        Equal(0, e.OsError, "no OS error for an empty host");
        Equal(IsoConnectPhase.None, e.Phase, "no phase for an empty host");
        Throws<ArgumentNullException>(() => new IsoConnection(null, 102), "null host");

        using (var c = new IsoConnection("127.0.0.1", 102))
        {
            Equal(IsoError.Invalid, Throws<IsoException>(() => c.RequestedTpduSize = 1000, "TPDU 1000").Code, "code for TPDU 1000");
            Equal(1024, c.RequestedTpduSize, "TPDU size unchanged");
            Equal(IsoError.State, Throws<IsoException>(() => c.Send(new byte[] { 1 }), "send before connect").Code, "send before connect");
            Equal(IsoError.State, Throws<IsoException>(() => { var x = c.TpduSize; }, "TPDU before connect").Code, "TpduSize before connect");
            Throws<ArgumentOutOfRangeException>(() => c.Send(new byte[4], 2, 3), "range");
            Throws<ArgumentOutOfRangeException>(() => c.Connect(-2), "negative timeout");
            Equal(IsoError.Invalid, Throws<IsoException>(() => c.SetTsap(new byte[0], new byte[] { 1 }), "empty TSAP").Code, "empty TSAP");
            c.SetTsap(new byte[] { 6, 0 }, System.Text.Encoding.ASCII.GetBytes("SIMATIC-ROOT-HMI"));
            c.SetRouting(0x0152, 1, 3);
            Equal(IsoError.Invalid, Throws<IsoException>(() => c.SetRouting(1, 8, 0), "rack 8").Code, "rack 8");
            Assert(c.LastError.Length > 0, "last error");
        }
    }

    static void UserTimeoutAndAttemptDelay()
    {
        using (var c = new IsoConnection("127.0.0.1", 102))
        {
            Equal(IsoConnection.UserTimeoutFromKeepAlive, c.UserTimeoutMs, "default user timeout");
            Equal(250, c.ConnectAttemptDelayMs, "default attempt delay");
            Equal(0, c.LastOsError, "no OS error before a failure");
            Equal(IsoConnectPhase.None, c.ConnectPhase, "no phase before a connect");
            foreach (int ms in new[] { 0, 1, 30000, 2073600000, -1 })
            {
                c.UserTimeoutMs = ms;
                Equal(ms, c.UserTimeoutMs, "user timeout " + ms);
            }
            c.SetUserTimeout(20000);
            Equal(20000, c.UserTimeoutMs, "SetUserTimeout");
            var tooLong = Throws<IsoException>(() => c.UserTimeoutMs = 2073600001, "user timeout above the range");
            Equal(IsoError.Invalid, tooLong.Code, "code for a user timeout above the range");
            Equal(20000, c.UserTimeoutMs, "user timeout unchanged");
            Throws<ArgumentOutOfRangeException>(() => c.SetUserTimeout(-2), "user timeout -2");

            foreach (int ms in new[] { 0, 10000, 250 })
            {
                c.ConnectAttemptDelayMs = ms;
                Equal(ms, c.ConnectAttemptDelayMs, "attempt delay " + ms);
            }
            Equal(IsoError.Invalid, Throws<IsoException>(() => c.ConnectAttemptDelayMs = 10001, "delay 10001").Code, "code for delay 10001");
            Equal(250, c.ConnectAttemptDelayMs, "attempt delay unchanged");
            Throws<ArgumentOutOfRangeException>(() => c.ConnectAttemptDelayMs = -1, "delay -1");
        }
        using (var pair = new Pair(1024))
        {
            Equal(IsoError.State, Throws<IsoException>(() => pair.Client.UserTimeoutMs = 1000, "user timeout when connected").Code, "user timeout when connected");
            Equal(IsoError.State, Throws<IsoException>(() => pair.Client.ConnectAttemptDelayMs = 0, "delay when connected").Code, "delay when connected");
        }
    }

    static void ReconnectLoopback()
    {
        using (var listener = new IsoListener("127.0.0.1", 0))
        using (var c = new IsoConnection("127.0.0.1", listener.Port))
        {
            c.UserTimeoutMs = 20000;
            c.ConnectAttemptDelayMs = 100;
            for (int round = 0; round < 6; round++)
            {
                IsoConnection accepted = null;
                Exception acceptError = null;
                var acceptor = new Thread(() =>
                {
                    try { accepted = listener.Accept(5000); }
                    catch (Exception e) { acceptError = e; }
                });
                acceptor.Start();
                if (round == 0) c.Connect(5000);
                else c.Reconnect(5000);
                acceptor.Join();
                if (acceptError != null) throw acceptError;
                using (accepted)
                {
                    Equal(IsoConnectPhase.None, c.ConnectPhase, "phase after round " + round);
                    var msg = Pattern(100 + round, round + 1);
                    c.Send(msg);
                    BytesEqual(msg, accepted.Receive(5000), "message of round " + round);
                    var st = Throws<IsoException>(() => accepted.Reconnect(1000), "reconnect of an accepted connection");
                    Equal(IsoError.State, st.Code, "code for reconnecting an accepted connection");
                }
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // python-snap7's S7 server
    // -----------------------------------------------------------------------------------------

    static void PythonSnap7Server()
    {
        if (python == null || serverScript == null || !File.Exists(python))
        {
            string why = "no python-snap7 venv given (--python, --server)";
            if (requirePeers) throw new Exception("--require-peers and " + why);
            throw new SkipException(why);
        }
        var psi = new ProcessStartInfo(python, "\"" + serverScript + "\" --port 0")
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = false,
        };
        using (var server = Process.Start(psi))
        {
            try
            {
                var readLine = server.StandardOutput.ReadLineAsync();
                Assert(readLine.Wait(15000), "server.py printed READY within 15 s");
                var words = (readLine.Result ?? "").Split(' ');
                Assert(words.Length == 3 && words[0] == "READY", "READY line: " + readLine.Result);
                ushort port = ushort.Parse(words[1]);

                using (var c = new IsoConnection("127.0.0.1", port))
                {
                    c.SetTsap(0x0100, IsoConnection.S7Tsap(1, 0, 2));
                    c.UserTimeoutMs = 20000;
                    c.ConnectAttemptDelayMs = 100;
                    c.Connect(5000);
                    Equal(1024, c.TpduSize, "TPDU size granted by python-snap7");

                    var db1 = Enumerable.Range(0, 1024).Select(i => (byte)(i & 0xFF)).ToArray();
                    ushort seq = 1;
                    SetupCommunication(c);
                    foreach (var range in new[] { new[] { 0, 4 }, new[] { 100, 8 }, new[] { 300, 200 } })
                    {
                        var data = ReadDb(c, ++seq, 1, range[0], range[1]);
                        BytesEqual(db1.Skip(range[0]).Take(range[1]).ToArray(), data,
                            string.Format("DB1.{0} x {1}", range[0], range[1]));
                    }
                    Assert(c.CheckConnection(), "connection alive after the reads");

                    // Five reconnects: each gives a working connection with the same settings.
                    for (int round = 1; round <= 5; round++)
                    {
                        c.Reconnect(5000);
                        Assert(c.CheckConnection(), "connection alive after reconnect " + round);
                        Equal(IsoConnectPhase.None, c.ConnectPhase, "phase after reconnect " + round);
                        Equal(1024, c.TpduSize, "TPDU size after reconnect " + round);
                        SetupCommunication(c);
                        var data = ReadDb(c, ++seq, 1, 100, 8);
                        BytesEqual(db1.Skip(100).Take(8).ToArray(), data, "DB1.100 x 8 after reconnect " + round);
                    }
                }
            }
            finally
            {
                server.StandardInput.Close(); // server.py exits on EOF
                if (!server.WaitForExit(5000)) server.Kill();
            }
        }
    }

    /// <summary>S7 setup communication, PDU 480, with the answer checked.</summary>
    static void SetupCommunication(IsoConnection c)
    {
        c.Send(new byte[] { 0x32, 0x01, 0, 0, 0, 0, 0, 0x08, 0, 0, 0xF0, 0, 0, 1, 0, 1, 0x01, 0xE0 });
        var setup = c.Receive(5000);
        Equal((byte)0x32, setup[0], "S7 protocol id");
        Equal((byte)0x03, setup[1], "ack-data");
        Equal((byte)0xF0, setup[12], "setup function");
        Equal(480, (setup[18] << 8) | setup[19], "negotiated PDU");
    }

    /// <summary>An S7 read-var request for one DB range; returns the data of the answer.</summary>
    static byte[] ReadDb(IsoConnection c, ushort seq, int db, int start, int size)
    {
        int bit = start * 8;
        var request = new byte[]
        {
            0x32, 0x01, 0, 0, (byte)(seq >> 8), (byte)seq, 0x00, 0x0E, 0x00, 0x00,
            0x04, 0x01, 0x12, 0x0A, 0x10, 0x02, (byte)(size >> 8), (byte)size,
            (byte)(db >> 8), (byte)db, 0x84, (byte)(bit >> 16), (byte)(bit >> 8), (byte)bit,
        };
        c.Send(request);
        var reply = c.Receive(5000);
        Equal((byte)0x03, reply[1], "ack-data");
        Equal((int)seq, (reply[4] << 8) | reply[5], "PDU reference");
        Equal(0, (reply[10] << 8) | reply[11], "S7 error class/code");
        Equal((byte)0xFF, reply[14], "item return code");
        int bits = (reply[16] << 8) | reply[17];
        Equal(size * 8, bits, "item length in bits");
        return reply.Skip(18).Take(size).ToArray();
    }
}
